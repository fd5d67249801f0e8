"""ClickHouse stopped for 30 s mid-stream loses nothing; a newly promoted model is picked up without a restart."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.stream.conftest import StreamEnv, docs
from tests.stack import free_ports, local_only

pytestmark = pytest.mark.integration


def _start_clickhouse(stream_env: StreamEnv, log: Path) -> subprocess.Popen:
    from finpulse.stack.clickhouse.launch import start_local_endpoint
    from warehouse.client import wait_until_ready
    from warehouse.migrate import migrate

    with open(log, "ab") as out:
        proc = start_local_endpoint(stream_env.settings, stdout=out, stderr=subprocess.STDOUT)
    wait_until_ready(stream_env.settings, timeout=60)
    migrate(stream_env.settings)
    return proc


@local_only
def test_clickhouse_down_for_30_s_mid_stream_loses_nothing(stream_env: StreamEnv, tmp_path: Path) -> None:
    # A private ClickHouse endpoint (the session stack's Kafka): this test may stop it without hurting others.
    stream_env.env["FINPULSE_CLICKHOUSE_PORT"] = str(free_ports(1)[0])
    stream_env.env["FINPULSE_DATA_DIR"] = str(tmp_path / "data")
    clickhouse = _start_clickhouse(stream_env, tmp_path / "clickhouse.log")
    try:
        worker = stream_env.worker()
        worker.wait_ready()
        batch = docs("outage", 5000)
        stream_env.produce_docs(batch[:1500])
        stream_env.wait_distinct("outage", 1500, timeout=60)

        clickhouse.terminate()
        clickhouse.wait(30)
        stopped = time.monotonic()
        stream_env.produce_docs(batch[1500:4000])  # arrives while ClickHouse is down
        saw_backpressure = False
        while time.monotonic() - stopped < 30:
            worker.check_alive()
            h = worker.health()
            saw_backpressure = saw_backpressure or bool(h and h["status"].startswith("backpressure"))
            time.sleep(1)
        assert saw_backpressure, worker.tail()
        metrics = worker.metrics()
        assert 'finpulse_stream_sink_retries_total{sink="clickhouse"}' in metrics
        assert "finpulse_stream_backpressure 1.0" in metrics

        clickhouse = _start_clickhouse(stream_env, tmp_path / "clickhouse.log")
        stream_env.produce_docs(batch[4000:])
        stream_env.wait_distinct("outage", 5000, timeout=120)
        latest = stream_env.query("SELECT count() FROM documents_latest WHERE source = 'outage'")[0][0]
        assert latest == 5000
        assert (worker.health() or {}).get("status") == "ok"
    finally:
        for w in stream_env.workers:
            w.stop()
        clickhouse.terminate()
        clickhouse.wait(30)


def test_newly_promoted_model_is_served_without_restart(stream_env: StreamEnv, stream_model, tmp_path: Path) -> None:
    from classifier.registry import Registry

    registry = Registry(tmp_path / "registry")
    shutil.copytree(stream_model["path"], registry.root / "first")
    second = registry.root / "second"
    shutil.copytree(stream_model["path"], second)
    meta = json.loads((second / "meta.json").read_text())
    meta |= {"name": "second", "model_version": "second@retrained"}
    (second / "meta.json").write_text(json.dumps(meta))
    registry.promote("first")
    stream_env.env["FINPULSE_MODEL_DIR"] = str(registry.root)

    worker = stream_env.worker()
    first_version = worker.wait_ready()["model_version"]
    assert first_version == stream_model["version"]
    pid = worker.proc.pid
    stream_env.produce_docs(docs("swap", 1000))
    stream_env.wait_distinct("swap", 1000, timeout=60)

    registry.promote("second")
    deadline = time.monotonic() + 30
    while (worker.health() or {}).get("model_version") != "second@retrained":
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.25)
    stream_env.produce_docs(docs("swap", 1000, start=1000))
    stream_env.wait_distinct("swap", 2000, timeout=60)

    assert worker.proc.pid == pid and worker.proc.poll() is None, "no restart"
    versions = dict(
        stream_env.query(
            "SELECT model_version, count() FROM documents_latest WHERE source = 'swap' GROUP BY model_version"
        )
    )
    assert versions == {first_version: 1000, "second@retrained": 1000}
    assert "finpulse_stream_model_swaps_total 1.0" in worker.metrics()
