"""Reading a TOML file the user wrote (settings, sources, rules, recipes, companies), its failures mapped to the
caller's error type with a message that names the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def load_toml(path: Path, *, error: type[Exception], what: str, hint: str = "") -> dict[str, Any]:
    """The file's top-level table. ``error(message)`` when it does not exist, cannot be read or is not TOML;
    the message starts with ``what`` and the path ("rules file /x.toml does not exist (hint)")."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise error(f"{what} {path} does not exist" + (f" ({hint})" if hint else "")) from exc
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} {path} is not valid TOML: {exc}") from exc
