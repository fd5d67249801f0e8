"""The batch runner: classify a micro-batch off the event loop, write it to the sinks, and only then let its
offsets be committed.

Acknowledgement: faust's ``take_events`` acks a batch's events as soon as the loop body returns. Each message's
reference count is raised first (``hold``), so that ack only drops faust's own reference; the final ack - which
marks the offset committable - comes from ``_deliver`` after ClickHouse acknowledged the insert and both topics
acknowledged their messages. A batch that never gets there (worker killed, ClickHouse down at shutdown) is not
committed and is redelivered; redelivered rows collapse by id in ClickHouse.

Backpressure: at most ``stream_inflight_batches`` batches are being delivered; the next batch waits for a slot, so
while a sink is down the agent stops taking, faust's stream buffer fills and fetching pauses. Nothing is buffered
without bound and nothing is dropped. Retries back off exponentially up to ``stream_retry_max_s``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from finpulse.contracts import ClassifiedDocument
from finpulse.settings import Settings
from stream.batch import Incoming, Reject, classify_safely, decode
from stream.metrics import StreamMetrics
from stream.sinks import RowsRejectedError, SinkUnavailableError
from stream.sinks.classified import ClassifiedSink
from stream.sinks.clickhouse import ClickHouseSink
from stream.sinks.dlq import DlqSink
from warehouse.schema import document_row

log = logging.getLogger(__name__)

_FIRST_RETRY_S = 0.25


@dataclass
class Prepared:
    """A decoded and classified batch, ready for the sinks."""

    docs: list[ClassifiedDocument]
    sources: list[Incoming]  # the message each doc came from, for the DLQ if ClickHouse refuses its row
    rejects: list[Reject]
    model_version: str
    decode_s: float
    inference_s: float


@dataclass
class RunnerState:
    """What /healthz reports; written on the event loop, read by the health thread (plain attribute reads)."""

    batches: int = 0
    stored: int = 0
    dead_lettered: int = 0
    last_batch_at: float | None = None
    failing_sinks: set[str] = field(default_factory=set)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)


@dataclass
class _Pending:
    """A batch's events, acked only once it and every batch taken before it are stored (see ``_release``)."""

    events: list[Any]
    done: bool = False


class BatchRunner:
    def __init__(
        self,
        settings: Settings,
        *,
        models: Any,
        clickhouse: ClickHouseSink,
        classified: ClassifiedSink,
        dlq: DlqSink,
        metrics: StreamMetrics,
    ) -> None:
        self.settings = settings
        self.models = models
        self.clickhouse = clickhouse
        self.classified = classified
        self.dlq = dlq
        self.metrics = metrics
        self.state = RunnerState()
        # One inference thread: the engine already uses every core; a second would only contend for them.
        self._infer = ThreadPoolExecutor(1, thread_name_prefix="classify")
        self._sink = ThreadPoolExecutor(1, thread_name_prefix="clickhouse")
        self._slots: asyncio.Semaphore | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        # Batches in the order they were taken. faust commits past an unacked offset when the acked ones after it
        # start one offset later (consumer._new_offset), so offsets are acked strictly in order, never out of it.
        self._order: list[_Pending] = []

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.stream_inflight_batches)
        return self._slots

    # --- the agent calls this for every micro-batch -----------------------------------------------------------
    async def process(self, events: Sequence[Any]) -> None:
        """Start delivering one batch of faust events; returns when the next batch may be taken."""
        if not events:
            return
        for event in events:
            event.message.incref()  # see the module docstring: our final ack, not take_events', commits
        pending = _Pending(list(events))
        self._order.append(pending)
        try:
            messages = [
                Incoming(e.message.key, e.message.value, e.message.topic, e.message.partition, e.message.offset)
                for e in events
            ]
            self.metrics.batch_size.observe(len(messages))
            engine = await self.models.current()
            loop = asyncio.get_running_loop()
            prepared = await loop.run_in_executor(self._infer, self.prepare_with, engine, messages)
        except Exception:
            # Not a bad message (decode and classify turn those into rejects): a fault of this worker. Its events
            # stay unacked, so nothing after them is committed; exit and let the supervisor restart the worker
            # from the committed offset instead of letting faust restart the agent past a batch it lost.
            log.critical("stream batch failed unexpectedly; exiting so it is redelivered", exc_info=True)
            self._fatal()
            raise
        self.metrics.stage.labels("decode").observe(prepared.decode_s)
        self.metrics.stage.labels("inference").observe(prepared.inference_s)
        self.metrics.inference.observe(prepared.inference_s)
        started = time.perf_counter()
        await self.slots.acquire()
        self.metrics.stage.labels("wait_slot").observe(time.perf_counter() - started)
        task = asyncio.create_task(self._deliver(prepared, pending))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    @staticmethod
    def prepare(
        engine: Any, messages: list[Incoming], max_bytes: int | None = None, max_depth: int | None = None
    ) -> Prepared:
        """Decode, validate and classify (runs on the inference thread). Bad messages and documents the model
        raises on become rejects; nothing here raises for a message's content."""
        t0 = time.perf_counter()
        limits = {k: v for k, v in (("max_bytes", max_bytes), ("max_depth", max_depth)) if v is not None}
        decoded = decode(messages, **limits)
        t1 = time.perf_counter()
        out = classify_safely(engine, decoded)
        t2 = time.perf_counter()
        return Prepared(out.docs, out.sources, decoded.rejects + out.rejects, engine.model_version, t1 - t0, t2 - t1)

    def prepare_with(self, engine: Any, messages: list[Incoming]) -> Prepared:
        s = self.settings
        return self.prepare(engine, messages, s.stream_max_message_bytes, s.stream_max_json_depth)

    def _fatal(self) -> None:
        """Hard exit (overridable in tests): no commit of anything after the lost batch can follow."""
        logging.shutdown()
        os._exit(70)

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) for batches being delivered; what does not finish is redelivered after a restart."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=timeout)

    def close(self) -> None:
        self._infer.shutdown(wait=False, cancel_futures=True)
        self._sink.shutdown(wait=False, cancel_futures=True)
        self.clickhouse.close()

    # --- delivery -------------------------------------------------------------------------------------------
    async def _deliver(self, batch: Prepared, pending: _Pending) -> None:
        try:
            refused = await self._store(batch.docs, 0)
            stored_at = time.time()
            docs = [d for i, d in enumerate(batch.docs) if i not in refused] if refused else batch.docs
            for doc in docs:
                self.metrics.end_to_end.observe(max(0.0, stored_at - doc.ingested_at.timestamp()))
            rejects = batch.rejects + [Reject(batch.sources[i], "clickhouse", why) for i, why in refused.items()]
            if docs:
                await self._timed("classified", lambda: self.classified.write_docs(docs))
            if rejects:
                await self._timed("dlq", lambda: self.dlq.write_rejects(rejects))
            pending.done = True
            self._release()
            self._count(docs, rejects)
        except Exception:
            log.critical("stream batch delivery failed unexpectedly; exiting so it is redelivered", exc_info=True)
            self._fatal()
            raise
        finally:
            self.slots.release()

    def _release(self) -> None:
        """Ack the stored batches at the head of the taken order: an offset becomes committable only when every
        offset before it (in this worker) was stored or dead-lettered."""
        while self._order and self._order[0].done:
            for event in self._order.pop(0).events:
                event.ack()  # the final reference: this offset may now be committed
                m = event.message
                key = (m.topic, m.partition)
                self.state.next_offsets[key] = max(self.state.next_offsets.get(key, 0), m.offset + 1)

    async def _store(self, docs: list[ClassifiedDocument], first: int) -> dict[int, str]:
        """Insert the rows in one request. Rows ClickHouse refuses as data (not as an outage) are isolated by
        halving; returns {index in the batch: reason} of the refused ones (they go to the DLQ)."""
        if not docs:
            return {}
        rows, unshaped = [], {}
        for i, doc in enumerate(docs):
            try:
                rows.append(document_row(doc))
            except Exception as exc:  # a value no row can hold (e.g. meta json.dumps refuses): that document only
                unshaped[first + i] = f"cannot shape the row: {type(exc).__name__}: {exc}"[:500]
        if unshaped:
            kept = [(i, d) for i, d in enumerate(docs) if first + i not in unshaped]
            refused = dict(unshaped)
            # the shapeable rest, one by one through the normal path (rare: only with an unshapeable document)
            for i, d in kept:
                refused.update(await self._store([d], first + i))
            return refused
        loop = asyncio.get_running_loop()
        try:
            await self._timed("clickhouse", lambda: loop.run_in_executor(self._sink, self.clickhouse.write, rows))
            return {}
        except RowsRejectedError as exc:
            if len(docs) == 1:
                log.error("ClickHouse refused document %s: %s", docs[0].id, exc)
                return {first: str(exc)}
            mid = len(docs) // 2
            return {**await self._store(docs[:mid], first), **await self._store(docs[mid:], first + mid)}

    async def _timed(self, sink: str, op: Callable[[], Awaitable[Any]]) -> Any:
        """Run one sink write, retrying while the sink is unavailable (the only error known to be safe to retry)."""
        delay = min(_FIRST_RETRY_S, self.settings.stream_retry_max_s)
        while True:
            started = time.perf_counter()
            try:
                result = await op()
            except SinkUnavailableError as exc:
                self.metrics.retries.labels(sink).inc()
                self.state.failing_sinks.add(sink)
                self.metrics.backpressure.set(1)
                log.warning("%s; retrying in %.1f s (intake paused)", exc, delay, extra={"sink": sink})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.stream_retry_max_s)
                continue
            self.metrics.stage.labels(sink).observe(time.perf_counter() - started)
            if sink in self.state.failing_sinks:
                self.state.failing_sinks.discard(sink)
                log.info("%s available again", sink)
                if not self.state.failing_sinks:
                    self.metrics.backpressure.set(0)
            return result

    def _count(self, docs: list[ClassifiedDocument], rejects: list[Reject]) -> None:
        unlabeled = sum(1 for d in docs if d.topic is None)
        self.metrics.documents.labels("stored").inc(len(docs) - unlabeled)
        self.metrics.documents.labels("unlabeled").inc(unlabeled)
        for reject in rejects:
            self.metrics.dlq.labels(reject.field.split(".")[0] or "document").inc()
        self.state.batches += 1
        self.state.stored += len(docs)
        self.state.dead_lettered += len(rejects)
        self.state.last_batch_at = time.time()
