"""What the stack supervisor needs to run the ingest worker as a service, and what `finpulse status` reads."""

from __future__ import annotations

import sys
from typing import Any

import httpx

from finpulse.settings import Settings


def ingest_endpoint(settings: Settings) -> str:
    """Base URL of the worker: POST /v1/push, GET /healthz, /metrics, /status."""
    return f"http://{settings.ingest_host}:{settings.ingest_port}"


def ingest_command(settings: Settings) -> list[str]:
    """argv of the worker; the settings reach it through the environment (Settings.child_env)."""
    argv = [sys.executable, "-m", "ingest", "run"]
    if settings.ingest_sources_file is not None:
        argv += ["--config", str(settings.ingest_sources_file)]
    return argv


def ingest_healthy(settings: Settings, timeout_s: float = 2.0) -> bool:
    """True when the worker answers /healthz with 200 (its pipeline thread is alive)."""
    try:
        return httpx.get(f"{ingest_endpoint(settings)}/healthz", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def ingest_status(settings: Settings, timeout_s: float = 2.0) -> dict[str, Any] | None:
    """Health and per-source counters of the running worker, or None when it does not answer."""
    try:
        resp = httpx.get(f"{ingest_endpoint(settings)}/status", timeout=timeout_s)
        return resp.json() if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
