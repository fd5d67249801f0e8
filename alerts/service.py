"""The alert engine as a service: the evaluation loop, the delivery loop, and /healthz, /metrics, /status.

Two threads with one ClickHouse client each (a client's HTTP session runs one query at a time): the engine
evaluates every ``alerts_interval_s``; the dispatcher drains the outbox every second. `finpulse up` runs this
through :func:`service_spec`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alerts.metrics import AlertMetrics
from finpulse import probe
from finpulse.settings import Settings
from finpulse.stack.parts import finpulse_command
from finpulse.stack.supervisor import ServiceSpec

log = logging.getLogger(__name__)

DISPATCH_INTERVAL_S = 1.0


class _Stopped(Exception):
    """Raised by our signal handler: uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, and the default
    handler would then kill the process before the loops finish their step (exit code -15 instead of 0)."""


def _raise_stopped(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def endpoint(settings: Settings) -> str:
    return f"http://{settings.alerts_host}:{settings.alerts_port}"


def healthy(settings: Settings, timeout_s: float = 2.0) -> bool:
    return probe.ok(f"{endpoint(settings)}/healthz", timeout_s=timeout_s)


def service_spec(settings: Settings) -> ServiceSpec:
    return ServiceSpec(
        name="alerts",
        endpoint=endpoint(settings),
        healthy=partial(healthy, settings),
        argv=partial(finpulse_command, "alerts", "run"),
        ports=(settings.alerts_port,),
        host=settings.alerts_host,
        note=f"rules every {settings.alerts_interval_s:g}s"
        + (f" from {settings.alerts_rules_file} + dashboard" if settings.alerts_rules_file else " (dashboard rules)"),
    )


class AlertService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = AlertMetrics()
        self.stopping = threading.Event()
        self.engine: Any = None
        self.started = time.time()
        self.threads: list[threading.Thread] = []

    # --- loops ---------------------------------------------------------------------------------------------------
    def start(self) -> None:
        from alerts.config import sync_rules_file
        from alerts.dispatcher import Dispatcher
        from alerts.engine import Engine
        from warehouse.client import create_client, wait_until_ready

        wait_until_ready(self.settings, timeout=self.settings.health_timeout_s)
        engine_client = create_client(self.settings)
        sync_rules_file(self.settings, engine_client)
        if self.settings.alerts_default_rules:
            from alerts.defaults import seed_default_rules

            seed_default_rules(self.settings, engine_client)
        self.engine = Engine(self.settings, engine_client, metrics=self.metrics)
        dispatcher = Dispatcher(self.settings, create_client(self.settings), metrics=self.metrics)
        self.threads = [
            threading.Thread(target=self._loop, args=("evaluate", self.engine.tick, self.settings.alerts_interval_s)),
            threading.Thread(target=self._loop, args=("dispatch", dispatcher.run_once, DISPATCH_INTERVAL_S)),
        ]
        for thread in self.threads:
            thread.daemon = True
            thread.start()

    def _loop(self, name: str, step: Any, interval_s: float) -> None:
        while not self.stopping.is_set():
            began = time.monotonic()
            try:
                step()
            except Exception:  # ClickHouse away, a bad row...: log, keep going; /healthz turns 503 when stale
                log.exception("alert %s loop step failed", name)
            self.stopping.wait(max(0.0, interval_s - (time.monotonic() - began)))

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=15)

    # --- HTTP ----------------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        last = self.engine.last_tick_ok if self.engine is not None else None
        stale_after = max(3 * self.settings.alerts_interval_s, 60.0)
        if last is not None and time.time() - last <= stale_after:
            status = "ok"
        else:
            status = "starting" if last is None and time.time() - self.started < stale_after else "stale"
        return {
            "status": status,
            "last_tick_ok": last,
            "last_error": self.engine.last_error if self.engine is not None else "",
            "firing": len(self.engine.alerts) if self.engine is not None else 0,
        }

    def app(self) -> Starlette:
        async def healthz(request: Request) -> JSONResponse:
            body = self.health()
            return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

        async def metrics(request: Request) -> Response:
            return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

        async def status(request: Request) -> JSONResponse:
            body = self.health()
            if self.engine is not None:
                body["series"] = {fp: s.state for fp, s in self.engine.states.items() if s.state != "inactive"}
            return JSONResponse(body)

        return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics), Route("/status", status)])

    def serve(self) -> None:
        """Run until SIGINT/SIGTERM (uvicorn handles both), then stop the loops."""
        import uvicorn

        self.start()
        server = uvicorn.Server(
            uvicorn.Config(
                self.app(),
                host=self.settings.alerts_host,
                port=self.settings.alerts_port,
                log_level="warning",
                access_log=False,
            )
        )
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _raise_stopped)
        try:
            server.run()
        except _Stopped as stop:
            log.info("stopping on signal", extra={"signal": signal.Signals(stop.args[0]).name})
        finally:
            self.stop()
