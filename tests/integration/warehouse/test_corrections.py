"""Analyst corrections on the real local endpoint (migration 0041, warehouse/queries/corrections.py): bad input is
refused before anything is written; a corrected document counts once, under its corrected label, in every count the
dashboard and the alert engine read; the corrected label wins over a later relabel (stream/relabel.py's real code)
and over a redelivery through the stream's ClickHouse sink; the training side reads corrections with their text.

The tests up to the redelivery one tell one story on one database, in file order (each builds on the corrections
before it); the entity and large-batch tests bring their own documents."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stream.relabel import relabel_recent
from stream.sinks.clickhouse import ClickHouseSink
from tests.stack import local_only
from warehouse import queries
from warehouse.client import create_client
from warehouse.migrate import migrate
from warehouse.queries import alerts as q
from warehouse.queries import corrections as c
from warehouse.queries.trends import _epoch
from warehouse.schema import DOCUMENT_COLUMNS

from .conftest import Endpoint

pytestmark = [pytest.mark.integration, local_only]

OLD, NEW = "model-2026.11", "model-2026.12"
NOW = datetime.now(UTC).replace(microsecond=0)
EARNINGS, MACRO, LEGAL = "Earnings", "Macro", "Legal | Regulation"


def _doc(doc_id: str, *, hours_ago: float, topic: str, sentiment: str, tickers: list[str]) -> dict[str, Any]:
    published = NOW - timedelta(hours=hours_ago)
    return {
        "id": doc_id,
        "source": "wire",
        "kind": "news",
        "lang": "en",
        "title": f"title of {doc_id}",
        "body": f"body of {doc_id}",
        "url": f"https://example.com/{doc_id}",
        "author": None,
        "published_at": published,
        "ingested_at": published + timedelta(milliseconds=200),
        "tickers": tickers,
        "entities": [],
        "meta": json.dumps({}),
        "topic": topic,
        "topic_score": 0.7,
        "sentiment": sentiment,
        "sentiment_score": -0.6 if sentiment == "negative" else 0.6,
        "topic_probs": {topic: 0.7},
        "sentiment_probs": {"negative": 0.8, "neutral": 0.1, "positive": 0.1},
        "model_version": OLD,
        "classified_at": published + timedelta(seconds=1),
        "schema_version": 2,
        "story_id": doc_id,
        "novelty": 1.0,
    }


DOCS = [
    _doc("corr-acme", hours_ago=2, topic=EARNINGS, sentiment="negative", tickers=["ACME"]),  # to be corrected
    _doc("corr-other", hours_ago=2, topic=EARNINGS, sentiment="negative", tickers=["ACME"]),  # left alone
    _doc("corr-macro", hours_ago=1, topic=MACRO, sentiment="positive", tickers=[]),
]


@dataclass(frozen=True)
class Pred:
    topic: str
    sentiment: str

    def as_fields(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "topic_score": 0.9,
            "sentiment": self.sentiment,
            "sentiment_score": 0.9 if self.sentiment == "positive" else -0.9,
            "topic_probs": {self.topic: 0.9},
            "sentiment_probs": {self.sentiment: 0.9},
        }


@dataclass
class FakeEngine:
    """The predict API of classifier.engine.ClassifierEngine: every document is Legal | Regulation, negative."""

    model_version: str = NEW
    texts: list[str] = field(default_factory=list)

    def supports_language(self, lang: str | None) -> bool:
        return lang == "en"

    def predict(self, texts: list[str]) -> list[Pred]:
        self.texts.extend(texts)
        return [Pred(LEGAL, "negative") for _ in texts]


def _insert(client: Any, docs: list[dict[str, Any]]) -> None:
    names = list(docs[0])
    client.insert("documents", [[d[n] for n in names] for d in docs], column_names=names)


@pytest.fixture(scope="module")
def db(endpoint: Endpoint) -> Any:
    settings = endpoint.settings.model_copy(update={"clickhouse_database": "corrections_test"})
    migrate(settings)
    client = create_client(settings)
    _insert(client, DOCS)
    yield settings, client
    client.close()


def _latest(client: Any, doc_id: str) -> dict[str, Any]:
    result = client.query("SELECT * FROM documents_latest WHERE id = {id:String}", parameters={"id": doc_id})
    rows = [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
    assert len(rows) == 1, rows
    return rows[0]


def _counts(client: Any) -> dict[str, Any]:
    """What the dashboard and the alert engine count, for the seeded hours."""
    end = _epoch(None)
    start = end - 6 * 3600
    volume = queries.volume_sentiment(client, hours=6, bucket_minutes=6 * 60)
    by_topic = volume.groupby("topic")[["docs", "negative", "positive"]].sum()
    rollup = q.window_counts(client, start=start, end=end, bucket_s=6 * 3600, group_by="topic", count="documents")
    docs = q.window_counts(
        client, start=start, end=end, bucket_s=6 * 3600, group_by="topic", use_documents=True, count="documents"
    )
    tickers = q.window_counts(client, start=start, end=end, bucket_s=6 * 3600, group_by="ticker", count="stories")
    return {
        "volume": {str(k): tuple(int(v) for v in row) for k, row in by_topic.iterrows()},
        "alerts_rollup": {r.group: (r.total, r.negative, r.positive) for r in rollup},
        "alerts_docs": {r.group: (r.total, r.negative, r.positive) for r in docs},
        "alerts_ticker": {r.group: (r.total, r.negative, r.positive) for r in tickers},
        "counts_view": sorted(
            tuple(r)
            for r in client.query(
                "SELECT topic, sentiment, sum(docs) FROM documents_minutely_counts GROUP BY ALL"
            ).result_rows
        ),
        "feed": sorted(
            (r["id"], r["topic"], r["sentiment"])
            for _, r in queries.latest_documents(client, hours=6, limit=100).iterrows()
        ),
        "documents_final": client.query("SELECT count() FROM documents FINAL").result_rows[0][0],
    }


def test_bad_input_is_refused_with_a_reason_and_writes_nothing(db: Any) -> None:
    _, client = db
    before = client.query("SELECT count() FROM corrections").result_rows[0][0]
    rows_before = client.query("SELECT count() FROM documents").result_rows[0][0]
    ok = {"document_id": "corr-acme", "field": "sentiment", "label": "positive", "analyst": "dana"}
    cases = [
        ({"field": "tone"}, "field", "unknown field 'tone'"),
        ({"label": "very bad"}, "label", "unknown sentiment 'very bad'"),
        ({"label": "  "}, "label", "must not be empty"),
        ({"field": "topic", "label": "Sports"}, "label", "unknown topic 'Sports'"),
        ({"analyst": " "}, "analyst", "must be named"),
        ({"analyst": "x" * 101}, "analyst", "at most 100"),
        ({"document_id": "no-such-document"}, "document_id", "no stored document"),
        ({"document_id": "drop table; --"}, "document_id", "not a document id"),
        ({"entity": "ACME"}, "entity", "only an entity_sentiment correction names an entity"),
        ({"field": "entity_sentiment"}, "entity", "must name the entity"),
    ]
    for change, where, reason in cases:
        with pytest.raises(c.CorrectionError) as caught:
            c.record_correction(client, **(ok | change))
        assert caught.value.field == where, change
        assert reason in str(caught.value), (change, str(caught.value))
    assert client.query("SELECT count() FROM corrections").result_rows[0][0] == before
    assert client.query("SELECT count() FROM documents").result_rows[0][0] == rows_before


def test_a_corrected_document_counts_once_under_its_corrected_label(db: Any) -> None:
    _, client = db
    before = _counts(client)
    assert before["alerts_rollup"][EARNINGS] == (2, 2, 0)
    stored = c.record_correction(
        client, document_id="corr-acme", field="sentiment", label="Bullish", analyst="dana"
    )  # an alias, in the product's spelling
    assert (stored.label, stored.previous_label, stored.model_version) == ("positive", "negative", OLD)
    c.record_correction(client, document_id="corr-acme", field="topic", label="m&a | investments", analyst="lee")
    after = _counts(client)
    merger = "M&A | Investments"
    assert after["volume"] == {EARNINGS: (1, 1, 0), MACRO: (1, 0, 1), merger: (1, 0, 1)}
    for key in ("alerts_rollup", "alerts_docs"):
        assert after[key] == {EARNINGS: (1, 1, 0), MACRO: (1, 0, 1), merger: (1, 0, 1)}, key
    assert after["alerts_ticker"] == {"ACME": (2, 1, 1)}
    assert after["counts_view"] == sorted([(EARNINGS, "negative", 1), (MACRO, "positive", 1), (merger, "positive", 1)])
    assert ("corr-acme", merger, "positive") in after["feed"]
    assert after["documents_final"] == before["documents_final"] == len(DOCS)
    row = _latest(client, "corr-acme")
    assert row["label_source"] == "analyst"
    assert sorted(row["corrected_fields"]) == ["sentiment", "topic"]
    assert row["corrected_by"] == "lee"
    assert row["model_version"] == OLD  # the model's version stays: the training side reads what it overrode
    assert row["relabeled"] == 1  # not a stream row: pipeline-health figures skip it
    assert row["sentiment_score"] == pytest.approx(1.0)
    assert _latest(client, "corr-other")["label_source"] == "model"


def test_corrections_read_back_for_training(db: Any) -> None:
    _, client = db
    start = datetime.now(UTC)
    c.record_correction(client, document_id="corr-macro", field="sentiment", label="neutral", analyst="dana")
    # corrected twice: the latest correction of (document, field) is the one that counts
    c.record_correction(client, document_id="corr-macro", field="sentiment", label="negative", analyst="kim")
    recent = c.latest_corrections(client, since=start)
    assert [(x.document_id, x.field, x.label, x.analyst) for x in recent] == [
        ("corr-macro", "sentiment", "negative", "kim")
    ]
    assert recent[0].text == "title of corr-macro\nbody of corr-macro" and recent[0].lang == "en"
    assert recent[0].previous_label == "neutral"  # the label it replaced: the first correction's
    assert c.count_corrections(client, since=start) == 1
    every = {(x.document_id, x.field) for x in c.latest_corrections(client)}
    assert {("corr-acme", "sentiment"), ("corr-acme", "topic"), ("corr-macro", "sentiment")} <= every
    assert c.count_corrections(client) >= 3
    assert c.count_corrections(client, since=datetime.now(UTC) + timedelta(hours=1)) == 0
    by_doc = c.corrections_for(client, ["corr-acme", "corr-other"])
    assert sorted(x.field for x in by_doc["corr-acme"]) == ["sentiment", "topic"] and "corr-other" not in by_doc


def test_the_corrected_label_wins_over_a_later_relabel(db: Any) -> None:
    settings, client = db
    # corr-other is uncorrected; corr-macro's sentiment was corrected (negative), its topic was not
    report = relabel_recent(settings, hours=6, engine=FakeEngine(), client=client)
    assert report.relabeled == len(DOCS)
    acme, other, macro = (_latest(client, d["id"]) for d in DOCS)
    assert (acme["topic"], acme["sentiment"], acme["label_source"]) == ("M&A | Investments", "positive", "analyst")
    assert (other["topic"], other["sentiment"], other["label_source"]) == (LEGAL, "negative", "model")
    assert (macro["topic"], macro["sentiment"]) == (LEGAL, "negative")  # new model's topic, analyst's sentiment
    assert macro["corrected_fields"] == ["sentiment"] and macro["corrected_by"] == "kim"
    assert {acme["model_version"], other["model_version"], macro["model_version"]} == {NEW}
    counts = _counts(client)
    assert counts["alerts_rollup"] == {"M&A | Investments": (1, 0, 1), LEGAL: (2, 2, 0)}
    assert counts["documents_final"] == len(DOCS)
    # a later correction still records the version it overrides: the relabeling model's
    again = c.record_correction(client, document_id="corr-other", field="topic", label="Earnings", analyst="dana")
    assert (again.previous_label, again.model_version) == (LEGAL, NEW)
    assert relabel_recent(settings, hours=6, engine=FakeEngine(), client=client).relabeled == 0  # idempotent


def test_a_redelivery_through_the_stream_sink_keeps_the_analysts_label(db: Any) -> None:
    settings, client = db
    stamp = datetime.now(UTC) + timedelta(seconds=1)
    redelivered = []
    for doc in DOCS:  # the stream classified each again (its model's labels) and writes them through its sink
        row = doc | Pred(EARNINGS, "neutral").as_fields() | {"model_version": NEW, "classified_at": stamp}
        redelivered.append([row[col] for col in DOCUMENT_COLUMNS])
    sink = ClickHouseSink(settings)
    try:
        sink.write(redelivered)
    finally:
        sink.close()
    acme, other, macro = (_latest(client, d["id"]) for d in DOCS)
    assert (acme["topic"], acme["sentiment"], acme["label_source"]) == ("M&A | Investments", "positive", "analyst")
    assert (other["topic"], other["sentiment"]) == (EARNINGS, "neutral")  # its topic correction says Earnings too
    assert other["label_source"] == "analyst" and other["corrected_fields"] == ["topic"]
    assert (macro["topic"], macro["sentiment"]) == (EARNINGS, "negative")
    assert all(r["relabeled"] == 0 for r in (acme, other, macro))  # stream rows: the health figures count them
    assert _counts(client)["alerts_rollup"] == {"M&A | Investments": (1, 0, 1), EARNINGS: (2, 1, 0)}


ENTITY_COLUMNS = (
    "document_id",
    "entity",
    "rank",
    "published_at",
    "source",
    "lang",
    "sentiment",
    "sentiment_score",
    "relevance",
    "model_version",
    "classified_at",
)  # fmt: skip  (the columns the stream's entity writer names: stream/entities.py)


def _entity_rows(doc: dict[str, Any], sentiments: dict[str, str], *, at: datetime, version: str) -> list[list[Any]]:
    return [
        [doc["id"], entity, rank, doc["published_at"], doc["source"], doc["lang"], label, 0.5, 0.9, version, at]
        for rank, (entity, label) in enumerate(sentiments.items())
    ]


def _entities(client: Any, doc_id: str) -> dict[str, tuple[str, str]]:
    rows = client.query(
        "SELECT entity, sentiment, label_source FROM document_entities_latest WHERE document_id = {id:String}",
        parameters={"id": doc_id},
    ).result_rows
    return {str(e): (str(s), str(src)) for e, s, src in rows}


def test_an_entity_sentiment_correction_rewrites_its_row_and_survives_a_redelivery(db: Any) -> None:
    _, client = db
    doc = _doc("corr-pair", hours_ago=1, topic=EARNINGS, sentiment="positive", tickers=["ACME", "GLBX"])
    _insert(client, [doc])
    model_rows = _entity_rows(doc, {"ACME": "positive", "GLBX": "positive"}, at=doc["classified_at"], version="ent-1")
    client.insert("document_entities", model_rows, column_names=list(ENTITY_COLUMNS))
    with pytest.raises(c.CorrectionError, match=r"no entity-level sentiment for 'INIT'; its entities: ACME, GLBX"):
        c.record_correction(
            client, document_id="corr-pair", field="entity_sentiment", entity="INIT", label="neg", analyst="dana"
        )
    stored = c.record_correction(
        client, document_id="corr-pair", field="entity_sentiment", entity="GLBX", label="neg", analyst="dana"
    )
    assert (stored.label, stored.previous_label, stored.model_version) == ("negative", "positive", "ent-1")
    assert _entities(client, "corr-pair") == {"ACME": ("positive", "model"), "GLBX": ("negative", "analyst")}
    assert _latest(client, "corr-pair")["sentiment"] == "positive"  # the document's own label is not touched
    # the stream scores the redelivered document again; the entity writer passes its rows through the overlay
    again = _entity_rows(doc, {"ACME": "neutral", "GLBX": "positive"}, at=datetime.now(UTC), version="ent-2")
    columns, rows = c.overlay_entity_columns(client, ENTITY_COLUMNS, again)
    client.insert("document_entities", rows, column_names=columns)
    assert _entities(client, "corr-pair") == {"ACME": ("neutral", "model"), "GLBX": ("negative", "analyst")}
    # a batch without corrected documents comes back untouched, with the writer's own columns
    other = _entity_rows(DOCS[1], {"ACME": "neutral"}, at=datetime.now(UTC), version="ent-2")
    assert c.overlay_entity_columns(client, ENTITY_COLUMNS, other) == (list(ENTITY_COLUMNS), other)


def test_a_large_batch_finds_its_corrected_documents_in_every_lookup(db: Any) -> None:
    _, client = db
    first, last = "big-a", "big-z"  # ids are looked up in sorted order: these fall in the first and the last lookup
    _insert(client, [_doc(d, hours_ago=3, topic=MACRO, sentiment="neutral", tickers=[]) for d in (first, last)])
    c.record_correction(client, document_id=first, field="sentiment", label="negative", analyst="dana")
    c.record_correction(client, document_id=last, field="topic", label="Dividend", analyst="lee")
    # 2,500 ids: three lookups, each over 4 KB of ids (sent as a form field)
    ids = [first, *(f"big-m-{k:05d}" for k in range(2_498)), last]
    rows = [[doc_id, "wire", MACRO, "neutral"] for doc_id in ids]
    columns, out = c.overlay_columns(client, ["id", "source", "topic", "sentiment"], rows)
    assert columns == ["id", "source", "topic", "sentiment", "label_source", "corrected_fields", "corrected_by"]
    marked = {r[0]: (r[2], r[3], r[5], r[6]) for r in out if r[4] == "analyst"}
    assert marked == {
        first: (MACRO, "negative", ["sentiment"], "dana"),
        last: ("Dividend", "neutral", ["topic"], "lee"),
    }
    assert len(out) == len(ids) and all(r[4] == "model" and r[5] == [] for r in out if r[0] not in marked)
