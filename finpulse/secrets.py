"""Per-install secrets generated at first start: ``<data_dir>/secrets.json``, readable by its owner only (0600).

Settings stay the one source: a secret setting left empty takes its value from this file (see
``Settings._install_secrets``), so every process of one install (services, CLI, tests) agrees on it, and an
explicitly set value always wins. Any part may ask for a new name; it is added on first use.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

SECRETS_FILE = "secrets.json"


class SecretsFileError(ValueError):
    """The secrets file cannot be read or written; the message says what to do."""


def generate_secret() -> str:
    return secrets.token_urlsafe(24)  # 32 URL-safe characters: fine in URLs, headers and basic auth


def install_secrets(data_dir: Path, names: Iterable[str]) -> dict[str, str]:
    """The values of ``names`` from the data dir's secrets file, generating (and saving) those not there yet.

    A lock file serialises first starts of several processes, so they all end with the same values.
    """
    wanted = list(names)
    path = data_dir / SECRETS_FILE
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_fd = os.open(data_dir / (SECRETS_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise SecretsFileError(
            f"cannot create the secrets file in {data_dir}: {exc.strerror}; fix FINPULSE_DATA_DIR or set the "
            f"secret settings ({', '.join('FINPULSE_' + n.upper() for n in wanted)}) yourself"
        ) from exc
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        stored = _read(path)
        missing = [name for name in wanted if not stored.get(name)]
        if missing:
            stored.update({name: generate_secret() for name in missing})
            _write(path, stored)
        elif path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)  # someone loosened it: only the owner may read the install's passwords
        return {name: stored[name] for name in wanted}
    finally:
        os.close(lock_fd)


def _read(path: Path) -> dict[str, str]:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SecretsFileError(f"secrets file {path} is not valid JSON ({exc}); fix it or move it aside") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise SecretsFileError(f"secrets file {path} must be a JSON object of strings; fix it or move it aside")
    return data


def _write(path: Path, data: dict[str, str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=1, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
