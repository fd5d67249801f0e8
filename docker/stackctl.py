"""The container side of `finpulse up`: one table of which `finpulse` command runs each part, plus the two jobs a
container needs that the supervisor otherwise does in-process.

* ``python stackctl.py init`` - the one-shot ``finpulse-init`` service: waits for the external Kafka cluster and
  ClickHouse server, then runs exactly the set-up `finpulse up` runs against external servers (the kafka and
  clickhouse parts' ``after_start``: topics with partitions and replication factor from settings, migrations).
* ``python stackctl.py health [PART]`` - the image's HEALTHCHECK: the part's own ``service_spec(settings).healthy()``,
  the check the supervisor waits on. Without PART it is read from the container's main command.
* ``python stackctl.py command PART`` - prints the `finpulse` argv of a part as the supervisor would run it.

Everything is configured through ``FINPULSE_*`` variables only (``finpulse.settings``). Copied into the images as
``/opt/finpulse/stackctl.py``; ``tests/unit/docker`` checks the compose file against the table and the parts' specs.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Part:
    """A FinPulse part that runs as long-lived containers."""

    cli: tuple[str, ...]  # `finpulse <cli> ...` runs it
    compose: tuple[str, ...]  # the compose services that run it
    module: str | None = None  # the supervisor's `python -m <module> ARGS` is `finpulse <cli> ARGS`
    wraps: tuple[str, ...] | None = None  # the supervisor's `python -m <wraps> ...` is what `finpulse <cli>` launches
    # itself, with the same arguments derived from the same settings (e.g. dashboard: streamlit run app.py ...)


# The single table of part -> `finpulse` command (and the compose services that run it). The supervisor runs a part
# as `python -m finpulse <cli> ...`, `python -m <module> ...` or `python -m <wraps> ...`; containers always run the
# `finpulse` form. Kafka and ClickHouse are servers from their official images (set up by `finpulse-init`); the
# model part's registry is a volume.
PARTS: dict[str, Part] = {
    "ingest": Part(cli=("ingest",), compose=("ingest",), module="ingest"),
    "stream": Part(cli=("stream",), compose=("stream-0", "stream-1")),
    "alerts": Part(cli=("alerts",), compose=("alerts",)),
    "dashboard": Part(cli=("dashboard",), compose=("dashboard",), wraps=("streamlit", "run")),
}
SERVER_PARTS = ("kafka", "clickhouse")  # started from official images; `stackctl.py init` sets them up
MODEL_PART = "model"  # the registry is the `models` volume (or baked into the image); see README
# Parts of the local `finpulse up` only: the background trainer (`finpulse trainer`) has no container; in a
# deployment, train where the GPU is and ship the registry volume.
LOCAL_ONLY_PARTS = ("trainer",)


class CommandError(ValueError):
    """An argv that is not a `finpulse` command of a known part."""


def _is_python(arg: str) -> bool:
    return Path(arg).name.startswith("python") or arg == sys.executable


def finpulse_argv(argv: Sequence[str]) -> list[str]:
    """The `finpulse ...` form of a supervisor argv (``python -m finpulse|<part module> ...`` or ``finpulse ...``)."""
    argv = list(argv)
    if argv and Path(argv[0]).name == "finpulse":
        return ["finpulse", *argv[1:]]
    if len(argv) >= 3 and _is_python(argv[0]) and argv[1] == "-m":
        module, rest = argv[2], argv[3:]
        if module == "finpulse":
            return ["finpulse", *rest]
        for part in PARTS.values():
            if part.module == module:
                return ["finpulse", *part.cli, *rest]
            if part.wraps and (module, *rest[: len(part.wraps) - 1]) == part.wraps:
                return ["finpulse", *part.cli]
        raise CommandError(f"`python -m {module}` is no part's module in stackctl.PARTS; add it there")
    raise CommandError(f"not a finpulse command: {' '.join(argv)!r}")


def part_of(argv: Sequence[str]) -> str:
    """Which part a container's command runs (``finpulse <cli> ...``, ``python -m <module>`` or behind an init)."""
    argv = list(argv)
    for i, arg in enumerate(argv):  # skip an init process (docker-init, tini) in front of the command
        if Path(arg).name == "finpulse" or (_is_python(arg) and argv[i + 1 : i + 2] == ["-m"]):
            argv = argv[i:]
            break
    command = finpulse_argv(argv)[1:]
    for name, part in PARTS.items():
        if tuple(command[: len(part.cli)]) == part.cli:
            return name
    raise CommandError(f"no part runs `finpulse {' '.join(command)}`")


def service_spec(part: str, settings: Any) -> Any:
    """The part's ServiceSpec, from the same function `finpulse up` calls."""
    if part in SERVER_PARTS:
        from finpulse.stack import services

        return getattr(services, f"_{part}")(settings)
    module = importlib.import_module(f"{part}.service")
    return module.service_spec(settings)


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
        specs = [service_spec(part, settings) for part in SERVER_PARTS]
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
