"""How `finpulse up` runs the dashboard: Streamlit serving dashboard/app.py, healthy when /_stcore/health is ok."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

from finpulse import probe
from finpulse.settings import Settings
from finpulse.stack.parts import finpulse_command
from finpulse.stack.supervisor import ServiceSpec

APP = Path(__file__).resolve().parent / "app.py"


def url(settings: Settings) -> str:
    return f"http://{settings.dashboard_host}:{settings.dashboard_port}"


def streamlit_command(settings: Settings) -> list[str]:
    """argv of the Streamlit server; the settings reach it through FINPULSE_* in its environment."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        settings.dashboard_host,
        "--server.port",
        str(settings.dashboard_port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",  # a service does not reload itself when files change
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]


def dashboard_healthy(settings: Settings, timeout: float = 1.0) -> bool:
    return probe.ok(f"{url(settings)}/_stcore/health", timeout_s=timeout, body=b"ok")


def service_spec(settings: Settings) -> ServiceSpec:
    login = "login required" if settings.dashboard_password else "no login (set FINPULSE_DASHBOARD_PASSWORD)"
    return ServiceSpec(
        name="dashboard",
        endpoint=url(settings),
        healthy=partial(dashboard_healthy, settings),
        argv=partial(finpulse_command, "dashboard"),  # which runs streamlit_command in its place (exec)
        env={"STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"},
        note=f"Streamlit, {login}",
        ports=(settings.dashboard_port,),
        host=settings.dashboard_host,
    )
