"""Stories in the shared queries without a server: what each alert count counts, and the feed / drill-down
collapse (two reads: the stories, then their first reports by id). The same on a real ClickHouse:
tests/integration/alerts/test_stories.py and tests/integration/warehouse/test_stories_queries.py."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

import pandas as pd
import pytest

from warehouse import queries
from warehouse.queries import alerts, trends

PARAM = re.compile(r"\{(\w+):([^}]+)\}")
HOSTILE = "x'); DROP TABLE documents; --"


# Every table a rule can read, with every grouping it offers (the rollup has no language).
TABLES = [(g, False) for g in alerts.GROUPS if g != "lang"] + [(g, True) for g in alerts.GROUPS]


@pytest.mark.parametrize(("group_by", "use_documents"), TABLES)
def test_alert_counts_count_distinct_stories_or_every_copy(group_by: str, use_documents: bool) -> None:
    stories = alerts._counts_sql(group_by, use_documents, "stories")
    for figure in ("total", "negative", "positive", "classified"):
        assert re.search(rf"uniqExact(If)?\(story_id[^)]*\)[^,]* AS {figure}\b", stories), (figure, stories)
    assert "count()" not in stories and "uniqExact(id" not in stories
    copies = alerts._counts_sql(group_by, use_documents, "documents")
    assert not re.search(r"uniqExact(If)?\(story_id", copies)  # (a ticker-scoped source passes story_id through)
    assert ("uniqExact(id) AS total" if use_documents else "count() AS total") in copies
    assert alerts._counts_sql(group_by, use_documents) == stories  # stories by default
    assert set(PARAM.findall(stories)) == set(PARAM.findall(copies))  # only the figures differ


def test_an_unknown_count_is_refused_before_any_sql() -> None:
    with pytest.raises(ValueError, match="count must be one of"):
        alerts._counts_sql("none", False, "copies")
    with pytest.raises(ValueError, match="count must be one of"):
        alerts.window_counts(None, start=0, end=60, bucket_s=60, count="uniqExact(id)); DROP")
    with pytest.raises(ValueError, match="count must be one of"):
        alerts.watchlist_hits(None, start=0, end=60, tickers=["A"], keywords=[], count="copies")


def test_watchlist_counts_stories_or_documents_and_samples_documents() -> None:
    assert "uniqExact(story_id) AS negative" in alerts.WATCHLIST_SQL["stories"]
    assert "uniqExact(id) AS negative" in alerts.WATCHLIST_SQL["documents"]
    for sql in alerts.WATCHLIST_SQL.values():
        assert "groupUniqArray(id)" in sql and "$" not in sql


class Reads:
    """A clickhouse-connect stand-in: answers each SQL text with its frame and records the calls."""

    def __init__(self, answers: dict[str, pd.DataFrame]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def query_df(self, sql: str, parameters: dict[str, Any]) -> pd.DataFrame:
        self.calls.append((sql, parameters))
        return self.answers.get(sql, pd.DataFrame())


STORIES = pd.DataFrame(
    {
        "story_id": ["s-late", "s-early"],
        "first_id": ["a1", "b1"],
        "copies": [3, 1],
        "latest_published_at": pd.to_datetime(["2031-03-04 10:09", "2031-03-04 10:02"], utc=True),
        "latest_classified_at": pd.to_datetime(["2031-03-04 10:09:01", "2031-03-04 10:02:01"], utc=True),
    }
)
REPORTS = pd.DataFrame(  # the server answers `id IN (...)` in its own order
    {"id": ["b1", "a1"], "title": ["early story", "late story"], "story_id": ["s-early", "s-late"]}
)


@pytest.mark.parametrize(
    ("call", "stories_sql"),
    [
        (lambda c: queries.latest_documents(c, collapse=True, langs=[HOSTILE]), trends.FEED_STORIES_SQL),
        (
            lambda c: queries.drilldown(c, start=0, end=600, collapse=True, topics=[HOSTILE]),
            trends.DRILLDOWN_STORIES_SQL,
        ),
    ],
)
def test_collapse_shows_each_story_once_as_its_first_report_in_the_stories_order(call: Any, stories_sql: str) -> None:
    client = Reads({stories_sql: STORIES, trends.STORY_REPORTS_SQL: REPORTS})
    out = call(client)
    (sql1, params1), (sql2, params2) = client.calls
    assert sql1 == stories_sql and sql2 == trends.STORY_REPORTS_SQL
    assert {n for n, _ in PARAM.findall(sql1)} <= set(params1) and HOSTILE not in sql1
    assert params2 == {"ids": ["a1", "b1"]}  # the first reports, by primary key
    assert list(out["id"]) == ["a1", "b1"] and list(out["title"]) == ["late story", "early story"]
    assert list(out["copies"]) == [3, 1] and list(out["story_id"]) == ["s-late", "s-early"]
    assert list(out.columns) == ["id", "title", "story_id", *trends.STORY_COLUMNS]


def test_collapse_with_no_stories_reads_nothing_more_and_off_reads_every_copy() -> None:
    client = Reads({})
    assert queries.latest_documents(client, collapse=True).empty
    assert len(client.calls) == 1  # no second read for no stories
    client = Reads({trends.FEED_SQL: REPORTS})
    assert list(queries.latest_documents(client)["id"]) == ["b1", "a1"]  # collapse is off unless asked for
    assert [sql for sql, _ in client.calls] == [trends.FEED_SQL]


def test_stories_group_by_story_and_pick_the_earliest_report() -> None:
    for sql, latest in (
        (trends.FEED_STORIES_SQL, "latest_classified_at"),
        (trends.DRILLDOWN_STORIES_SQL, "latest_published_at"),
    ):
        assert "GROUP BY story_id" in sql and "argMin(id, (published_at, id)) AS first_id" in sql
        assert f"ORDER BY {latest} DESC, story_id" in sql and "FROM documents_latest" in sql
        assert "LIMIT {limit:UInt32}" in sql and "$" not in sql
    assert "WHERE id IN {ids:Array(String)}" in trends.STORY_REPORTS_SQL


def test_many_first_reports_are_looked_up_in_chunks_that_stay_in_the_url() -> None:
    # 300 stories with ids of the longest allowed kind (64 characters, ':' encodes to 3): one lookup would send
    # ~27 KB of parameters, which clickhouse-connect moves out of the URL (over 4 KB) into a multipart form.
    ids = [f"{k:03d}:" + "x" * 60 for k in range(300)]
    stories = pd.DataFrame(
        {
            "story_id": ids,
            "first_id": ids,
            "copies": [2] * 300,
            "latest_published_at": [pd.Timestamp("2031-03-04", tz="UTC")] * 300,
            "latest_classified_at": [pd.Timestamp("2031-03-04", tz="UTC")] * 300,
        }
    )

    class Chunks(Reads):
        def query_df(self, sql: str, parameters: dict[str, Any]) -> pd.DataFrame:
            self.calls.append((sql, parameters))
            if sql == trends.STORY_REPORTS_SQL:  # answered in reverse, as a server may
                return pd.DataFrame({"id": parameters["ids"][::-1], "story_id": parameters["ids"][::-1]})
            return stories

    client = Chunks({})
    out = queries.drilldown(client, start=0, end=600, limit=300, collapse=True)
    lookups = [params["ids"] for sql, params in client.calls if sql == trends.STORY_REPORTS_SQL]
    assert len(lookups) > 1 and [i for chunk in lookups for i in chunk] == ids  # each id once, in order
    for chunk in lookups:  # as clickhouse-connect encodes an Array(String) parameter
        encoded = urlencode({"param_ids": "[" + ",".join(f"'{i}'" for i in chunk) + "]"}, quote_via=quote)
        assert len(encoded) < 4096
    assert list(out["id"]) == ids and (out["copies"] == 2).all()  # the stories' order, not the lookups'
    assert trends._id_chunks([]) == [[]] and trends._id_chunks(["a"]) == [["a"]]
