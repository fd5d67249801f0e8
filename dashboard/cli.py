"""`finpulse dashboard`: the Streamlit dashboard in the foreground (`finpulse up` runs this same command)."""

from __future__ import annotations

import os
import sys

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    @app.command("dashboard")
    def dashboard_command(
        port: int | None = typer.Option(None, help="Port (default FINPULSE_DASHBOARD_PORT)."),
        host: str | None = typer.Option(None, help="Address (default FINPULSE_DASHBOARD_HOST)."),
    ) -> None:
        """Serve the dashboard: trends, topics and tickers, live feed, alerts, SQL explorer, pipeline health."""
        from dashboard.service import streamlit_command, url
        from finpulse.cli import get_settings

        settings = get_settings()
        overrides = {k: v for k, v in {"dashboard_port": port, "dashboard_host": host}.items() if v is not None}
        if overrides:
            settings = settings.model_copy(update=overrides)
        typer.echo(f"FinPulse dashboard on {url(settings)}")
        argv = streamlit_command(settings)
        sys.stdout.flush()
        sys.stderr.flush()
        # Streamlit takes this process's place, so the supervisor's SIGTERM (and Ctrl-C) reach it directly.
        os.execve(argv[0], argv, {**os.environ, **settings.child_env()})
