"""What the stack supervisor needs to run the ingest worker as a service, and what `finpulse status` reads."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from finpulse import probe
from finpulse.settings import Settings
from finpulse.stack.parts import finpulse_command

if TYPE_CHECKING:
    from finpulse.stack.supervisor import ServiceSpec


def ingest_endpoint(settings: Settings) -> str:
    """Base URL of the worker: POST /v1/push, GET /healthz, /metrics, /status."""
    return f"http://{settings.ingest_host}:{settings.ingest_port}"


def ingest_command(settings: Settings) -> list[str]:
    """argv of the worker; the settings reach it through the environment (Settings.child_env)."""
    argv = finpulse_command("ingest", "run")
    if settings.ingest_sources_file is not None:
        argv += ["--config", str(settings.ingest_sources_file)]
    return argv


def ingest_healthy(settings: Settings, timeout_s: float = 2.0) -> bool:
    """True when the worker answers /healthz with 200 (its pipeline thread is alive)."""
    return probe.ok(f"{ingest_endpoint(settings)}/healthz", timeout_s=timeout_s)


def ingest_status(settings: Settings, timeout_s: float = 2.0) -> dict[str, Any] | None:
    """Health and per-source counters of the running worker, or None when it does not answer."""
    status = probe.get_json(f"{ingest_endpoint(settings)}/status", timeout_s=timeout_s)
    return status if isinstance(status, dict) else None


def service_spec(settings: Settings) -> ServiceSpec:
    """The ingest worker as a part of `finpulse up` (FINPULSE_STACK_SERVICES name: ingest)."""
    from finpulse.stack.supervisor import ServiceSpec

    sources = settings.ingest_sources_file
    return ServiceSpec(
        name="ingest",
        endpoint=ingest_endpoint(settings),
        healthy=partial(ingest_healthy, settings),
        argv=partial(ingest_command, settings),
        stop_timeout_s=40.0,  # finishes the batch in flight and checkpoints it
        note=f"sources from {sources}" if sources else f"scenario generator ({settings.ingest_generator_scenario})",
        ports=(settings.ingest_port,),
        host=settings.ingest_host,
        details=partial(ingest_status, settings),
    )
