"""The runner's delivery rules: ack only after the insert, retry while a sink is down, never lose a message."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from finpulse.settings import load_settings
from stream.metrics import StreamMetrics
from stream.runner import BatchRunner
from tests.unit.stream.fakes import FakeClickHouse, FakeConsumer, FakeEngine, FakeModels, FakeTopicSink, events, raw


def run_async(fn: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    @functools.wraps(fn)
    def wrapper() -> None:
        asyncio.run(fn())

    return wrapper


def _runner(clickhouse: FakeClickHouse, **settings: object) -> tuple[BatchRunner, FakeTopicSink, FakeTopicSink]:
    classified, dlq = FakeTopicSink(), FakeTopicSink()
    runner = BatchRunner(
        load_settings(stream_retry_max_s=0.05, **settings),
        models=FakeModels(FakeEngine()),
        clickhouse=clickhouse,  # type: ignore[arg-type]
        classified=classified,  # type: ignore[arg-type]
        dlq=dlq,  # type: ignore[arg-type]
        metrics=StreamMetrics(),
    )
    return runner, classified, dlq


async def _take_events_ack(batch: list) -> None:
    # What faust's take_events does once the loop body returns: drop its own reference.
    for event in batch:
        event.message.ack(event.consumer)


@run_async
async def test_offsets_become_committable_only_after_the_insert() -> None:
    consumer = FakeConsumer()
    clickhouse = FakeClickHouse(down=3)
    runner, classified, _ = _runner(clickhouse)
    batch = events([raw(i) for i in range(5)], consumer)
    await runner.process(batch)
    await _take_events_ack(batch)
    assert consumer.acked == []  # faust's ack alone must not make the offsets committable
    await runner.drain(5)
    assert clickhouse.calls == 4 and len(clickhouse.rows) == 5
    assert sorted(consumer.acked) == [(0, i) for i in range(5)]
    assert len(classified.sent) == 5
    assert runner.state.next_offsets == {("raw", 0): 5}
    assert runner.metrics.retries.labels("clickhouse")._value.get() == 3
    assert runner.metrics.backpressure._value.get() == 0


@run_async
async def test_a_batch_that_never_reaches_clickhouse_is_never_acked() -> None:
    consumer = FakeConsumer()
    runner, _, _ = _runner(FakeClickHouse(down=10**9))
    batch = events([raw(i) for i in range(3)], consumer)
    await runner.process(batch)
    await _take_events_ack(batch)
    await asyncio.sleep(0.3)
    assert runner.state.failing_sinks == {"clickhouse"}
    for task in list(runner._inflight):  # the worker stops (or dies) while ClickHouse is still down
        task.cancel()
    await asyncio.sleep(0)
    assert consumer.acked == []
    assert all(not e.message.acked for e in batch)


@run_async
async def test_backpressure_blocks_the_next_batch_while_a_sink_is_down() -> None:
    consumer = FakeConsumer()
    clickhouse = FakeClickHouse(down=10**9)
    runner, _, _ = _runner(clickhouse, stream_inflight_batches=1)
    first, later = events([raw(0)], consumer), events([raw(1)], consumer, first=1)
    await runner.process(first)
    await _take_events_ack(first)
    second = asyncio.create_task(runner.process(later))
    await asyncio.sleep(0.3)
    assert not second.done()  # the agent is not taking more while the first batch cannot be stored
    clickhouse.down = 0
    await asyncio.wait_for(second, 5)
    await _take_events_ack(later)
    await runner.drain(5)
    assert sorted(consumer.acked) == [(0, 0), (0, 1)]


@run_async
async def test_invalid_input_and_refused_rows_go_to_the_dlq_and_the_rest_flow() -> None:
    consumer = FakeConsumer()
    good = [raw(i) for i in range(6)]
    from finpulse.contracts import parse_raw

    clickhouse = FakeClickHouse(poison={parse_raw(good[4]).id})
    runner, classified, dlq = _runner(clickhouse)
    batch = events([*good, b"\xff\xfe not utf-8"], consumer)
    await runner.process(batch)
    await _take_events_ack(batch)
    await runner.drain(5)
    assert len(clickhouse.rows) == 5 and len(classified.sent) == 5
    reasons = sorted(r.field for r in dlq.sent)
    assert reasons == ["", "clickhouse"]
    assert {r.message.value for r in dlq.sent} == {good[4], b"\xff\xfe not utf-8"}
    assert len(consumer.acked) == 7  # everything accounted for: stored or dead-lettered
    assert runner.state.stored == 5 and runner.state.dead_lettered == 2
