"""The faust wiring: the real agent (through faust's test_context, no broker), the service spec, device choice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from finpulse.settings import load_settings
from stream.app import StreamWorker, faust_options
from stream.model import device_for_worker
from stream.service import argv, service_spec
from tests.unit.stream.fakes import FakeClickHouse, FakeEngine, FakeModels, FakeTopicSink, raw
from warehouse.schema import DOCUMENT_COLUMNS


def test_agent_takes_micro_batches_and_acks_only_what_was_stored(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, stream_max_batch=4, stream_max_wait_s=0.05, stream_retry_max_s=0.05)
    worker = StreamWorker(settings)
    clickhouse = FakeClickHouse(down=10**9)
    classified, dlq = FakeTopicSink(), FakeTopicSink()
    worker.runner.models = FakeModels(FakeEngine("m@1"))
    worker.runner.clickhouse, worker.runner.classified, worker.runner.dlq = clickhouse, classified, dlq  # type: ignore[assignment]

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with worker.agent.test_context() as agent:
            events = []
            for value in [raw(i) for i in range(9)] + [b"{broken"]:
                event = await agent.put(value, key=b"k", wait=False)
                event.message.incref()  # what faust's conductor does for the one agent subscribed in production
                events.append(event)
            await asyncio.sleep(0.5)
            assert clickhouse.rows == [] and clickhouse.calls >= 2  # ClickHouse is down: retried, nothing stored
            assert not any(e.message.acked for e in events), "nothing may become committable before the insert"
            clickhouse.down = 0
            deadline = loop.time() + 10
            while len(clickhouse.rows) < 9 or len(dlq.sent) < 1:
                assert loop.time() < deadline, (len(clickhouse.rows), len(dlq.sent))
                await asyncio.sleep(0.05)
            await worker.runner.drain(5)
            assert all(e.message.acked for e in events)

    asyncio.run(scenario())
    assert len(clickhouse.rows) == 9 and len(classified.sent) == 9 and len(dlq.sent) == 1
    sizes = worker.metrics.batch_size.collect()[0].samples
    assert max(s.value for s in sizes if s.name.endswith("_count")) >= 3  # micro-batches of at most 4
    assert {r[DOCUMENT_COLUMNS.index("model_version")] for r in clickhouse.rows} == {"m@1"}


def test_faust_options_follow_settings(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, kafka_bootstrap="a:1, b:2", stream_session_timeout_s=6, stream_commit_interval_s=0.5
    )
    options = faust_options(settings, 3)
    assert options["broker"] == ["kafka://a:1", "kafka://b:2"]
    assert options["datadir"] == str(tmp_path / "stream" / "worker-3")
    assert options["broker_session_timeout"] == 6 and options["broker_commit_interval"] == 0.5
    assert options["broker_request_timeout"] > options["broker_session_timeout"]  # aiokafka refuses otherwise
    assert options["producer_max_request_size"] >= 10 * 1024 * 1024 + 1024  # a 10 MB poison message fits the DLQ
    assert options["stream_wait_empty"] is False


def test_service_spec_runs_worker_zero(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, stream_port=18999, stream_host="127.0.0.1")
    spec = service_spec(settings)
    assert spec.name == "stream"
    assert spec.endpoint == "http://127.0.0.1:18999/healthz"
    assert spec.ports == (18999,) and spec.argv is not None
    assert spec.argv()[-5:] == ["finpulse", "stream", "run", "--index", "0"] == argv(settings)[-5:]
    assert spec.healthy() is False  # nothing listens there


@pytest.mark.parametrize(
    ("device", "index", "gpus", "expected"),
    [
        ("auto", 0, 0, "cpu"),
        ("auto", 1, 0, "cpu"),
        ("auto", 1, 4, "cuda:1"),
        ("auto", 5, 4, "cuda:1"),
        ("cpu", 2, 4, "cpu"),
    ],
)
def test_each_worker_gets_its_own_gpu(device: str, index: int, gpus: int, expected: str) -> None:
    assert device_for_worker(device, index, gpus) == expected


def test_cuda_requested_without_a_gpu_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="auto or cpu"):
        device_for_worker("cuda", 0, 0)
