"""The container side of `finpulse up`: it reads the parts table (finpulse/stack/parts.py: which `finpulse <part>`
command runs each part, and in which compose services), and does the two jobs a container needs that the
supervisor otherwise does in-process.

* ``python stackctl.py init`` - the one-shot ``finpulse-init`` service: waits for the external Kafka cluster and
  ClickHouse server, then runs exactly the set-up `finpulse up` runs against external servers (the kafka and
  clickhouse parts' ``after_start``: topics with partitions and replication factor from settings, migrations).
* ``python stackctl.py health [PART]`` - the image's HEALTHCHECK: the part's own ``service_spec(settings).healthy()``,
  the check the supervisor waits on. Without PART it is read from the container's main command (name it where the
  part execs another program: the dashboard's process becomes Streamlit).
* ``python stackctl.py command PART`` - prints the `finpulse` argv of a part as the supervisor would run it.

Everything is configured through ``FINPULSE_*`` variables only (``finpulse.settings``). Copied into the images as
``/opt/finpulse/stackctl.py`` (the installed ``finpulse`` package next to it provides the table); ``tests/unit/docker``
checks the compose file against the table and the parts' specs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from finpulse.stack import parts

# Which compose services run each part is the parts table's `containers`; the servers come from official images.
PARTS = {p.name: p for p in parts.PARTS if p.containers}


class CommandError(ValueError):
    """An argv that is not a `finpulse` command of a known part."""


def _is_python(arg: str) -> bool:
    return Path(arg).name.startswith("python") or arg == sys.executable


def finpulse_argv(argv: Sequence[str]) -> list[str]:
    """The `finpulse ...` form of a supervisor argv (``python -m finpulse ...``) or of ``.../finpulse ...``."""
    argv = list(argv)
    if argv and Path(argv[0]).name == "finpulse":
        return ["finpulse", *argv[1:]]
    if len(argv) >= 3 and _is_python(argv[0]) and argv[1:3] == ["-m", "finpulse"]:
        return ["finpulse", *argv[3:]]
    raise CommandError(f"not a finpulse command: {' '.join(argv)!r} (every part starts as `finpulse <part>`)")


def part_of(argv: Sequence[str]) -> str:
    """Which part a container's command runs (``finpulse <part> ...``, possibly behind an init process)."""
    argv = list(argv)
    for i, arg in enumerate(argv):  # skip an init process (docker-init, tini) in front of the command
        if Path(arg).name == "finpulse" or (_is_python(arg) and argv[i + 1 : i + 2] == ["-m"]):
            argv = argv[i:]
            break
    command = finpulse_argv(argv)[1:]
    if command and command[0] in PARTS:
        return command[0]
    raise CommandError(f"no part runs `finpulse {' '.join(command)}`; parts in containers: {', '.join(PARTS)}")


def service_spec(part: str, settings: Any) -> Any:
    """The part's ServiceSpec, from the same function `finpulse up` calls."""
    return parts.service_spec(part, settings)


def part_command(part: str, settings: Any) -> list[str]:
    spec = service_spec(part, settings)
    if spec.argv is None:
        raise CommandError(f"part {part} runs nothing (an external server)")
    return finpulse_argv(spec.argv())


def wait_and_set_up(specs: Sequence[Any], timeout_s: float, echo: Callable[[str], None] = print) -> None:
    """What the supervisor does for an external server: wait until healthy, then run its set-up (after_start)."""
    for spec in specs:
        if spec.argv is not None:
            raise CommandError(
                f"{spec.name} is not external here: set FINPULSE_KAFKA_BOOTSTRAP and FINPULSE_CLICKHOUSE_URL"
            )
        deadline = time.monotonic() + timeout_s
        while not spec.healthy():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{spec.name} at {spec.endpoint} not healthy within {timeout_s:.0f} s")
            time.sleep(1.0)
        if spec.after_start is not None:
            spec.after_start()
        echo(f"{spec.name} ready at {spec.endpoint}")


def _settings() -> Any:
    from finpulse.settings import load_settings

    return load_settings()


def main(args: Sequence[str]) -> int:
    if not args or args[0] not in ("init", "health", "command"):
        print(__doc__, file=sys.stderr)
        return 2
    settings = _settings()
    if args[0] == "init":
        specs = [service_spec(part, settings) for part in parts.SERVERS]
        try:
            wait_and_set_up(specs, settings.health_timeout_s)
        except (CommandError, TimeoutError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args[0] == "command":
        print(" ".join(part_command(args[1], settings)))
        return 0
    part = args[1] if len(args) > 1 else part_of(Path("/proc/1/cmdline").read_bytes().decode().split("\0")[:-1])
    return 0 if service_spec(part, settings).healthy() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
