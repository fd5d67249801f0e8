"""Every kind of poison becomes a DLQ reject with its reason, never an exception that crashes or wedges the agent;
offsets are acked strictly in order, so a commit never skips a batch that was not stored."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from types import SimpleNamespace

import pytest

from stream.batch import Incoming, classify_safely, decode
from tests.unit.stream.fakes import FakeClickHouse, FakeConsumer, FakeEngine, events, raw
from tests.unit.stream.test_runner import _runner, _take_events_ack, run_async


def _msg(value: bytes | None, offset: int = 0) -> Incoming:
    return Incoming(b"k", value, "finpulse.raw", 0, offset)


def _with(**fields: object) -> bytes:
    doc = json.loads(raw(1))
    doc.update(fields)
    return json.dumps(doc).encode()


POISON = {
    "schema_version list": (b'{"schema_version":[]}', "schema_version"),
    "schema_version dict": (_with(schema_version={"a": 1}), "schema_version"),
    "deep array 100k": (b"[" * 100_000 + b"]" * 100_000, "depth"),
    "deep object": (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "depth"),
    "deep meta": (_with(meta=json.loads('{"a":' * 60 + "1" + "}" * 60)), "depth"),
    "invalid utf-8": (b'{"title": "\xff\xfe"}', ""),
    "oversize": (_with(body="x" * (3 * 1024 * 1024)), "size"),
    "title not a string": (_with(title=5), "title"),
    "tickers nested": (_with(tickers=[["A"]]), "tickers.0"),
    "published_at garbage": (_with(published_at={"y": 1}), "published_at"),
    "a JSON array": (b"[1, 2]", ""),
    "NaN body": (b'{"body": NaN}', ""),
    "empty": (b"", ""),
}


@pytest.mark.parametrize("name", sorted(POISON))
def test_each_poison_class_is_a_reject_with_a_reason(name: str) -> None:
    value, field = POISON[name]
    started = time.perf_counter()
    decoded = decode([_msg(raw(0), 0), _msg(value, 1), _msg(raw(2), 2)])
    assert time.perf_counter() - started < 2.0
    assert [m.offset for m in decoded.sources] == [0, 2]
    [reject] = decoded.rejects
    assert reject.message.value == value and reject.field == field and reject.reason


class RaisingEngine(FakeEngine):
    """Raises on any batch that contains a text with 'boom' (as a model can on one odd input)."""

    def predict(self, texts: Sequence[str]):  # type: ignore[override]
        if any("boom" in t for t in texts):
            raise RuntimeError("index out of range in self")
        return super().predict(texts)


def test_a_document_the_model_raises_on_is_rejected_and_the_rest_classified() -> None:
    boom = _with(title="boom goes the model", id="boomdoc0001")
    decoded = decode([_msg(raw(0), 0), _msg(boom, 1), _msg(raw(2), 2)])
    out = classify_safely(RaisingEngine(), decoded)
    assert [m.offset for m in out.sources] == [0, 2] and len(out.docs) == 2
    [reject] = out.rejects
    assert reject.field == "model" and "RuntimeError" in reject.reason and reject.message.value == boom


@run_async
async def test_poison_batch_is_dead_lettered_and_valid_documents_stored() -> None:
    consumer = FakeConsumer()
    runner, classified, dlq = _runner(FakeClickHouse())
    runner.models.engine = RaisingEngine()
    values = [raw(0), b'{"schema_version":[]}', raw(2), b"[" * 100_000, _with(title="boom", id="boomdoc0002")]
    batch = events(values, consumer)
    await runner.process(batch)
    await _take_events_ack(batch)
    await runner.drain(5)
    assert len(classified.sent) == 2
    assert sorted(r.message.offset for r in dlq.sent) == [1, 3, 4]
    assert sorted(consumer.acked) == [(0, i) for i in range(5)]


@run_async
async def test_a_later_batch_is_not_acked_before_an_earlier_one_is_stored() -> None:
    consumer = FakeConsumer()
    clickhouse = FakeClickHouse(down=10**9)
    runner, _, _ = _runner(clickhouse, stream_inflight_batches=2)
    first = events([raw(0)], consumer, first=0)
    await runner.process(first)
    await _take_events_ack(first)
    await asyncio.sleep(0.1)  # the first batch is retrying against a ClickHouse that is down
    clickhouse.down = 0
    # the second batch may overtake the first; it must not be acked before the first is
    original_write = clickhouse.write
    held = {"first": True}

    def write(rows):  # the first batch's retry still fails once more while the second is stored
        if held["first"] and rows[0][0] == json.loads(raw(0))["id"]:
            held["first"] = False
            from stream.sinks import SinkUnavailableError

            raise SinkUnavailableError("clickhouse", "still down")
        original_write(rows)

    clickhouse.write = write  # type: ignore[method-assign]
    second = events([raw(1)], consumer, first=1)
    await runner.process(second)
    await _take_events_ack(second)
    await runner.drain(5)
    assert consumer.acked == [(0, 0), (0, 1)]  # in order, whatever order the inserts finished in


@run_async
async def test_an_unexpected_fault_exits_the_worker_without_acking() -> None:
    consumer = FakeConsumer()
    runner, _, _ = _runner(FakeClickHouse())
    exits: list[int] = []
    runner._fatal = lambda: exits.append(1)  # type: ignore[method-assign]

    def broken(engine, messages):
        raise MemoryError("out of memory")

    runner.prepare_with = broken  # type: ignore[method-assign]
    batch = events([raw(0)], consumer)
    with pytest.raises(MemoryError):
        await runner.process(batch)
    await _take_events_ack(batch)
    assert exits == [1] and consumer.acked == []


def test_clickhouse_partition_limit_is_a_content_error_but_merge_backlog_is_an_outage() -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError

    from stream.sinks import RowsRejectedError, SinkUnavailableError
    from stream.sinks.clickhouse import ClickHouseSink
    from tests.unit.stream.test_runner import load_settings
    from warehouse.schema import document_row

    row = document_row(classify_safely(FakeEngine(), decode([Incoming(b"k", raw(0), "t", 0, 0)])).docs[0])

    class Client:
        def __init__(self, message: str) -> None:
            self.message = message

        def insert(self, *args, **kwargs):
            raise DatabaseError(self.message, code=252, name="TOO_MANY_PARTS")

        def query(self, *args, **kwargs):  # the sink's look-up of analysts' corrections: none
            return SimpleNamespace(column_names=(), result_rows=[])

        def close(self) -> None:
            pass

    sink = ClickHouseSink(load_settings())
    sink._client = Client("Too many partitions for single INSERT block (more than 100). (TOO_MANY_PARTS)")
    with pytest.raises(RowsRejectedError):  # the runner splits the batch until each half is accepted
        sink.write([row])
    sink._client = Client("Too many parts (3000). Merges are processing significantly slower than inserts")
    with pytest.raises(SinkUnavailableError):  # wait it out with backpressure
        sink.write([row])
