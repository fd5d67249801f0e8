"""The ingest worker: state, producer, pipeline, the configured sources (one thread each) and the HTTP server
(push endpoint, /healthz, /metrics, /status). Stops cleanly: sources first, then the pipeline drains.

One worker owns a state dir (an exclusive lock on worker.lock, whose content says who holds it). The long-running
worker also takes replay jobs that `finpulse ingest replay` hands it through the spool (ingest/spool.py)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingest.config import IngestConfig
from ingest.metrics import IngestMetrics
from ingest.normalise import Normaliser
from ingest.pipeline import Pipeline
from ingest.producer import RawProducer
from ingest.recovery import recover
from ingest.sources import build_source
from ingest.sources.base import Source, SourceContext
from ingest.sources.push import PushEndpoint
from ingest.spool import SpoolRunner
from ingest.store import StateStore

log = logging.getLogger(__name__)


class WorkerBusy(RuntimeError):
    """Another worker holds this state dir."""


def build_sources(config: IngestConfig) -> list[Source]:
    """One Source per configured source, by its kind (ingest/sources/<kind>.py)."""
    return [build_source(cfg, config.batch_size) for cfg in config.sources]


class Worker:
    def __init__(self, config: IngestConfig) -> None:
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(config.state_dir / "worker.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise WorkerBusy(
                f"another ingest worker uses {config.state_dir}; stop it or set FINPULSE_INGEST_STATE_DIR"
            ) from exc
        self._lock_info(spool=False)
        self.metrics = IngestMetrics()
        self.store = StateStore(
            config.state_dir / "state.sqlite", window_s=config.dedupe_window_s, stories=config.stories
        )
        self.producer = RawProducer(
            config.kafka, config.topic, config.compression, f"finpulse-ingest-{config.worker_id}"
        )
        self.pipeline = Pipeline(
            store=self.store,
            producer=self.producer,
            normaliser=Normaliser(
                companies=config.companies,
                max_title_chars=config.max_title_chars,
                max_body_chars=config.max_body_chars,
                worker_id=config.worker_id,
            ),
            metrics=self.metrics,
            batch_size=config.batch_size,
            recover=partial(recover, config.kafka, config.topic, self.store, config.worker_id),
        )
        self.sources_stop = threading.Event()
        self.ctx = SourceContext(self.pipeline, self.store, self.metrics, self.sources_stop, config.max_fetch_bytes)
        self.threads: list[threading.Thread] = []
        self.sources: list[Source] = []
        self.spool: SpoolRunner | None = None

    def _lock_info(self, *, spool: bool) -> None:
        """Who holds the state dir, for the CLI that finds it locked (ingest/spool.py reads it)."""
        info = json.dumps({"pid": os.getpid(), "spool": spool, "topic": self.config.topic, "port": self.config.port})
        os.pwrite(self._lock_fd, info.encode(), 0)
        os.ftruncate(self._lock_fd, len(info.encode()))

    def start(self, sources: list[Source] | None = None, *, spool: bool | None = None) -> None:
        """Start the given sources (default: the configured ones). spool (default: when running the configured
        sources, i.e. `ingest run`): also take replay jobs from the spool."""
        self.pipeline.start()
        self.sources = build_sources(self.config) if sources is None else list(sources)
        take_jobs = sources is None if spool is None else spool
        if take_jobs:
            self.spool = SpoolRunner(
                self.config.state_dir,
                self.config.batch_size,
                self.config.topic,
                busy=tuple(s.name for s in self.sources),
            )
            self.sources.append(self.spool)
        for source in self.sources:
            thread = threading.Thread(
                target=self._run_source, args=(source,), name=f"source-{source.name}", daemon=True
            )
            thread.start()
            self.threads.append(thread)
        if self.spool is not None:
            self._lock_info(spool=True)
        log.info("ingest worker started", extra={"sources": [s.name for s in self.sources], "topic": self.config.topic})

    def _run_source(self, source: Source) -> None:
        try:
            source.run(self.ctx)
        except Exception:  # one broken source must not take the others down
            self.metrics.errors.labels(source.name, "crashed").inc()
            log.exception("source %s stopped with an error", source.name)

    def wait_sources(self, timeout: float | None = None) -> None:
        for thread in self.threads:
            thread.join(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        self.sources_stop.set()
        self.wait_sources(timeout / 2)
        self.pipeline.stop(timeout / 2)
        self.producer.close()
        self.store.close()
        os.close(self._lock_fd)
        log.info("ingest worker stopped", extra={"counters": self.metrics.snapshot()["sources"]})

    # --- HTTP ------------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        alive = self.pipeline.alive()
        return {
            "status": "ok" if alive else "failed",
            "ready": self.pipeline.ready.is_set(),
            "worker": self.config.worker_id,
            "topic": self.config.topic,
            "sources": {s.name: t.is_alive() for s, t in zip(self.sources, self.threads, strict=False)},
        }

    def app(self) -> Starlette:
        async def healthz(request: Request) -> JSONResponse:
            body = self.health()
            return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

        async def metrics(request: Request) -> Response:
            return Response(self.metrics.exposition(), media_type="text/plain; version=0.0.4")

        async def status(request: Request) -> JSONResponse:
            replays = self.spool.snapshot() if self.spool is not None else []
            return JSONResponse({**self.health(), **self.metrics.snapshot(), "replays": replays})

        routes = [
            Route("/healthz", healthz),
            Route("/metrics", metrics),
            Route("/status", status),
        ]
        if self.config.push_enabled:
            push = PushEndpoint(
                self.pipeline,
                self.metrics,
                self.config.api_keys,
                self.config.max_fetch_bytes,
                max_records=self.config.push_max_records,
                rate_per_s=self.config.push_rate_per_s,
                burst=self.config.push_burst,
            )
            routes.append(Route("/v1/push", push.handle, methods=["POST"]))
        return Starlette(routes=routes)

    def serve(self) -> None:
        """Serve HTTP until SIGINT/SIGTERM, then stop everything."""
        import uvicorn

        server = uvicorn.Server(
            uvicorn.Config(
                self.app(), host=self.config.host, port=self.config.port, log_level="warning", access_log=False
            )
        )
        try:
            server.run()
        finally:
            self.stop()
