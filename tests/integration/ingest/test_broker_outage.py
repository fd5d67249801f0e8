"""A broker that goes away mid-replay: the worker waits and retries, and once Kafka is back every document is on the
topic exactly once. Runs on a private Kafka (its own data dir) so killing the broker disturbs no other test."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finpulse.contracts import document_id
from ingest.config import build_config
from ingest.sources import replay
from ingest.worker import Worker
from tests.integration.ingest.conftest import make_topic, read_topic, wait_for
from tests.integration.ingest.test_push_restart import _distinct_texts
from tests.stack import Stack, free_ports, local_only

pytestmark = pytest.mark.integration


@pytest.fixture()
def private_kafka(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack.new(tmp_path / "data", FINPULSE_STACK_SERVICES="kafka")
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


def kafka_part(stack: Stack) -> dict[str, Any]:
    return json.loads(stack.finpulse("status", "--json", check=False, timeout=60).stdout)["parts"]["kafka"]


@local_only
def test_broker_down_mid_replay_loses_and_repeats_nothing(private_kafka: Stack, tmp_path: Path) -> None:
    stack = private_kafka
    settings = stack.settings
    topic = make_topic(settings, partitions=2)
    n = 240
    path = tmp_path / "hist.jsonl"
    with path.open("w") as fh:
        for i, text in enumerate(_distinct_texts(n)):
            fh.write(json.dumps({"id": f"r{i}", "headline": text, "date": 1_700_000_000 + i}) + "\n")
    # One history second per row at speed 30: ~8 s of replay, so the broker dies with most rows still to come.
    src = replay.Config(name="hist", path=path, mapping={"title": "headline"}, speed=30.0)
    cfg = build_config(
        settings,
        sources=(src,),
        topic=topic,
        state_dir=tmp_path / "ingest-state",
        port=free_ports(1)[0],
        batch_size=20,
    )
    worker = Worker(cfg)
    source = replay.Source(src, cfg.batch_size)
    worker.start([source])
    try:
        wait_for(lambda: len(read_topic(settings, topic)) >= 20, timeout=60, what="the first rows on the topic")
        part = kafka_part(stack)
        assert part["healthy"] and part["pid"], part
        os.kill(part["pid"], signal.SIGKILL)
        assert not source.done, "the replay finished before the broker was killed; make it slower"
        # The supervisor restarts Kafka (with backoff); the worker keeps its fetched rows and sends them then.
        wait_for(
            lambda: (p := kafka_part(stack))["healthy"] and p["pid"] != part["pid"],
            timeout=60,
            what="Kafka to be restarted",
        )
        worker.wait_sources(60)
        assert source.done, "the replay did not finish after the broker came back"
    finally:
        worker.stop()
    ids = [d["id"] for _, d in read_topic(settings, topic)]
    assert len(ids) == n, f"{len(ids)} documents on the topic, want {n} (lost or repeated some)"
    assert set(ids) == {document_id("hist", f"r{i}") for i in range(n)}
    counts = worker.metrics.snapshot()["sources"]["hist"]
    assert counts["produced"] == n and counts["duplicates"] == 0
