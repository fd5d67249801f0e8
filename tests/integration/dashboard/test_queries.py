"""The shared trend/drill-down/feed/health queries and the SQL explorer, against the real local ClickHouse."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from dashboard import explorer
from tests.integration.dashboard import seed
from tests.integration.dashboard.conftest import DashStack
from warehouse import queries
from warehouse.client import create_client

pytestmark = pytest.mark.integration

ROWS = seed.documents()  # same seed and clock within a minute: the ids and labels the fixture inserted


@pytest.fixture(scope="module")
def client(dash: DashStack) -> Iterator[Any]:
    c = create_client(dash.settings, autogenerate_session_id=False)
    yield c
    c.close()


def _count(column: str, value: str) -> int:
    index = seed.COLUMNS.index(column)
    return sum(1 for row in ROWS if row[index] == value)


def test_trends_count_each_document_once_despite_redelivery(client: Any) -> None:
    trend = queries.volume_sentiment(client, hours=25, bucket_minutes=60)
    assert int(trend["docs"].sum()) == len(ROWS)  # 20 rows were inserted twice
    assert int(trend["negative"].sum()) == _count("sentiment", "negative")
    assert trend["sentiment_index"].between(-1, 1).all()
    only = queries.volume_sentiment(client, hours=25, bucket_minutes=60, topics=["regulation"])
    assert set(only["topic"]) == {"regulation"} and int(only["docs"].sum()) == _count("topic", "regulation")
    heat = queries.topic_heatmap(client, hours=25, bucket_minutes=60)
    assert int(heat["docs"].sum()) == len(ROWS) and heat["negative_share"].between(0, 1).all()


def test_window_against_baseline_and_ticker_ranking_see_the_surge(client: Any) -> None:
    compare = queries.window_vs_baseline(client, window_minutes=60, baseline_hours=24).set_index("topic")
    regulation = compare.loc["regulation"]
    assert regulation["window_docs"] >= 13  # 12 surge documents and the marker
    assert regulation["negative_share_change"] > 0.3
    shift = queries.ticker_shift(client, window_minutes=60, baseline_hours=24, min_docs=3)
    assert shift["ticker"].iloc[0] == "TSLA"
    assert (shift["window_docs"] >= 3).all()


def test_drilldown_and_feed_filter_by_every_field(client: Any) -> None:
    now = time.time()
    docs = queries.drilldown(client, start=now - 3600, end=now + 60, topics=["regulation"], tickers=["tsla"])
    assert seed.MARKER.title in set(docs["title"])
    assert all("TSLA" in list(t) for t in docs["tickers"]) and set(docs["topic"]) == {"regulation"}
    feed = queries.latest_documents(client, sentiments=["negative"], min_confidence=0.9, limit=500)
    assert not feed.empty and (feed["confidence"] >= 0.9).all() and set(feed["sentiment"]) == {"negative"}
    assert feed["classified_at"].is_monotonic_decreasing
    zh = queries.latest_documents(client, langs=["zh"], sources=["xueqiu"], limit=500)
    assert not zh.empty and set(zh["lang"]) == {"zh"} and set(zh["source"]) == {"xueqiu"}
    assert queries.latest_documents(client, tickers=["NO-SUCH"], limit=5).empty
    options = queries.filter_options(client)
    assert options["ticker"][0] == "TSLA" and "reuters-rss" in options["source"] and "zh" in options["lang"]


def test_health_queries(client: Any) -> None:
    flow = queries.throughput(client, hours=25, bucket_minutes=60)
    assert int(flow["docs"].sum()) == len(ROWS)
    assert (flow["latency_p95_s"] >= flow["latency_p50_s"]).all() and flow["latency_p95_s"].max() < 5
    conf = queries.confidence_over_time(client, hours=25, bucket_minutes=60)
    assert int(conf["docs"].sum()) == len(ROWS)
    assert ((conf["p10"] <= conf["p50"]) & (conf["p50"] <= conf["p90"])).all()
    versions = queries.model_versions(client, hours=25)
    assert list(versions["model_version"]) == [seed.MODEL] and int(versions["docs"].iloc[0]) == len(ROWS)
    fresh = queries.freshness(client)
    assert fresh["docs_last_hour"] >= 13 and fresh["last_classified_at"] is not None


def test_sql_explorer_user_cannot_write_drop_or_change_settings(dash: DashStack, client: Any) -> None:
    analyst = explorer.readonly_client(dash.settings, timeout_s=2)
    before = client.command("SELECT count() FROM documents")
    for sql in (
        "INSERT INTO documents (id, model_version) VALUES ('evil', 'x')",
        "DROP TABLE documents",
        "ALTER TABLE documents DELETE WHERE 1",
        "TRUNCATE TABLE alerts",
        "CREATE TABLE scratch (a Int8) ENGINE = Memory",
        "SET readonly = 0",
        "SELECT 1 SETTINGS readonly = 0",
    ):
        result = explorer.run(analyst, sql, row_limit=10, timeout_s=2)
        assert result.refused, (sql, result.error)
        assert result.error and "read-only" in result.error
    assert client.command("SELECT count() FROM documents") == before
    assert client.command("EXISTS TABLE documents") == 1

    tsla = "SELECT title FROM documents_latest WHERE has(tickers, 'TSLA')"
    ok = explorer.run(analyst, tsla, row_limit=5, timeout_s=2)
    assert ok.error is None and len(ok.frame) == 5 and ok.truncated
    assert b"title" in explorer.to_csv(ok.frame).splitlines()[0]
    slow = explorer.run(analyst, "SELECT sleepEachRow(0.9) FROM numbers(3)", row_limit=5, timeout_s=2)
    assert slow.error and "timeout" in slow.error
    typo = explorer.run(analyst, "SELECT nope FROM documents", row_limit=5, timeout_s=2)
    assert typo.error and "UNKNOWN_IDENTIFIER" in typo.error and not typo.refused
