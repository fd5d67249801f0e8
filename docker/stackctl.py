"""The container side of `finpulse up`: it reads the parts table (finpulse/stack/parts.py: which `finpulse <part>`
command runs each part, and in which compose services), and does the two jobs a container needs that the
supervisor otherwise does in-process.

* ``python stackctl.py init`` - the one-shot ``finpulse-init`` service: waits for the external Kafka cluster and
  ClickHouse server, then runs exactly the set-up `finpulse up` and `finpulse init` run against external servers
  (``finpulse.stack.services.wait_and_set_up``: the server parts' ``after_start``, i.e. topics with partitions and
  replication factor from settings, then migrations); it refuses servers that are not external.
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
from collections.abc import Sequence
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


def _settings() -> Any:
    from finpulse.settings import load_settings

    return load_settings()


def main(args: Sequence[str]) -> int:
    if not args or args[0] not in ("init", "health", "command"):
        print(__doc__, file=sys.stderr)
        return 2
    settings = _settings()
    if args[0] == "init":
        from finpulse.stack import services
        from finpulse.stack.errors import StackError

        try:  # the set-up `finpulse init` runs, refusing servers that are not external
            services.wait_and_set_up(
                services.server_specs(settings), timeout_s=settings.health_timeout_s, echo=print, external_only=True
            )
        except StackError as exc:
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
