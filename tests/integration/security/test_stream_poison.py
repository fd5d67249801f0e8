"""Attack: every class of poison mixed with valid documents on ONE partition of the real stack (Kafka + ClickHouse +
a stream worker process). Each poison must reach the DLQ byte for byte with its reason; every valid document must be
stored exactly once; the partition must not wedge and its committed offset must reach the end.

The ClickHouse class is a document that passes the contract and that the real ClickHouse refuses for its content:
the test gives the `documents` table a CHECK constraint that only that document violates (and drops it after)."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.stream.conftest import (  # noqa: F401 - fixtures used by name
    StreamEnv,
    consume_all,
    docs,
    stream_env,
    stream_model,
)

pytestmark = pytest.mark.integration

# Loaded by the worker's interpreter at start-up (PYTHONPATH): the real engine, made to raise on one marker, the way
# a model can fail on one odd input. Only the test's worker gets it.
_FAULTY_ENGINE = """
import classifier.engine as _engine

_predict = _engine.ClassifierEngine.predict


def predict(self, texts):
    items = [texts] if isinstance(texts, str) else list(texts)
    if any("MODEL-POISON" in t for t in items):
        raise RuntimeError("injected model fault on MODEL-POISON")
    return _predict(self, texts)


_engine.ClassifierEngine.predict = predict
"""


@pytest.fixture
def refusing_documents(stream_env: StreamEnv) -> Iterator[str]:  # noqa: F811 - the fixture
    """A marker that the documents table refuses in a title: a real CHECK constraint, so that the refusal comes from
    ClickHouse itself (VIOLATED_CONSTRAINT) for a row that the contract and the stream accept."""
    from warehouse.client import create_client

    tag = uuid.uuid4().hex[:8]
    marker, name = f"CH-REFUSES-{tag}", f"poison_test_{tag}"
    client = create_client(stream_env.settings)
    try:
        client.command(f"ALTER TABLE documents ADD CONSTRAINT {name} CHECK position(title, '{marker}') = 0")
        yield marker
    finally:
        client.command(f"ALTER TABLE documents DROP CONSTRAINT IF EXISTS {name}")
        client.close()


def _poison(valid: dict, refused_marker: str) -> dict[str, tuple[bytes, str]]:
    def variant(**fields: object) -> bytes:
        return json.dumps({**valid, **fields}).encode()

    return {
        "wrong type": (b'{"schema_version":[]}', "schema_version"),
        "wrong field type": (variant(id="wrongtype0001", title=["not", "a", "string"]), "title"),
        "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "depth"),
        "invalid utf-8": (b'{"title": "caf\xe9 \xff"}', ""),
        "oversize": (variant(id="oversize00001", body="x" * (3 * 1024 * 1024)), "size"),
        "model raises": (variant(id="modelpoison01", title="Acme MODEL-POISON shares"), "model"),
        "clickhouse refuses": (variant(id="chrefused0001", title=f"Acme {refused_marker} shares"), "clickhouse"),
    }


def test_every_poison_class_on_one_partition_is_dead_lettered_and_every_valid_doc_stored_once(
    stream_env: StreamEnv,  # noqa: F811 - the fixture
    refusing_documents: str,
    tmp_path: Path,
) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_FAULTY_ENGINE)
    stream_env.env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(hook), stream_env.env.get("PYTHONPATH", ""), str(Path.cwd())) if p
    )
    stream_env.env["FINPULSE_PARTITIONS_RAW"] = "1"
    stream_env.env["FINPULSE_STREAM_MAX_BATCH"] = "16"
    # The injected fault patches the torch engine; the ONNX export would only add minutes on a busy machine.
    stream_env.env["FINPULSE_MODEL_BACKEND"] = "torch"

    valid = docs("poisoned", 300)
    poison = _poison(json.loads(valid[0].to_json()), refusing_documents)
    # Interleave: each poison right before valid documents (the lost-document attack was a valid doc two
    # offsets after a poison), twice over, so batches of every make-up see it.
    messages: list[tuple[bytes | None, bytes]] = []
    chunks = [valid[i : i + 20] for i in range(0, len(valid), 20)]
    names = list(poison) * 2
    assert len(chunks) >= len(names)
    for i, chunk in enumerate(chunks):
        if i < len(names):
            messages.append((b"poison", poison[names[i]][0]))
        messages.extend((d.key, d.to_json()) for d in chunk)

    worker = stream_env.worker()
    worker.wait_ready(timeout=180)
    started = time.monotonic()
    stream_env.produce(messages)
    stream_env.wait_distinct("poisoned", len(valid), timeout=180)
    worker.check_alive()  # never crashed or restarted over the poison

    rows = stream_env.query("SELECT count(), uniqExact(id) FROM documents FINAL WHERE source = 'poisoned'")[0]
    assert rows == (len(valid), len(valid)), "every valid document stored exactly once"
    assert stream_env.query("SELECT count() FROM documents WHERE id IN ('modelpoison01', 'chrefused0001')")[0][0] == 0

    expected = len(names)
    dead = consume_all(stream_env.settings, stream_env.settings.topic_dlq, expected=expected, timeout=60)
    assert len(dead) == expected, [dict(m.headers) for m in dead]
    by_digest: dict[str, list[dict[str, bytes]]] = {}
    for m in dead:
        by_digest.setdefault(hashlib.sha256(m.value).hexdigest(), []).append(dict(m.headers))
    for name, (value, field) in poison.items():
        entries = by_digest.get(hashlib.sha256(value).hexdigest())
        assert entries and len(entries) == 2, f"{name}: not in the DLQ byte for byte"
        for headers in entries:
            assert headers["finpulse-dlq-field"].decode() == field, (name, headers)
            assert headers["finpulse-dlq-reason"], name
            assert headers["finpulse-source-partition"] == b"0"
    for headers in by_digest[hashlib.sha256(poison["clickhouse refuses"][0]).hexdigest()]:
        reason = headers["finpulse-dlq-reason"].decode()
        assert "VIOLATED_CONSTRAINT" in reason or "469" in reason, reason  # ClickHouse's own reason
        assert f"poison_test_{refusing_documents.rsplit('-', 1)[1]}" in reason, reason

    # Not wedged: the group's committed offset reaches the end of the partition.
    from kafka import KafkaConsumer, TopicPartition

    settings = stream_env.settings
    tp = TopicPartition(settings.topic_raw, 0)
    probe = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=settings.stream_group)
    try:
        end = probe.end_offsets([tp])[tp]
        assert end == len(messages)
        deadline = time.monotonic() + 30
        committed = None
        while time.monotonic() < deadline:
            committed = probe.committed(tp)
            if committed == end:
                break
            time.sleep(0.5)
        assert committed == end, f"committed {committed} of {end}"
    finally:
        probe.close()
    assert time.monotonic() - started < 180
