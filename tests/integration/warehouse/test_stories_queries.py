"""The feed and the drill-down collapse copies of a story on the real local ClickHouse: one row per story, its first
report (in the range and filters) with the number of copies and the latest copy's time; off, every document."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from tests.stack import Stack
from warehouse import queries
from warehouse.client import create_client
from warehouse.migrate import migrate

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
MIN = timedelta(minutes=1)


def _doc(doc_id: str, story_id: str, minutes_ago: float, *, sentiment: str = "negative", **kw: Any) -> dict[str, Any]:
    published = NOW - minutes_ago * MIN
    return {
        "id": doc_id,
        "story_id": story_id,
        "source": kw.get("source", "wire"),
        "kind": "news",
        "lang": "en",
        "title": kw.get("title", f"{story_id}: headline"),
        "body": "",
        "url": f"https://example.com/{doc_id}",
        "published_at": published,
        "ingested_at": published,
        "tickers": kw.get("tickers", ["ACME"]),
        "entities": [],
        "meta": "{}",
        "topic": "markets",
        "sentiment": sentiment,
        "sentiment_score": -0.8 if sentiment == "negative" else 0.8,
        "sentiment_probs": {sentiment: 0.9},
        "model_version": "test-model",
        "classified_at": published + timedelta(seconds=1),
    }


OUTLETS = ["reuters", "bloomberg", "marketwatch", "yahoo"]
# The wire story: first reported 30 min ago, 19 more copies until 11 min ago; its copies 29..12 min ago are
# negative, the last (11 min ago) positive, to show that a filter applies to copies.
WIRE = [
    _doc(f"wire-{k:02d}", "story-wire", 30 - k, source=OUTLETS[k % 4], sentiment="positive" if k == 19 else "negative")
    for k in range(20)
]
ALONE = _doc("alone", "alone", 20, title="ACME CFO resigns")  # a story of one document (story_id = its id)
OTHER = [_doc(f"other-{k}", "story-other", 15 - k, tickers=["ZZZ"], sentiment="neutral") for k in range(3)]
# Three hours ago, 250 stories of two copies each with 32-character ids (as ingest's): more first reports than one
# lookup carries in its URL.
MANY = [
    _doc(f"{k:03d}-{c}".ljust(32, "0"), f"many-{k:03d}", 180 - k * 0.1, tickers=["MANY"])
    for k in range(250)
    for c in range(2)
]
DOCS = [*WIRE, ALONE, *OTHER]


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[Any]:
    database = f"stories_{uuid.uuid4().hex[:10]}"
    settings = stack.settings.model_copy(update={"clickhouse_database": database})
    migrate(settings)
    c = create_client(settings)
    names = list(DOCS[0])
    c.insert("documents", [[d[n] for n in names] for d in DOCS + MANY], column_names=names)
    c.insert("documents", [[d[n] for n in names] for d in WIRE[3:8]], column_names=names)  # delivered again
    try:
        yield c
    finally:
        c.command(f"DROP DATABASE IF EXISTS {database}")
        c.close()


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def test_feed_collapses_copies_into_their_first_report(client: Any) -> None:
    every = queries.latest_documents(client, hours=1, limit=100)
    assert len(every) == len(DOCS) and every["id"].is_unique  # off: every document once, redeliveries too

    stories = queries.latest_documents(client, hours=1, limit=100, collapse=True)
    # newest activity first (the latest copy's classified_at): the wire (11 min ago), other (13), alone (20)
    assert list(stories["story_id"]) == ["story-wire", "story-other", "alone"]
    wire = stories.iloc[0]
    assert wire["id"] == "wire-00" and wire["title"] == "story-wire: headline" and wire["source"] == "reuters"
    assert wire["copies"] == 20  # the five redelivered copies are not copies again
    assert _utc(wire["latest_published_at"]) == pd.Timestamp(NOW - 11 * MIN)
    assert _utc(wire["published_at"]) == pd.Timestamp(NOW - 30 * MIN)  # the first report's own time
    assert stories.set_index("story_id").loc["alone", "copies"] == 1
    assert stories.set_index("story_id").loc["story-other", "copies"] == 3
    assert queries.latest_documents(client, hours=1, limit=2, collapse=True)["story_id"].tolist() == [
        "story-wire",
        "story-other",
    ]  # the limit counts stories


def test_filters_apply_to_copies_before_they_collapse(client: Any) -> None:
    positive = queries.latest_documents(client, hours=1, sentiments=["positive"], collapse=True)
    assert list(positive["id"]) == ["wire-19"] and list(positive["copies"]) == [1]  # the one positive copy
    acme = queries.latest_documents(client, hours=1, tickers=["acme"], collapse=True)
    assert set(acme["story_id"]) == {"story-wire", "alone"}
    assert acme.set_index("story_id").loc["story-wire", "copies"] == 20
    assert queries.latest_documents(client, hours=1, tickers=["NO-SUCH"], collapse=True).empty


def test_drilldown_collapses_within_its_range(client: Any) -> None:
    start, end = (NOW - 25 * MIN).timestamp(), (NOW - 14 * MIN).timestamp()  # wire copies 5..15, alone, other-0
    every = queries.drilldown(client, start=start, end=end)
    assert len(every) == 11 + 1 + 1
    stories = queries.drilldown(client, start=start, end=end, collapse=True)
    # ordered by the latest copy's published time: other-0 (15 min ago), wire-15 (15 min ago), alone (20)
    assert set(stories["story_id"]) == {"story-wire", "alone", "story-other"} and len(stories) == 3
    wire = stories.set_index("story_id").loc["story-wire"]
    assert wire["id"] == "wire-05" and wire["copies"] == 11  # the first report *in the range*
    assert _utc(wire["latest_published_at"]) == pd.Timestamp(NOW - 15 * MIN)
    assert stories["latest_published_at"].map(_utc).is_monotonic_decreasing
    narrow = queries.drilldown(client, start=start, end=end, topics=["markets"], tickers=["ZZZ"], collapse=True)
    assert list(narrow["id"]) == ["other-0"] and list(narrow["copies"]) == [1]


def test_hundreds_of_stories_collapse_in_one_answer(client: Any) -> None:
    start, end = (NOW - 200 * MIN).timestamp(), (NOW - 150 * MIN).timestamp()
    stories = queries.drilldown(client, start=start, end=end, tickers=["MANY"], limit=500, collapse=True)
    assert len(stories) == 250 and (stories["copies"] == 2).all()
    assert stories["story_id"].tolist() == [f"many-{k:03d}" for k in range(249, -1, -1)]  # newest first
    assert stories["id"].tolist() == [f"{k:03d}-0".ljust(32, "0") for k in range(249, -1, -1)]  # first reports
    assert len(queries.drilldown(client, start=start, end=end, tickers=["MANY"], limit=500)) == 500
