"""The one table of FinPulse's stack parts: the CLI, the supervisor (`finpulse up`) and docker/stackctl.py read it.

A part that runs a process starts as ``finpulse <name> ...`` everywhere (the supervisor runs ``python -m finpulse
<name> ...``, containers run ``finpulse <name> ...``). Adding a part means one row here plus the part's own
``service_spec`` and ``register`` functions.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from finpulse.settings import Settings
    from finpulse.stack.supervisor import ServiceSpec

Kind = Literal["server", "setup", "process"]


@dataclass(frozen=True)
class Part:
    """One stack part: how `finpulse up` gets its ServiceSpec and which `finpulse` command runs it."""

    name: str  # FINPULSE_STACK_SERVICES name and, for a process, the `finpulse <name>` command
    spec: str  # "module:function" returning the part's ServiceSpec for the settings; imported only when asked for
    kind: Kind  # server: Kafka/ClickHouse (external ones are only checked and set up); setup: a step, no process;
    # process: a FinPulse program started as `finpulse <name> ...`
    commands: str | None = None  # module whose `register(app, bench_app)` adds `finpulse <name>` (process parts)
    containers: tuple[str, ...] = ()  # docker/compose.yaml services that run it (none: local `finpulse up` only)

    def __post_init__(self) -> None:
        if (self.kind == "process") != (self.commands is not None):
            raise ValueError(f"part {self.name}: a process part, and only one, names its commands module")
        if self.containers and self.kind != "process":
            raise ValueError(f"part {self.name}: only process parts run as FinPulse containers")


# In start order. Kafka and ClickHouse come from official images in docker/ (set up by `finpulse-init`); the model
# step's registry is a volume there; the background trainer runs only under a local `finpulse up` (in a deployment,
# train where the GPU is and ship the registry).
PARTS: tuple[Part, ...] = (
    Part("kafka", "finpulse.stack.services:kafka_spec", "server"),
    Part("clickhouse", "finpulse.stack.services:clickhouse_spec", "server"),
    Part("model", "classifier.service:service_spec", "setup"),
    Part("ingest", "ingest.service:service_spec", "process", "ingest.cli", ("ingest",)),
    Part("stream", "stream.service:service_spec", "process", "stream.cli", ("stream-0", "stream-1")),
    Part("trainer", "classifier.background:service_spec", "process", "classifier.background"),
    Part("alerts", "alerts.service:service_spec", "process", "alerts.cli", ("alerts",)),
    Part("dashboard", "dashboard.service:service_spec", "process", "dashboard.cli", ("dashboard",)),
)
NAMES: tuple[str, ...] = tuple(p.name for p in PARTS)
DEFAULT_SERVICES = ",".join(NAMES)  # the default of FINPULSE_STACK_SERVICES: every part
SERVERS: tuple[str, ...] = tuple(p.name for p in PARTS if p.kind == "server")
PROCESSES: tuple[str, ...] = tuple(p.name for p in PARTS if p.kind == "process")


class UnknownPart(KeyError):
    def __str__(self) -> str:
        return f"unknown part {self.args[0]!r}; known: {', '.join(NAMES)}"


def get(name: str) -> Part:
    for part in PARTS:
        if part.name == name:
            return part
    raise UnknownPart(name)


def service_spec(name: str, settings: Settings) -> ServiceSpec:
    """The part's ServiceSpec for these settings. A module that fails to import fails loudly (no part is optional)."""
    module_name, func = get(name).spec.split(":")
    spec: ServiceSpec = getattr(importlib.import_module(module_name), func)(settings)
    return spec


def finpulse_command(name: str, *args: str) -> list[str]:
    """argv that starts a process part with this interpreter (children share the venv): python -m finpulse NAME."""
    import sys

    if get(name).kind != "process":
        raise ValueError(f"part {name} is no FinPulse process")
    return [sys.executable, "-m", "finpulse", name, *args]
