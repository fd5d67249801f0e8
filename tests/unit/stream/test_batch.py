"""Decoding and language gating of a micro-batch (its row shape: tests/unit/warehouse/test_schema.py)."""

from __future__ import annotations

import json

from finpulse.contracts import SCHEMA_VERSION
from stream.batch import Incoming, classify, decode
from tests.unit.stream.fakes import FakeEngine, raw


def _msg(value: bytes | None, offset: int = 0) -> Incoming:
    return Incoming(b"k", value, "finpulse.raw", 3, offset)


def test_decode_keeps_valid_documents_with_their_messages_and_rejects_the_rest() -> None:
    wrong_version = json.loads(raw(1))
    wrong_version["schema_version"] = SCHEMA_VERSION + 98
    huge = json.loads(raw(2))
    huge["body"] = "x" * 10_000_000
    messages = [
        _msg(raw(0), 0),
        _msg(b"not json {", 1),
        _msg(json.dumps(wrong_version).encode(), 2),
        _msg(json.dumps(huge).encode(), 3),
        _msg(None, 4),
        _msg(raw(5), 5),
    ]
    decoded = decode(messages)
    assert [d.title for d in decoded.docs] == ["Acme beats estimates 0", "Acme beats estimates 5"]
    assert [m.offset for m in decoded.sources] == [0, 5]
    by_offset = {r.message.offset: r for r in decoded.rejects}
    assert sorted(by_offset) == [1, 2, 3, 4]
    assert "not JSON" in by_offset[1].reason
    assert by_offset[2].field == "schema_version" and str(SCHEMA_VERSION + 98) in by_offset[2].reason
    assert by_offset[3].field == "size" and "too large" in by_offset[3].reason
    assert by_offset[3].message.value == messages[3].value  # the original bytes, untouched
    headers = dict(by_offset[2].headers())
    assert headers["finpulse-dlq-field"] == b"schema_version"
    assert headers["finpulse-source-partition"] == b"3" and headers["finpulse-source-offset"] == b"2"


def test_unsupported_language_is_stored_unlabeled_never_mislabeled() -> None:
    engine = FakeEngine("m@7", languages=("en",))
    docs = decode([_msg(raw(0, "en")), _msg(raw(1, "de")), _msg(raw(2, "und")), _msg(raw(3, "en-GB"))]).docs
    out = classify(engine, docs)
    assert [d.lang for d in out] == ["en", "de", "und", "en-GB"]
    assert [d.sentiment for d in out] == ["positive", None, "positive", "positive"]
    german = out[1]
    assert german.topic is None and german.topic_score is None and german.sentiment_score is None
    assert german.topic_probs == {} and german.sentiment_probs == {}
    assert {d.model_version for d in out} == {"m@7"}
    assert len(engine.seen) == 3  # the German text never reached the model


def test_relabel_rewrites_labels_and_keeps_the_story() -> None:
    from datetime import UTC, datetime

    from stream.relabel import _relabeled_row

    old = {
        "id": "copy-0001",
        "story_id": "head-0001",
        "novelty": 0.5625,
        "topic": "macro",
        "sentiment": "neutral",
        "model_version": "old",
        "classified_at": datetime(2026, 1, 1, tzinfo=UTC),
        "relabeled": 0,
    }
    labels = {"topic": "earnings", "sentiment": "negative"}
    new = _relabeled_row(old, labels, "new", datetime(2026, 1, 2, tzinfo=UTC))
    assert (new["story_id"], new["novelty"]) == ("head-0001", 0.5625)
    assert (new["topic"], new["model_version"], new["relabeled"]) == ("earnings", "new", 1)
