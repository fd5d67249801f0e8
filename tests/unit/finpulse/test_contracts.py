from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from finpulse.contracts import (
    SCHEMA_VERSION,
    ClassifiedDocument,
    ContractError,
    RawDocument,
    document_id,
    hash_author,
    make_raw,
    parse_classified,
    parse_raw,
)


def raw_payload(**overrides: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "schema_version": 1,
        "id": "a" * 32,
        "source": "reuters",
        "kind": "news",
        "lang": "en",
        "title": "Apple beats earnings estimates",
        "body": "",
        "published_at": "2026-11-20T10:00:00Z",
        "tickers": ["aapl", "AAPL", "MSFT"],
    }
    payload.update(overrides)
    return payload


def test_round_trip_json() -> None:
    doc = parse_raw(json.dumps(raw_payload()).encode())
    again = parse_raw(doc.to_json())
    assert again == doc
    assert doc.tickers == ["AAPL", "MSFT"]  # upper-cased, deduplicated, order kept
    assert doc.key == b"AAPL"
    assert doc.published_at.tzinfo is not None


def test_key_falls_back_to_source() -> None:
    assert parse_raw(raw_payload(tickers=[])).key == b"reuters"


def test_naive_and_offset_datetimes_become_utc() -> None:
    doc = parse_raw(raw_payload(published_at="2026-11-20T18:00:00+08:00"))
    assert doc.published_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    naive = make_raw(source="s", kind="news", title="t", published_at=datetime(2026, 1, 1, 12))
    assert naive.published_at.utcoffset() == timedelta(0)
    shifted = make_raw(
        source="s", kind="news", title="t", published_at=datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    )
    assert shifted.published_at.hour == 10


def test_stable_ids() -> None:
    assert document_id("rss", "guid-1") == document_id("rss", "guid-1")
    assert document_id("rss", "guid-1") != document_id("rss2", "guid-1")
    # without a source id the text decides, up to case, links and whitespace
    a = document_id("x", text="Fed  hikes RATES https://t.co/abc")
    b = document_id("x", text="fed hikes rates")
    assert a == b
    assert len(a) == 32
    with pytest.raises(ContractError, match="source"):
        document_id("", "1")
    with pytest.raises(ContractError, match="id"):
        document_id("x", None, "   ")


def test_make_raw_derives_id_and_validates() -> None:
    doc = make_raw(source="push", kind="comment", body="$TSLA to the moon", source_id="c-1", tickers=["TSLA"])
    assert doc.id == document_id("push", "c-1")
    assert doc.text == "$TSLA to the moon"
    with pytest.raises(ContractError) as err:
        make_raw(source="push", kind="tweet", body="x", source_id="1")  # type: ignore[arg-type]
    assert err.value.field == "kind"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"kind": "blog"}, "kind"),
        ({"published_at": "yesterday"}, "published_at"),
        ({"id": "bad id with spaces"}, "id"),
        ({"tickers": [""]}, "tickers"),
        ({"title": "", "body": "  "}, ""),
        ({"source": ""}, "source"),
        ({"surprise": 1}, "surprise"),
        ({"body": "x" * 100_001}, "body"),
    ],
)
def test_validation_names_the_bad_field(override: dict[str, object], field: str) -> None:
    with pytest.raises(ContractError) as err:
        parse_raw(raw_payload(**override))
    assert err.value.field == field
    assert str(err.value)


def test_missing_field_is_named() -> None:
    payload = raw_payload()
    del payload["published_at"]
    with pytest.raises(ContractError) as err:
        parse_raw(payload)
    assert err.value.field == "published_at"


def test_future_version_rejected_clearly() -> None:
    with pytest.raises(ContractError, match=rf"unsupported schema_version {SCHEMA_VERSION + 1}") as err:
        parse_raw(raw_payload(schema_version=SCHEMA_VERSION + 1, something_new=True))
    assert err.value.field == "schema_version"


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"\xff\xfe garbage", "not UTF-8"), (b"{not json", "not JSON"), (b"[1, 2]", "JSON object")],
)
def test_undecodable_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        parse_raw(payload)


def test_classified_contract() -> None:
    payload = raw_payload(
        topic="Earnings",
        topic_score=0.91,
        sentiment="positive",
        sentiment_score=0.8,
        sentiment_probs={"negative": 0.05, "neutral": 0.1, "positive": 0.85},
        model_version="minilm-20261120",
    )
    doc = parse_classified(json.dumps(payload))
    assert isinstance(doc, ClassifiedDocument)
    assert isinstance(doc, RawDocument)
    assert parse_classified(doc.to_json()) == doc
    with pytest.raises(ContractError) as err:
        parse_classified({**payload, "sentiment": "bullish"})
    assert err.value.field == "sentiment"
    with pytest.raises(ContractError) as err:
        parse_classified({**payload, "sentiment_score": 1.5})
    assert err.value.field == "sentiment_score"
    unlabeled = parse_classified({**raw_payload(lang="de"), "model_version": "m1"})
    assert unlabeled.topic is None and unlabeled.sentiment is None


def test_author_hash_hides_the_name() -> None:
    hashed = hash_author("Jane Doe")
    assert hashed and "Jane" not in hashed and hashed == hash_author("Jane Doe ")
    assert hash_author("") is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b'{"schema_version": []}', "schema_version"),
        (b'{"schema_version": {"a": 1}}', "schema_version"),
        (b'{"schema_version": true}', "schema_version"),
        (b"[" * 200_000 + b"]" * 200_000, ""),
    ],
)
def test_wrong_shapes_are_contract_errors_not_crashes(payload: bytes, field: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_raw(payload)
    assert info.value.field == field


def test_story_fields_optional_and_validated() -> None:
    old = parse_raw(raw_payload())  # a version-1 message: no story fields, still read
    assert (old.schema_version, old.story_id, old.novelty) == (1, None, None)
    doc = parse_raw(raw_payload(schema_version=SCHEMA_VERSION, story_id="b" * 32, novelty=0.75))
    assert (doc.story_id, doc.novelty) == ("b" * 32, 0.75)
    assert parse_raw(doc.to_json()) == doc  # survives the Kafka round trip unchanged
    for bad, field in (
        (dict(story_id="short"), "story_id"),
        (dict(story_id="a b" * 4), "story_id"),
        (dict(novelty=1.5), "novelty"),
        (dict(novelty=-0.1), "novelty"),
    ):
        with pytest.raises(ContractError) as err:
            parse_raw(raw_payload(schema_version=SCHEMA_VERSION, **bad))
        assert err.value.field == field
    with pytest.raises(ContractError, match="need schema_version >= 2"):
        parse_raw(raw_payload(schema_version=1, story_id="b" * 32))
