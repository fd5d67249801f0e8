"""The faust app of one stream worker: topics, the classify agent, timers, and the health/metrics endpoint.

Workers started with the same ``stream_group`` form one Kafka consumer group and share the raw topic's partitions;
worker ``index`` picks the health port (stream_port + index), the faust data dir and the GPU (index -> cuda:i).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

from classifier.device import affinity_cores, threads_for_worker
from finpulse.settings import Settings
from stream.entities import EntityStage
from stream.health import HealthServer
from stream.metrics import StreamMetrics
from stream.model import ModelServer, device_for_worker
from stream.runner import BatchRunner
from stream.sinks.classified import ClassifiedSink
from stream.sinks.clickhouse import ClickHouseSink
from stream.sinks.dlq import DlqSink
from stream.topics import declare

log = logging.getLogger(__name__)

LAG_EVERY_S = 2.0
# The inference thread takes the GIL back after every torch op (hundreds per batch); at Python's default 5 ms switch
# interval the event loop or the sink thread kept it that long each time while the cores idled. `finpulse bench
# pipeline`, same machine, alternating runs: stream/engine 0.84-0.97 at 0.5 ms against 0.61-0.89 at 5 ms.
GIL_SWITCH_INTERVAL_S = 0.0005
BEAT_EVERY_S = 1.0


def faust_options(settings: Settings, index: int) -> dict[str, Any]:
    """faust.App keyword arguments from the settings (kept apart so they can be checked without a broker)."""
    from finpulse.kafka_clients import faust_broker
    from finpulse.stack.kafka import MAX_MESSAGE_BYTES

    session = settings.stream_session_timeout_s
    return {
        **faust_broker(settings),  # brokers and their security, like every other client
        "datadir": str(settings.data_dir / "stream" / f"worker-{index}"),
        "autodiscover": False,
        "web_enabled": False,  # health and metrics have their own small server (stream/health.py)
        "topic_disable_leader": True,  # no tables, so no need for faust's leader-election topic
        "store": "memory://",
        "broker_session_timeout": session,
        "broker_heartbeat_interval": max(0.5, session / 4),
        "broker_request_timeout": max(40.0, session * 2),
        "broker_rebalance_timeout": max(30.0, session * 3),
        "broker_commit_interval": settings.stream_commit_interval_s,
        "consumer_auto_offset_reset": "earliest",
        # Rebalances must not wait for batches held while ClickHouse is down: their offsets simply stay
        # uncommitted and the partition's next owner reprocesses them (deduplicated by id).
        "stream_wait_empty": False,
        "stream_buffer_maxsize": max(1024, 4 * settings.stream_max_batch),
        "producer_acks": -1,
        # A dead-lettered message keeps its original bytes, up to the broker's limit.
        "producer_max_request_size": MAX_MESSAGE_BYTES,
        "producer_linger": 0.005,
    }


class StreamWorker:
    """Builds everything one worker needs; ``run`` blocks until SIGTERM/SIGINT."""

    def __init__(self, settings: Settings, *, index: int = 0, group: str | None = None) -> None:
        import faust

        self.settings = settings
        self.index = index
        self.group = group or settings.stream_group
        self.metrics = StreamMetrics()
        self.app = faust.App(self.group, **faust_options(settings, index))
        self.topics = declare(self.app, settings)
        self.device = device_for_worker(settings.model_device, index)
        if self.device == "cpu" and settings.model_threads is None:
            # Workers on one machine split its cores instead of each spinning up one thread per core.
            threads = threads_for_worker(affinity_cores(), settings.stream_workers_per_host, index)
            settings = self.settings = settings.model_copy(update={"model_threads": threads})
        self.models = ModelServer(settings, self.device, on_swap=self._on_swap)
        self._entities = EntityStage(settings, self.metrics.registry)
        self.runner = BatchRunner(
            settings,
            models=self.models,
            clickhouse=ClickHouseSink(settings, entities=self._entities),
            classified=ClassifiedSink(self.topics.classified),
            dlq=DlqSink(self.topics.dlq),
            metrics=self.metrics,
        )
        self.port = settings.stream_port + index
        self._beat = time.time()
        self._partitions: list[int] = []
        self._swaps = 0
        self._register()

    # --- faust wiring ---------------------------------------------------------------------------------------
    def _register(self) -> None:
        app, settings, runner = self.app, self.settings, self.runner

        async def classify(stream: Any) -> None:
            # take_events (take's sibling) hands over the events, whose acknowledgement the runner controls.
            async for events in stream.take_events(settings.stream_max_batch, within=settings.stream_max_wait_s):
                await runner.process(events)

        self.agent = app.agent(self.topics.raw, name="finpulse-stream-classify")(classify)

        async def load_model() -> None:
            await self.models.refresh()
            # the entity model too, off the loop, so the first batch does not wait for it (the sink polls it after)
            await asyncio.to_thread(self._entities.engine)

        async def poll_model() -> None:
            await self.models.refresh()

        async def beat() -> None:
            self._beat = time.time()
            self._partitions = sorted(tp.partition for tp in app.consumer.assignment())

        async def lag() -> None:
            await self._update_lag()

        app.task(load_model)
        app.timer(settings.stream_model_poll_s)(poll_model)
        app.timer(BEAT_EVERY_S)(beat)
        app.timer(LAG_EVERY_S)(lag)

    def _on_swap(self, engine: Any) -> None:
        self._swaps += 1
        if self._swaps > 1:
            self.metrics.model_swaps.inc()
        self.metrics.model_info.clear()
        self.metrics.model_info.labels(engine.model_version).set(1)

    async def _update_lag(self) -> None:
        """Lag = the partition's end offset minus the next offset not yet stored (what a restart would redo)."""
        assigned = [tp for tp in self.app.consumer.assignment() if tp.topic == self.settings.topic_raw]
        if not assigned:
            self.metrics.lag_total.set(0)
            return
        try:
            ends = await self.app.consumer.highwaters(*assigned)
        except Exception:  # a broker hiccup only delays a gauge
            log.debug("highwater query failed", exc_info=True)
            return
        total = 0
        for tp in assigned:
            done = self.runner.state.next_offsets.get((tp.topic, tp.partition))
            if done is None:
                done = await self.app.consumer.position(tp) or 0
            value = max(0, int(ends.get(tp, 0)) - done)
            self.metrics.lag.labels(str(tp.partition)).set(value)
            total += value
        self.metrics.lag_total.set(total)

    # --- health -----------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        state = self.runner.state
        ready = self.models.engine is not None
        status = "ok" if ready else "waiting for a promoted model"
        if state.failing_sinks:
            status = "backpressure: " + ", ".join(sorted(state.failing_sinks)) + " unavailable"
        return {
            "status": status,
            "ready": ready,
            "worker": self.index,
            "group": self.group,
            "device": self.device,
            "model_version": self.models.model_version,
            "entity_model_version": self._entities.model_version,  # None: no entity model yet (rows skipped)
            "partitions": self._partitions,
            "batches": state.batches,
            "stored": state.stored,
            "dead_lettered": state.dead_lettered,
            "last_batch_at": state.last_batch_at,
            "loop_beat": self._beat,
        }

    # --- running ----------------------------------------------------------------------------------------------
    def run(self) -> None:
        import faust

        from finpulse.stack.topics import ensure_topics

        (self.settings.data_dir / "stream" / f"worker-{self.index}").mkdir(parents=True, exist_ok=True)
        ensure_topics(self.settings)  # idempotent; a topic auto-created by a subscription would get 1 partition
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        health = HealthServer(self.settings.stream_host, self.port, self.snapshot, self.metrics.exposition)
        health.start()
        log.info(
            "stream worker %d starting",
            self.index,
            extra={
                "group": self.group,
                "device": self.device,
                "health": f"http://{self.settings.stream_host}:{self.port}/healthz",
            },
        )
        worker = faust.Worker(
            self.app,
            loglevel=self.settings.log_level,
            quiet=True,
            override_logging=False,
            redirect_stdouts=False,
            console_port=0,
        )
        worker.spinner = None  # a terminal spinner writes escape codes into the JSON log lines
        try:
            worker.execute_from_commandline()
        finally:
            health.stop()
            self.runner.close()
