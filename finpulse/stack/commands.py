"""`finpulse up`, `finpulse down`, `finpulse status`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import typer

from finpulse.settings import Settings
from finpulse.stack.errors import StackError
from finpulse.stack.supervisor import Supervisor, pid_alive, read_state


def _settings() -> Settings:
    from finpulse.cli import get_settings

    return get_settings()


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(code)


def _print_endpoints(sup: Supervisor) -> None:
    typer.secho("FinPulse is up:", fg="green", bold=True)
    for child in sup.children:
        note = f"  ({child.spec.note})" if child.spec.note else ""
        typer.echo(f"  {child.spec.name:<11} {child.spec.endpoint}{note}")
    typer.echo(f"  data dir    {sup.settings.data_dir}")
    typer.echo("Stop with Ctrl-C or `finpulse down`.")


def up(
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background; return once healthy."),
) -> None:
    """Bring the whole local stack up (Kafka, ClickHouse, ...) and keep it running."""
    settings = _settings()
    if detach:
        raise typer.Exit(_up_detached(settings))
    from finpulse.stack.services import service_specs

    try:
        sup = Supervisor(settings, service_specs(settings))
    except StackError as exc:
        raise _fail(str(exc)) from exc
    code = sup.run(on_ready=_print_endpoints)
    if code:
        state = read_state(settings) or {}
        raise _fail(state.get("error") or "start failed; see the log above", code)


def _up_detached(settings: Settings) -> int:
    state = read_state(settings)
    if state and state.get("phase") == "running" and pid_alive(state["pid"]):
        typer.echo(f"FinPulse is already running (supervisor pid {state['pid']}).")
        return 0
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.run_dir / "supervisor.log"
    started = time.time()
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "finpulse", "up"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **settings.child_env()},
            start_new_session=True,
        )
    typer.echo(f"starting FinPulse in the background (pid {proc.pid}, log {log_path}) ...")
    while True:
        state = read_state(settings) or {}
        fresh = state.get("pid") == proc.pid and state.get("updated_at", 0) >= started - 1
        if fresh and state.get("phase") == "running":
            typer.secho(f"FinPulse is up ({time.time() - started:.1f} s):", fg="green", bold=True)
            for name, svc in state["services"].items():
                note = f"  ({svc['note']})" if svc.get("note") else ""
                typer.echo(f"  {name:<11} {svc['endpoint']}{note}")
            return 0
        if proc.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-20:]
            typer.secho("FinPulse failed to start:", fg="red", err=True)
            typer.echo("\n".join(tail), err=True)
            return 1
        time.sleep(0.3)


def down(timeout: float = typer.Option(120.0, help="Seconds to wait for a clean stop.")) -> None:
    """Stop the local stack cleanly (acknowledged data is kept)."""
    settings = _settings()
    state = read_state(settings)
    if not state or not pid_alive(state["pid"]) or state.get("phase") == "stopped":
        typer.echo("FinPulse is not running.")
        return
    pid = state["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            raise _fail(f"supervisor pid {pid} did not stop within {timeout:.0f} s; see {settings.run_dir}/logs")
        time.sleep(0.2)
    typer.echo("FinPulse stopped.")


def collect_status(settings: Settings) -> dict[str, Any]:
    """Health of every part, checked live (not trusted from the state file)."""
    from finpulse.stack.services import service_specs

    state = read_state(settings) or {}
    running = bool(state) and pid_alive(state.get("pid", -1)) and state.get("phase") != "stopped"
    parts: dict[str, Any] = {}
    for spec in service_specs(settings):
        svc = state.get("services", {}).get(spec.name, {}) if running else {}
        parts[spec.name] = {
            "healthy": bool(spec.healthy()),
            "endpoint": spec.endpoint,
            "pid": svc.get("pid"),
            "restarts": svc.get("restarts", 0),
            "note": spec.note,
        }
        if spec.details is not None:
            parts[spec.name]["details"] = spec.details() if parts[spec.name]["healthy"] else None
    return {
        "healthy": all(p["healthy"] for p in parts.values()),
        "supervisor": {"running": running, "pid": state.get("pid") if running else None, "phase": state.get("phase")},
        "data_dir": str(settings.data_dir),
        "parts": parts,
    }


def _detail_lines(details: dict[str, Any] | None) -> list[str]:
    """Per-source (or per-worker) counters, one line each, from a part's /status answer."""
    if not details:
        return []
    if isinstance(details.get("summary"), str):  # a part that reports one line (the background trainer)
        return [details["summary"]]
    rows = details.get("sources") or details.get("workers") or {}
    if isinstance(rows, dict):
        rows = [{"name": k, **v} if isinstance(v, dict) else {"name": k, "value": v} for k, v in rows.items()]
    lines = []
    for row in rows if isinstance(rows, list) else []:
        fields = ", ".join(f"{k}={v}" for k, v in row.items() if k != "name" and not isinstance(v, (dict, list)))
        lines.append(f"{row.get('name', '?')}: {fields}")
    return lines


def status(as_json: bool = typer.Option(False, "--json", help="One JSON object.")) -> None:
    """Is each part healthy, and where does it listen? Exit code 1 when any part is unhealthy."""
    settings = _settings()
    report = collect_status(settings)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        sup = report["supervisor"]
        typer.echo(f"supervisor  {'running pid ' + str(sup['pid']) if sup['running'] else 'not running'}")
        for name, part in report["parts"].items():
            mark = typer.style("healthy", fg="green") if part["healthy"] else typer.style("DOWN", fg="red")
            note = f"  ({part['note']})" if part["note"] else ""
            typer.echo(f"{name:<11} {mark:<7} {part['endpoint']}{note}")
            for line in _detail_lines(part.get("details")):
                typer.echo(f"{'':<11} {line}")
    raise typer.Exit(0 if report["healthy"] else 1)


def init(timeout: float = typer.Option(120.0, help="Seconds to wait for each server.")) -> None:
    """Set up the configured Kafka and ClickHouse (topics, migrations) and exit; for production deployments."""
    from finpulse.stack.services import server_specs, wait_and_set_up

    settings = _settings()
    try:
        wait_and_set_up(server_specs(settings), timeout_s=timeout, echo=typer.echo)
    except StackError as exc:
        raise _fail(str(exc)) from exc


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command()(init)
    app.command()(up)
    app.command()(down)
    app.command()(status)
