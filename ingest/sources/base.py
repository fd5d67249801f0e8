"""What every source gets: the pipeline to submit to, its stored position, metrics, and a stop signal."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from ingest.metrics import IngestMetrics
from ingest.pipeline import Pipeline
from ingest.store import StateStore

log = logging.getLogger("ingest.sources")


@dataclass
class SourceContext:
    pipeline: Pipeline
    store: StateStore
    metrics: IngestMetrics
    stopping: threading.Event
    max_fetch_bytes: int

    def position(self, source: str) -> Any:
        return self.store.position(source)

    def sleep(self, seconds: float) -> bool:
        """Wait; False when the worker is stopping."""
        return not self.stopping.wait(max(0.0, seconds))

    def error(self, source: str, reason: str, detail: str, retry_in: float | None = None) -> None:
        self.metrics.errors.labels(source, reason).inc()
        if retry_in is None:
            log.warning("%s: %s: %s", source, reason, detail, extra={"source": source, "reason": reason})
        else:
            log.warning(
                "%s: %s: %s; next attempt in %.0fs",
                source,
                reason,
                detail,
                retry_in,
                extra={"source": source, "reason": reason},
            )

    def ok(self, source: str) -> None:
        self.metrics.last_success.labels(source).set(time.time())


class Source(Protocol):
    name: str

    def run(self, ctx: SourceContext) -> None:
        """Fetch and submit until ctx.stopping is set (or, for finite sources, until done)."""


def backoff_s(interval_s: float, failures: int, cap_s: float) -> float:
    """Next poll after `failures` failures in a row: the interval, doubled per failure, capped."""
    return min(interval_s * (2 ** max(0, failures)), cap_s) if failures else interval_s
