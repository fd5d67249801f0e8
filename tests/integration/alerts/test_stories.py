"""Rules count stories, not copies, on the real local ClickHouse: twenty syndicated copies of one negative story do
not fire a surge (or a negative share, or a watchlist) counted by stories, and do with count='documents'; several
distinct negative stories fire. Through every table a rule reads: the per-minute rollup, the rollup per ticker
(ARRAY JOIN), and the documents table (a language scope)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from alerts import evaluator
from alerts.rules import Rule
from tests.integration.alerts.conftest import T0, Warehouse

pytestmark = pytest.mark.integration

MIN = timedelta(minutes=1)
NOW = T0 + 5 * MIN  # evaluates the window [T0, T0 + 5 min)
COLUMNS = ["id", "source", "kind", "lang", "title", "body", "published_at", "ingested_at", "tickers", "entities",
           "meta", "topic", "sentiment", "sentiment_score", "model_version", "classified_at", "story_id"]  # fmt: skip
OUTLETS = ["reuters", "bloomberg", "marketwatch", "yahoo", "sina"]


def insert_story(w: Warehouse, story_id: str, at: datetime, copies: int, **kw: Any) -> list[list[Any]]:
    """``copies`` documents of one story (one per outlet, round robin), published within the minute at ``at``;
    returns the rows, to deliver them again."""
    rows = []
    for i, row in enumerate(w.rows(at, copies, text=f"{story_id}: ACME recalls 2m cars", **kw)):
        row[1] = OUTLETS[i % len(OUTLETS)]
        rows.append([*row, story_id])
    w.client.insert("documents", rows, column_names=COLUMNS)
    return rows


def insert_alone(w: Warehouse, at: datetime, n: int, **kw: Any) -> None:
    """n documents that are each their own story (story_id defaults to id, as for documents stored before 0030)."""
    w.insert(w.rows(at, n, **kw))


def baseline(w: Warehouse) -> None:
    """Two hours before T0: per 5-minute window 2 negative and 8 neutral stories, one document each."""
    for k in range(1, 25):
        insert_alone(w, T0 - 5 * k * MIN, 2, sentiment="negative", ticker="ACME")
        insert_alone(w, T0 - 5 * k * MIN, 8, sentiment="neutral", ticker="ACME")


# (scope, group_by, group): the rollup, the rollup per ticker, the documents table (the rollup has no language).
PATHS = {
    "rollup": ({}, "none", ""),
    "rollup-by-ticker": ({}, "ticker", "ACME"),
    "documents": ({"lang": "en"}, "none", ""),
}


def surge(count: str, path: str) -> Rule:
    scope, group_by, _ = PATHS[path]
    return Rule(name=f"surge {count} {path}", kind="surge", scope=scope, group_by=group_by, window_s=300,
                baseline_s=7200, threshold=3.0, min_volume=10, count=count)  # fmt: skip


def observe(w: Warehouse, rule: Rule, group: str) -> evaluator.Observation:
    return evaluator.evaluate(w.client, rule, NOW)[group]


@pytest.mark.parametrize("path", list(PATHS))
def test_twenty_syndicated_copies_of_one_story_are_one_story(warehouse: Warehouse, path: str) -> None:
    w = warehouse
    group = PATHS[path][2]
    baseline(w)
    copies = insert_story(w, "story-recall", T0 + MIN, 20, sentiment="negative", ticker="ACME")
    w.client.insert("documents", copies[:5], column_names=COLUMNS)  # at-least-once: five copies delivered again
    insert_alone(w, T0 + 2 * MIN, 10, sentiment="neutral", ticker="ACME")  # the window has volume either way

    by_stories = observe(w, surge("stories", path), group)
    assert by_stories.doc_count == 11  # 1 story + 10 neutral ones: enough volume, so the z-score decides
    assert not by_stories.fires and by_stories.value < 0  # 1 negative story against a baseline of 2
    assert by_stories.message.startswith("negative stories: 1 in the last 5 min") and "11 stories" in by_stories.message

    by_documents = observe(w, surge("documents", path), group)
    assert by_documents.fires and by_documents.doc_count == 30  # each copy once, the redeliveries not again
    assert by_documents.value == pytest.approx(18.0)  # (20 - 2) / the floor of 1 document
    assert by_documents.message.startswith("negative documents: 20 in the last 5 min")


@pytest.mark.parametrize("path", list(PATHS))
def test_several_distinct_negative_stories_fire_a_surge_counted_by_stories(warehouse: Warehouse, path: str) -> None:
    w = warehouse
    group = PATHS[path][2]
    baseline(w)
    for n in range(12):  # twelve stories, three outlets each
        insert_story(w, f"story-{n}", T0 + (n % 4) * MIN, 3, sentiment="negative", ticker="ACME")
    obs = observe(w, surge("stories", path), group)
    assert obs.fires and obs.doc_count == 12 and obs.value == pytest.approx(10.0)  # (12 - 2) / 1


def test_negative_share_counts_stories_unless_told_to_count_copies(warehouse: Warehouse) -> None:
    w = warehouse
    insert_story(w, "story-recall", T0 + MIN, 20, sentiment="negative", ticker="ACME")
    insert_alone(w, T0 + 2 * MIN, 10, sentiment="neutral", ticker="ACME")
    rule = Rule(name="acme share", kind="negative_share", group_by="ticker", window_s=300, threshold=0.6,
                min_volume=10)  # fmt: skip
    by_stories = observe(w, rule, "ACME")
    assert not by_stories.fires and by_stories.value == pytest.approx(1 / 11, abs=1e-5)
    assert by_stories.message.startswith("9% of 11 stories negative")
    by_documents = observe(w, rule.model_copy(update={"count": "documents"}), "ACME")
    assert by_documents.fires and by_documents.value == pytest.approx(20 / 30, abs=1e-5)


def test_watchlist_counts_negative_stories(warehouse: Warehouse) -> None:
    w = warehouse
    insert_story(w, "story-recall", T0 + MIN, 5, sentiment="negative", ticker="ACME")
    rule = Rule(name="acme watch", kind="watchlist", watch_tickers=["ACME"], window_s=300, threshold=2)
    by_stories = observe(w, rule, "ticker:ACME")
    assert not by_stories.fires and by_stories.value == 1
    assert by_stories.message.startswith("1 negative story mentions ACME")
    by_documents = observe(w, rule.model_copy(update={"count": "documents"}), "ticker:ACME")
    assert by_documents.fires and by_documents.value == 5
    insert_story(w, "story-fraud", T0 + 2 * MIN, 2, sentiment="negative", ticker="ACME")
    assert observe(w, rule, "ticker:ACME").fires  # a second distinct story
