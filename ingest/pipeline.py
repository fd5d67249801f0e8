"""The single writer: sources submit items; one thread normalises, dedupes (redeliveries only), assigns each
document its story (ingest/stories.py: copies are kept, labelled with their story's id and a decaying novelty),
produces, waits for the broker's acknowledgement, then commits documents, stories, source positions and watermarks
in one transaction.

One writer keeps the order "acknowledged, then checkpointed" simple: nothing is in flight while it commits. A
broker that is down makes it wait and retry the unacknowledged documents (never the acknowledged ones), and the
bounded queue pushes back on the sources meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from finpulse.contracts import RawDocument
from ingest.item import Item, Rejected
from ingest.metrics import IngestMetrics
from ingest.normalise import Normaliser
from ingest.producer import BrokerUnavailable, RawProducer
from ingest.store import Pending, StateStore

log = logging.getLogger(__name__)

LINGER_S = 0.05
RETRY_BACKOFF_MAX_S = 15.0
_NO_POSITION = object()


class Stopped(Exception):
    """The worker is shutting down; the submission was not produced (its source position was not advanced)."""


@dataclass(frozen=True)
class ItemResult:
    status: Literal["accepted", "duplicate", "rejected"]
    id: str | None = None
    reason: str | None = None


@dataclass
class Submission:
    source: str
    kind: str
    items: list[Item]
    position: Any = _NO_POSITION
    future: Future[list[ItemResult]] = field(default_factory=Future)
    results: list[ItemResult | None] = field(default_factory=list)


class Pipeline:
    def __init__(
        self,
        *,
        store: StateStore,
        producer: RawProducer,
        normaliser: Normaliser,
        metrics: IngestMetrics,
        batch_size: int,
        recover: Callable[[], int] | None = None,
        max_queued: int = 64,
    ) -> None:
        self.store = store
        self.producer = producer
        self.normalise = normaliser
        self.metrics = metrics
        self.batch_size = batch_size
        self._recover = recover
        self.ready = threading.Event()  # set once recovery is done and documents can be produced
        self._queue: queue.Queue[Submission] = queue.Queue(maxsize=max_queued)
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-pipeline", daemon=True)

    # --- API for sources -------------------------------------------------------------------------------------
    def submit(
        self, source: str, kind: str, items: list[Item], position: Any = _NO_POSITION
    ) -> Future[list[ItemResult]]:
        """Queue items (blocks while the queue is full); the future resolves once they are acknowledged."""
        sub = Submission(source, kind, items, position)
        sub.results = [None] * len(items)
        while True:
            if self.stopping.is_set() or (self._thread.ident is not None and not self._thread.is_alive()):
                sub.future.set_exception(Stopped("worker is stopping (or its pipeline failed; see the log)"))
                return sub.future
            try:
                self._queue.put(sub, timeout=0.5)
                self.metrics.queue_depth.set(self._queue.qsize())
                return sub.future
            except queue.Full:
                continue

    def process(self, source: str, kind: str, items: list[Item], position: Any = _NO_POSITION) -> list[ItemResult]:
        """Submit and wait: the results, or Stopped."""
        return self.submit(source, kind, items, position).result()

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued (while the broker answers), then stop."""
        self.stopping.set()
        self._thread.join(timeout)

    # --- the loop --------------------------------------------------------------------------------------------
    def _take(self) -> list[Submission]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        subs, count = [first], len(first.items)
        deadline = time.monotonic() + LINGER_S
        while count < self.batch_size:
            try:
                sub = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            subs.append(sub)
            count += len(sub.items)
        self.metrics.queue_depth.set(self._queue.qsize())
        return subs

    def _recover_until_done(self) -> bool:
        """Run recovery, waiting for the broker as long as it takes (one log line per attempt)."""
        attempt, backoff = 0, 0.5
        while self._recover is not None:
            try:
                self._recover()
                break
            except BrokerUnavailable as exc:
                attempt += 1
                self.metrics.broker_up.set(0)
                self.metrics.errors.labels("kafka", "unavailable").inc()
                log.warning("recovery waits for Kafka (attempt %d): %s; retrying in %.1fs", attempt, exc, backoff)
                if self.stopping.wait(backoff):
                    return False
                backoff = min(backoff * 2, RETRY_BACKOFF_MAX_S)
        self.metrics.broker_up.set(1)
        self.ready.set()
        return True

    def _run(self) -> None:
        if not self._recover_until_done():
            self._refuse_queued()
            return
        while True:
            subs = self._take()
            if not subs:
                if self.stopping.is_set():
                    break
                continue
            try:
                self._handle(subs)
            except Exception as exc:  # a bug must not leave sources waiting forever
                log.exception("pipeline batch failed")
                for sub in subs:
                    if not sub.future.done():
                        sub.future.set_exception(exc)
        self._refuse_queued()

    def _refuse_queued(self) -> None:
        while True:  # anything submitted during shutdown is refused, not lost: its position was not advanced
            try:
                self._queue.get_nowait().future.set_exception(Stopped("worker is stopping"))
            except queue.Empty:
                break

    def _handle(self, subs: list[Submission]) -> None:
        pending = Pending()
        docs: list[RawDocument] = []
        owners: list[tuple[Submission, int]] = []
        for sub in subs:
            self.metrics.fetched.labels(sub.source).inc(len(sub.items))
            for i, item in enumerate(sub.items):
                try:
                    doc = self.normalise(sub.source, sub.kind, item)
                except Rejected as exc:
                    self.metrics.rejected.labels(sub.source, exc.reason).inc()
                    log.info("rejected: %s", exc, extra={"source": sub.source, "reason": exc.reason})
                    sub.results[i] = ItemResult("rejected", reason=str(exc))
                    continue
                match = self.store.duplicate_of(doc, pending)
                if match:
                    self.metrics.duplicates.labels(sub.source, match).inc()
                    sub.results[i] = ItemResult("duplicate", doc.id, f"duplicate ({match})")
                    continue
                self.store.hold(doc, pending)
                docs.append(self.store.assign_story(doc, pending))
                owners.append((sub, i))
        watermarks = self._produce(docs)
        if watermarks is None:
            for sub in subs:
                sub.future.set_exception(Stopped("stopped while Kafka was unavailable"))
            return
        positions = {sub.source: sub.position for sub in subs if sub.position is not _NO_POSITION}
        self.store.commit(docs, positions, watermarks, pending=pending)
        for (sub, i), doc in zip(owners, docs, strict=True):
            sub.results[i] = ItemResult("accepted", doc.id)
            if doc.story_id != doc.id:
                self.metrics.story_copies.labels(sub.source).inc()
        for sub in subs:
            n = sum(1 for r in sub.results if r is not None and r.status == "accepted")
            if n:
                self.metrics.produced.labels(sub.source).inc(n)
            sub.future.set_result([r for r in sub.results if r is not None])

    def _produce(self, docs: list[RawDocument]) -> dict[tuple[str, int], int] | None:
        """Watermarks of the acknowledged batch; None when stopping before the broker came back."""
        marks: dict[tuple[str, int], int] = {}
        remaining, attempt, backoff = docs, 0, 0.5
        while remaining:
            result = self.producer.send(remaining)
            for key, off in result.watermarks.items():
                marks[key] = max(marks.get(key, 0), off)
            if not result.failed:
                break
            attempt += 1
            self.metrics.broker_up.set(0)
            self.metrics.errors.labels("kafka", "produce_failed").inc()
            log.warning(
                "Kafka did not acknowledge %d of %d documents (attempt %d): %s; retrying in %.1fs",
                len(result.failed),
                len(remaining),
                attempt,
                result.error,
                backoff,
            )
            remaining = result.failed
            if self.stopping.wait(backoff):
                return None
            backoff = min(backoff * 2, RETRY_BACKOFF_MAX_S)
        self.metrics.broker_up.set(1)
        return marks
