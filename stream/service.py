"""How `finpulse up` runs the stream: one worker (index 0) of the consumer group, healthy when /healthz answers."""

from __future__ import annotations

from functools import partial
from typing import Any

from finpulse import probe
from finpulse.settings import Settings
from finpulse.stack.parts import finpulse_command
from finpulse.stack.supervisor import ServiceSpec


def health_url(settings: Settings, index: int = 0) -> str:
    return f"http://{settings.stream_host}:{settings.stream_port + index}/healthz"


def health(settings: Settings, index: int = 0, timeout_s: float = 2.0) -> dict[str, Any] | None:
    """The worker's /healthz JSON, or None when it does not answer 200."""
    answer = probe.get_json(health_url(settings, index), timeout_s=timeout_s)
    return answer if isinstance(answer, dict) else None


def healthy(settings: Settings, index: int = 0) -> bool:
    return health(settings, index) is not None


def argv(settings: Settings, index: int = 0) -> list[str]:
    return finpulse_command("stream", "run", "--index", str(index))


def service_spec(settings: Settings) -> ServiceSpec:
    return ServiceSpec(
        name="stream",
        endpoint=health_url(settings),
        healthy=partial(healthy, settings),
        argv=partial(argv, settings),
        stop_timeout_s=30.0,
        note=f"faust worker 0 of group {settings.stream_group}",
        ports=(settings.stream_port,),
        host=settings.stream_host,
    )
