"""How `finpulse up` runs the stream: one worker (index 0) of the consumer group, healthy when /healthz answers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from functools import partial

from finpulse.settings import Settings
from finpulse.stack.supervisor import ServiceSpec

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def health_url(settings: Settings, index: int = 0) -> str:
    return f"http://{settings.stream_host}:{settings.stream_port + index}/healthz"


def health(settings: Settings, index: int = 0, timeout_s: float = 2.0) -> dict | None:
    """The worker's /healthz JSON, or None when it does not answer 200."""
    try:
        with _NO_PROXY.open(health_url(settings, index), timeout=timeout_s) as response:
            if response.status != 200:
                return None
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def healthy(settings: Settings, index: int = 0) -> bool:
    return health(settings, index) is not None


def argv(settings: Settings, index: int = 0) -> list[str]:
    from finpulse.stack.services import python_module

    return python_module("finpulse", "stream", "run", "--index", str(index))


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
