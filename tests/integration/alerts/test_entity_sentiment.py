"""Entity-level sentiment on the real ClickHouse (issue 14): the stream's ClickHouse sink writes document_entities
rows beside the documents (a redelivery collapses, a failing entity engine costs only the entity rows), and a ticker
rule fires on the negatives toward one company that the documents' own sentiment would miss; the alert names the
entity and its relevance in every webhook format."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from alerts import formats, store
from alerts.engine import Engine
from alerts.evaluator import evaluate
from alerts.rules import Rule
from finpulse.contracts import ClassifiedDocument, make_raw
from stream.entities import EntityStage
from stream.sinks.clickhouse import ClickHouseSink
from tests.entity_engines import BrokenEngine, ClauseEngine
from tests.integration.alerts.conftest import T0, Warehouse
from warehouse.queries import alerts as q
from warehouse.queries import trends
from warehouse.schema import document_row

pytestmark = pytest.mark.integration

MIN = timedelta(minutes=1)
CONTRAST = [
    "Acme beats estimates while rival Globex warns on revenue",
    "Acme raises guidance; Globex warns of weaker demand",
    "Acme soars on record orders as Globex plunges",
    "Acme beats forecasts, Globex misses on margins",
]


def _doc_rows(texts: list[str], tickers: list[str], *, sentiment: str = "positive", offset_s: int = 0) -> list[Any]:
    rows = []
    for i, text in enumerate(texts):
        at = T0 + timedelta(seconds=offset_s + i)
        raw = make_raw(source="wire", kind="news", title=text, published_at=at, tickers=tickers, lang="en",
                       source_id=f"{text}-{offset_s}-{i}")  # fmt: skip
        score = 0.7 if sentiment == "positive" else -0.7
        doc = ClassifiedDocument.model_construct(
            **dict(raw), topic="Earnings", sentiment=sentiment, sentiment_score=score,
            topic_probs={}, sentiment_probs={}, model_version="doc@1", classified_at=at + timedelta(seconds=1),
        )  # fmt: skip
        rows.append(document_row(doc))
    return rows


def _entity_rows(w: Warehouse) -> list[tuple[Any, ...]]:
    return w.client.query(
        "SELECT document_id, entity, rank, sentiment, relevance, model_version, label_source "
        "FROM document_entities FINAL ORDER BY document_id, rank"
    ).result_rows


def test_the_sink_writes_entity_rows_and_a_redelivery_collapses(warehouse: Warehouse) -> None:
    w = warehouse
    stage = EntityStage(w.settings, engine=ClauseEngine())
    sink = ClickHouseSink(w.settings, entities=stage)
    rows = _doc_rows(CONTRAST[:2], ["ACME", "GLOBEX"]) + _doc_rows(["Markets calm"], [], offset_s=30)
    try:
        sink.write(rows)
        sink.write(rows)  # redelivered batch
    finally:
        sink.close()
    got = _entity_rows(w)
    assert len(got) == 4, "2 documents x 2 tickers, the redelivered copies collapse under FINAL"
    assert {(r[1], r[3]) for r in got} == {("ACME", "positive"), ("GLOBEX", "negative")}
    assert all(r[5] == "entity-test@1" and r[6] == "model" for r in got)
    assert sorted(r[2] for r in got) == [0, 0, 1, 1]
    assert w.client.command("SELECT count() FROM documents FINAL") == 3
    assert stage.metrics.written._value.get() == 8  # type: ignore[attr-defined]


def test_a_failing_entity_engine_keeps_the_documents(warehouse: Warehouse) -> None:
    w = warehouse
    stage = EntityStage(w.settings, engine=BrokenEngine())
    sink = ClickHouseSink(w.settings, entities=stage)
    try:
        sink.write(_doc_rows(CONTRAST[:3], ["ACME", "GLOBEX"]))
    finally:
        sink.close()
    assert w.client.command("SELECT count() FROM documents FINAL") == 3
    assert _entity_rows(w) == []
    assert stage.metrics.skipped.labels("engine_error")._value.get() == 3  # type: ignore[attr-defined]


def _store(w: Warehouse, rows: list[Any], engine: Any = None) -> None:
    sink = ClickHouseSink(w.settings, entities=EntityStage(w.settings, engine=engine) if engine else None)
    try:
        sink.write(rows)
    finally:
        sink.close()


def test_ticker_rule_fires_on_entity_negatives_the_documents_miss(warehouse: Warehouse) -> None:
    w = warehouse
    s, c = w.settings, w.client
    rule = Rule(id="tick-neg", name="negative ticker", kind="negative_share", group_by="ticker", window_s=300,
                threshold=0.5, min_volume=3, pending_s=0, count="documents")  # fmt: skip
    store.save_rule(s, rule, client=c)
    contrast = _doc_rows(CONTRAST, ["ACME", "GLOBEX"])
    _store(w, contrast)  # no entity model yet: document-level only, every document positive
    before = evaluate(c, rule, T0 + MIN)
    assert {g: o.fires for g, o in before.items()} == {"ACME": False, "GLOBEX": False}
    assert Engine(s, c).tick(T0 + MIN) == []

    _store(w, contrast, ClauseEngine())  # the stream, now with an entity model (a redelivery of the same batch)
    # one document with an entity row missing (older than the model): counted at document level
    _store(w, _doc_rows(["Globex holds its annual meeting"], ["GLOBEX"], offset_s=20))
    after = evaluate(c, rule, T0 + MIN)
    assert after["GLOBEX"].fires and after["GLOBEX"].value == pytest.approx(4 / 5)
    assert not after["ACME"].fires and after["ACME"].value == 0.0

    fired = Engine(s, c).tick(T0 + MIN)
    assert [(e.kind, e.alert.group_value) for e in fired] == [("firing", "GLOBEX")]
    alert = fired[0].alert
    assert alert.entity == "GLOBEX" and alert.entity_basis == "entity"
    assert alert.entity_relevance == pytest.approx(0.6, abs=1e-4), "Globex is the second entity named"
    assert len(alert.top_stories) == 4
    assert all(x.entity_sentiment == "negative" and x.sentiment == "negative" for x in alert.top_stories)
    assert all(x.entity_relevance == pytest.approx(0.6, abs=1e-4) for x in alert.top_stories)
    assert store.get_alert(s, alert.id, client=c) == alert, "stored with its entity"
    assert "entity GLOBEX, relevance 0.60 (entity-level sentiment)" in alert.numbers()

    generic = formats.render(alert, event="firing", fmt="generic", delivery_id="d", sent_at=T0, receiver="r")
    body = generic["alert"]
    assert (body["entity"], body["entity_basis"]) == ("GLOBEX", "entity")
    assert body["entity_relevance"] == pytest.approx(0.6, abs=1e-4)
    assert body["top_stories"][0]["entity_sentiment"] == "negative"
    slack = formats.render(alert, event="firing", fmt="slack", delivery_id="d", sent_at=T0, receiver="r")
    texts = [b["text"]["text"] for b in slack["blocks"] if b["type"] == "section"]
    assert "entity GLOBEX, relevance 0.60" in texts[0]
    assert "toward the entity: negative (-0.80), relevance 0.60" in texts[2]
    am = formats.render(alert, event="firing", fmt="alertmanager", delivery_id="d", sent_at=T0, receiver="r")
    notes = am["alerts"][0]["annotations"]
    assert (notes["entity"], notes["entity_relevance"], notes["entity_basis"]) == ("GLOBEX", "0.6", "entity")

    # a rule scoped to one ticker (not grouped) counts the sentiment toward it too
    scoped = Rule(id="globex", name="globex", kind="negative_share", scope={"ticker": "GLOBEX"}, window_s=300,
                  threshold=0.5, min_volume=3, count="documents")  # fmt: skip
    assert evaluate(c, scoped, T0 + MIN)[""].fires
    acme = Rule(id="acme", name="acme", kind="negative_share", scope={"ticker": "ACME"}, window_s=300,
                threshold=0.5, min_volume=3, count="documents")  # fmt: skip
    assert not evaluate(c, acme, T0 + MIN)[""].fires
    ids = q.sample_document_ids(c, start=int(T0.timestamp()), end=int((T0 + MIN).timestamp()), group_by="ticker",
                                group="ACME")  # fmt: skip
    assert ids == [], "no document is negative toward Acme"
    # a watched ticker too; a keyword still counts by the document's own label (positive here)
    hits = q.watchlist_hits(c, start=int(T0.timestamp()), end=int((T0 + MIN).timestamp()), tickers=["GLOBEX", "ACME"],
                            keywords=["rival"], count="documents")  # fmt: skip
    assert set(hits) == {"ticker:GLOBEX"} and hits["ticker:GLOBEX"][0] == 4


def test_ranking_and_drilldown_say_which_sentiment(warehouse: Warehouse) -> None:
    w = warehouse
    _store(w, _doc_rows(CONTRAST, ["ACME", "GLOBEX"]), ClauseEngine())
    _store(w, _doc_rows(["Initech warns on costs", "Initech misses", "Initech cuts jobs"], ["INITECH"],
                        sentiment="negative", offset_s=30))  # fmt: skip
    end = T0 + 2 * MIN
    ranking = trends.ticker_shift(w.client, window_minutes=5, baseline_hours=1, min_docs=3, end=end)
    by = ranking.set_index("ticker")
    assert by.loc["GLOBEX", "window_negative_share"] == 1.0 and by.loc["GLOBEX", "basis"] == "entity"
    assert by.loc["ACME", "window_negative_share"] == 0.0 and by.loc["ACME", "basis"] == "entity"
    assert by.loc["INITECH", "basis"] == "document" and by.loc["INITECH", "window_negative_share"] == 1.0
    docs = trends.drilldown(w.client, start=T0, end=end, tickers=["GLOBEX"])
    assert len(docs) == 4 and set(docs["basis"]) == {"entity"}
    assert set(docs["entity_sentiment"]) == {"negative"} and set(docs["sentiment"]) == {"positive"}
    other = trends.drilldown(w.client, start=T0, end=end, tickers=["INITECH"])
    assert set(other["basis"]) == {"document"} and other["entity_sentiment"].isna().all()
    # an alert's drill-down on a ticker filters by the sentiment toward it, as the alert counted
    negative = trends.drilldown(w.client, start=T0, end=end, tickers=["GLOBEX"], sentiments=["negative"])
    assert len(negative) == 4 and set(negative["entity_sentiment"]) == {"negative"}
    stories = trends.drilldown(w.client, start=T0, end=end, tickers=["GLOBEX"], sentiments=["negative"], collapse=True)
    assert len(stories) == 4 and set(stories["basis"]) == {"entity"}
    assert trends.drilldown(w.client, start=T0, end=end, tickers=["ACME"], sentiments=["negative"]).empty
    assert len(trends.drilldown(w.client, start=T0, end=end, tickers=["INITECH"], sentiments=["negative"])) == 3
    everything = trends.drilldown(w.client, start=T0, end=end)
    assert "basis" not in everything.columns, "no ticker picked: the documents' own labels"
