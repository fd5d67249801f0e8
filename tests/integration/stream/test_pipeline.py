"""The stream on the real local stack: every document stored once, labeled and versioned; bad input in the DLQ;
a SIGKILLed worker and a second worker change nothing in the counts."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from finpulse.contracts import SCHEMA_VERSION
from tests.integration.stream.conftest import StreamEnv, consume_all, docs

pytestmark = pytest.mark.integration


def test_5000_documents_stored_once_with_labels_and_poison_in_the_dlq(stream_env: StreamEnv, stream_model) -> None:
    worker = stream_env.worker()
    batch = docs("flow", 5000)
    german = docs("flow-de", 20, lang="de")
    wrong_version = json.loads(batch[0].to_json())
    wrong_version["schema_version"] = SCHEMA_VERSION + 41
    wrong_version["id"] = "wrongversion01"
    huge = json.loads(batch[1].to_json())
    huge["id"], huge["body"] = "hugebody000001", "x" * (10 * 1024 * 1024)
    poison = [b"this is not json", json.dumps(wrong_version).encode(), json.dumps(huge).encode()]
    half = len(batch) // 2
    stream_env.produce_docs(batch[:half])
    stream_env.produce([(b"poison", p) for p in poison])  # in the middle: the rest must keep flowing around them
    stream_env.produce_docs(batch[half:] + german)
    worker.wait_ready()
    stream_env.wait_distinct("flow", 5000, timeout=120)
    stream_env.wait_distinct("flow-de", 20, timeout=30)

    rows = stream_env.query(
        "SELECT uniqExact(id), countIf(topic IS NULL OR sentiment IS NULL OR topic_score IS NULL OR "
        "sentiment_score IS NULL OR empty(topic_probs) OR empty(sentiment_probs)), groupUniqArray(model_version), "
        "groupUniqArray(sentiment) FROM documents_latest WHERE source = 'flow'"
    )[0]
    assert rows[0] == 5000
    assert rows[1] == 0, "every English document carries topic, sentiment and both scores"
    assert rows[2] == [stream_model["version"]]
    assert set(rows[3]) <= {"negative", "neutral", "positive"}
    de = stream_env.query(
        "SELECT count(), countIf(topic IS NULL AND sentiment IS NULL AND empty(sentiment_probs)), "
        "groupUniqArray(lang), groupUniqArray(model_version) FROM documents_latest WHERE source = 'flow-de'"
    )[0]
    assert de == (20, 20, ["de"], [stream_model["version"]]), "unsupported language: stored, counted, unlabeled"

    dead = consume_all(stream_env.settings, stream_env.settings.topic_dlq, expected=3)
    assert len(dead) == 3
    by_value = {hashlib.sha256(m.value).hexdigest(): dict(m.headers) for m in dead}
    for original in poison:
        headers = by_value[hashlib.sha256(original).hexdigest()]  # original bytes, byte for byte
        assert headers["finpulse-dlq-reason"]
    fields = sorted(h["finpulse-dlq-field"].decode() for h in by_value.values())
    assert fields == ["", "schema_version", "size"]

    metrics = worker.metrics()
    assert 'finpulse_stream_documents_total{outcome="unlabeled"} 20.0' in metrics
    assert "finpulse_stream_dlq_total" in metrics and "finpulse_stream_end_to_end_seconds_bucket" in metrics
    assert "finpulse_stream_consumer_lag_total" in metrics
    from kafka import KafkaConsumer, TopicPartition

    probe = KafkaConsumer(bootstrap_servers=stream_env.settings.kafka_servers)
    parts = [TopicPartition(stream_env.settings.topic_classified, p) for p in range(6)]
    assert sum(probe.end_offsets(parts).values()) >= 5020  # every stored document was published too
    probe.close()


def test_sigkill_mid_stream_then_restart_yields_each_document_once(stream_env: StreamEnv) -> None:
    worker = stream_env.worker()
    worker.wait_ready()
    batch = docs("killed", 5000)
    producer = threading.Thread(
        target=lambda: [stream_env.produce_docs(batch[i : i + 250]) or time.sleep(0.15) for i in range(0, 5000, 250)]
    )
    producer.start()
    stream_env.wait_distinct("killed", 1200, timeout=60)
    worker.kill()  # mid-stream: stored-but-uncommitted batches will come again
    killed_at = stream_env.distinct("killed")
    worker.start()
    producer.join()
    stream_env.wait_distinct("killed", 5000, timeout=120)
    assert killed_at < 5000
    total, distinct, latest = stream_env.query(
        "SELECT count(), uniqExact(id), (SELECT count() FROM documents_latest WHERE source = 'killed') "
        "FROM documents WHERE source = 'killed'"
    )[0]
    assert distinct == 5000 and latest == 5000, (total, distinct, latest)


def test_two_workers_share_the_partitions_and_store_each_document_once(stream_env: StreamEnv) -> None:
    first, second = stream_env.worker(0), stream_env.worker(1)
    first.wait_ready(partitions=False)
    second.wait_ready(partitions=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait for the group to settle with both members
        a, b = first.health() or {}, second.health() or {}
        if a.get("partitions") and b.get("partitions") and len(a["partitions"]) + len(b["partitions"]) == 6:
            break
        time.sleep(0.5)
    assert set(a["partitions"]).isdisjoint(b["partitions"]), (a, b)
    assert set(a["partitions"]) | set(b["partitions"]) == set(range(6))
    stream_env.produce_docs(docs("pair", 5000))
    stream_env.wait_distinct("pair", 5000, timeout=120)
    latest = stream_env.query("SELECT count() FROM documents_latest WHERE source = 'pair'")[0][0]
    assert latest == 5000
    a, b = first.health(), second.health()
    assert a["stored"] > 0 and b["stored"] > 0, "both workers did part of the work"
    assert a["stored"] + b["stored"] >= 5000
