"""The documents row derived from the contract (warehouse/schema.py). That the migrated table has exactly these
columns is checked on a real engine: tests/integration/warehouse/test_schema_migrations.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from finpulse.contracts import ClassifiedDocument, make_raw
from warehouse import schema

NOW = datetime(2026, 12, 2, 4, 0, 0, 123000, tzinfo=UTC)


def _doc(**fields: Any) -> ClassifiedDocument:
    raw = make_raw(source="wire", kind="news", title="Acme beats estimates", published_at=NOW, tickers=["acme"])
    values: dict[str, Any] = {
        **dict(raw),
        "topic": "earnings",
        "topic_score": 0.75,
        "sentiment": "positive",
        "sentiment_score": 0.5,
        "topic_probs": {"earnings": 0.75, "macro": 0.25},
        "sentiment_probs": {"negative": 0.25, "neutral": 0.0, "positive": 0.75},
        "model_version": "m@1",
        "classified_at": NOW,
    }
    return ClassifiedDocument(**(values | fields))


def _values(doc: ClassifiedDocument) -> dict[str, Any]:
    return dict(zip(schema.DOCUMENT_COLUMNS, schema.document_row(doc), strict=True))


def test_every_contract_field_is_a_column_with_its_value() -> None:
    doc = _doc(schema_version=2, story_id="first-of-story", novelty=0.5625, meta={"feed": "x", "rank": 2})
    values = _values(doc)
    assert set(values) == set(ClassifiedDocument.model_fields)
    assert {k: v for k, v in values.items() if k != "meta"} == {k: v for k, v in dict(doc).items() if k != "meta"}
    assert json.loads(values["meta"]) == {"feed": "x", "rank": 2}  # meta is a String column holding JSON
    assert values["tickers"] == ["ACME"] and values["published_at"].tzinfo is not None


def test_a_document_without_a_story_is_its_own_story() -> None:
    values = _values(_doc(schema_version=1))
    assert (values["story_id"], values["novelty"]) == (values["id"], 1.0)
    assert values["meta"] == "{}"


def test_a_document_the_model_declined_keeps_its_empty_labels() -> None:
    raw = make_raw(source="wire", kind="comment", body="Guten Tag", lang="de", published_at=NOW)
    declined = ClassifiedDocument.model_construct(**dict(raw), model_version="m@1", classified_at=NOW)  # as classify()
    values = _values(declined)
    assert (values["topic"], values["sentiment"], values["topic_score"], values["sentiment_score"]) == (None,) * 4
    assert values["topic_probs"] == {} and values["sentiment_probs"] == {} and values["lang"] == "de"


def test_an_unshapeable_meta_raises_for_that_document() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    doc = _doc().model_copy(update={"meta": loop})
    with pytest.raises(ValueError, match=r"[Cc]ircular"):
        schema.document_row(doc)
