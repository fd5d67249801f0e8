"""The alert part's queries over the classified stream (documents and their rollups): window counts, watchlist
hits, sample document ids and the top stories behind an alert. The engine's evaluator and evidence, the backtest
(`finpulse alerts backtest` and the dashboard's rule preview) and the relabel checks all read these.

SQL on the alert tables themselves (rules, targets, alerts, silences, acks, state, outbox, deliveries) is not here:
``alerts/repository.py`` owns it.

Constant SQL with server-side parameters: values are always bound (``{name:Type}``); the only variable part of a
statement is a *choice* among the fixed fragments below (which column to group by, whether the rule needs the
documents table), never text from a user. Window counts read the per-minute table ``documents_minutely_latest``
with FINAL (one row per document under its latest label: dedup-safe, and a relabeled document counts once, under
its new label) unless a rule needs what the rollup lacks (language, text), then ``documents_latest`` with uniqExact(id).
A rule counts either distinct stories (``uniqExact(story_id)``: twenty syndicated copies of one story are one item)
or every copy (``count``: documents); both tables carry ``story_id`` (migration 0030).

Ticker-scoped counts (grouped by ticker, or scoped to one) use the sentiment toward the ticker where the entity
model scored it (``document_entities``, migration 0040: latest row per (document, entity) under FINAL) and the
document's sentiment otherwise; every such row says which (``basis``: 'entity' | 'document').

Times are Unix seconds ([start, end), whole minutes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from string import Template
from typing import Any

import pandas as pd

from warehouse.queries.entities import ENTITY_ROWS
from warehouse.queries.entities import entity_source as _entity_source

GROUPS = ("none", "topic", "ticker", "source", "lang")

# group_by -> SQL expression over the rollup / documents rows (a closed set; lang only exists in documents).
_ROLLUP_GROUP = {"none": "''", "topic": "topic", "ticker": "ticker", "source": "source"}
_DOCS_GROUP = {"none": "''", "topic": "ifNull(topic, '')", "ticker": "ticker", "source": "source", "lang": "lang"}

# $ticker_scope: `ticker = ...` on the ARRAY JOINed ticker when grouping by ticker, else has(tickers, ...).
_ROLLUP_SCOPE = Template("""
  AND ({topic:String} = '' OR topic = {topic:String})
  AND ({ticker:String} = '' OR $ticker_scope)
  AND ({source:String} = '' OR source = {source:String})""")

_DOCS_SCOPE = """
  AND ({topic:String} = '' OR ifNull(topic, '') = {topic:String})
  AND ({ticker:String} = '' OR has(tickers, {ticker:String}))
  AND ({source:String} = '' OR source = {source:String})
  AND ({lang:String} = '' OR lang = {lang:String})"""

_DOCS_WINDOW = """
WHERE published_at >= toDateTime64({start:UInt32}, 3, 'UTC') AND published_at < toDateTime64({end:UInt32}, 3, 'UTC')"""

COUNTS = ("stories", "documents")

# count -> the four figures of a bucket (total, negative, positive, classified), per table (a closed set).
# Rollup rows after FINAL are one per document, so count() counts copies; stories are distinct story_ids.
_ROLLUP_FIGURES = {
    "documents": """count() AS total,
       countIf(sentiment = 'negative') AS negative,
       countIf(sentiment = 'positive') AS positive,
       countIf(sentiment != '') AS classified""",
    "stories": """uniqExact(story_id) AS total,
       uniqExactIf(story_id, sentiment = 'negative') AS negative,
       uniqExactIf(story_id, sentiment = 'positive') AS positive,
       uniqExactIf(story_id, sentiment != '') AS classified""",
}
_DOCS_FIGURES = {
    "documents": """uniqExact(id) AS total,
       uniqExactIf(id, sentiment = 'negative') AS negative,
       uniqExactIf(id, sentiment = 'positive') AS positive,
       uniqExactIf(id, ifNull(sentiment, '') != '') AS classified""",
    "stories": """uniqExact(story_id) AS total,
       uniqExactIf(story_id, sentiment = 'negative') AS negative,
       uniqExactIf(story_id, sentiment = 'positive') AS positive,
       uniqExactIf(story_id, ifNull(sentiment, '') != '') AS classified""",
}

_ROLLUP_COUNTS = Template("""
SELECT $group AS grp,
       intDiv(toUInt32(minute) - {start:UInt32}, {bucket:UInt32}) AS bucket,
       $figures
FROM $source
WHERE minute >= toDateTime({start:UInt32}, 'UTC') AND minute < toDateTime({end:UInt32}, 'UTC')
  $not_empty$scope
GROUP BY $by
""")

_DOCS_COUNTS = Template("""
SELECT $group AS grp,
       intDiv(toUInt32(toDateTime(published_at)) - {start:UInt32}, {bucket:UInt32}) AS bucket,
       $figures
FROM $source$window$scope
GROUP BY $by
""")


# Per (group, bucket, story): whether any copy of the story in the bucket is negative / positive / classified. The
# backtest builds its sliding distinct-story windows from these (stories span buckets, so bucket counts do not add).
_ROLLUP_STORY_FLAGS = """story_id, max(sentiment = 'negative') AS neg, max(sentiment = 'positive') AS pos,
       max(sentiment != '') AS cls"""
_DOCS_STORY_FLAGS = """story_id, max(ifNull(sentiment, '') = 'negative') AS neg,
       max(ifNull(sentiment, '') = 'positive') AS pos, max(ifNull(sentiment, '') != '') AS cls"""


def _check_count(count: str) -> None:
    if count not in COUNTS:
        raise ValueError(f"count must be one of {COUNTS}, not {count!r}")


def _counts_sql(
    group_by: str, use_documents: bool, count: str = "stories", ticker_scoped: bool = False, per_story: bool = False
) -> str:
    """``ticker_scoped`` (the rule names one ticker in its scope): count the sentiment toward that ticker; grouping
    by ticker always counts the sentiment toward each group's ticker. ``per_story``: one row of flags per (group,
    bucket, story) instead of the bucket's figures."""
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {GROUPS}, not {group_by!r}")
    _check_count(count)
    by_ticker = group_by == "ticker"
    entity = by_ticker or ticker_scoped
    if use_documents:
        plain = "documents_latest ARRAY JOIN tickers AS ticker" if by_ticker else "documents_latest"
        return _DOCS_COUNTS.substitute(
            group=_DOCS_GROUP[group_by],
            figures=_DOCS_STORY_FLAGS if per_story else _DOCS_FIGURES[count],
            by="grp, bucket, story_id" if per_story else "grp, bucket",
            source=_entity_source(False, by_ticker) if entity else plain,
            window=_DOCS_WINDOW,
            scope=_DOCS_SCOPE,
        )
    if group_by == "lang":
        raise ValueError("the rollup has no language; group by lang through the documents table")
    plain = "documents_minutely_latest FINAL" + (" ARRAY JOIN tickers AS ticker" if by_ticker else "")
    return _ROLLUP_COUNTS.substitute(
        group=_ROLLUP_GROUP[group_by],
        figures=_ROLLUP_STORY_FLAGS if per_story else _ROLLUP_FIGURES[count],
        by="grp, bucket, story_id" if per_story else "grp, bucket",
        # One row per (document, ticker); a document without tickers belongs to no ticker group.
        source=_entity_source(True, by_ticker) if entity else plain,
        not_empty="AND ticker != ''" if by_ticker else "",
        scope=_ROLLUP_SCOPE.substitute(
            ticker_scope="ticker = {ticker:String}" if by_ticker else "has(tickers, {ticker:String})"
        ),
    )


def _scope_params(scope: dict[str, str | None]) -> dict[str, str]:
    return {key: scope.get(key) or "" for key in ("topic", "ticker", "source", "lang")}


@dataclass(frozen=True)
class BucketCounts:
    """Distinct stories (or documents, by the rule's count) of one group in one bucket
    ([start + bucket * size, ... + size))."""

    group: str
    bucket: int
    total: int
    negative: int
    positive: int
    classified: int


def window_counts(
    client: Any,
    *,
    start: int,
    end: int,
    bucket_s: int,
    group_by: str = "none",
    scope: dict[str, str | None] | None = None,
    use_documents: bool = False,
    count: str = "stories",
) -> list[BucketCounts]:
    """Per-group, per-bucket counts (total, negative, positive, classified) in [start, end).

    ``count`` 'stories' counts distinct story_ids (a story's copies once), 'documents' every copy. Buckets with no
    documents are absent. ``use_documents`` reads documents_latest (needed for lang)."""
    scoped = _scope_params(scope or {})
    sql = _counts_sql(group_by, use_documents, count, ticker_scoped=bool(scoped["ticker"]))
    params = {"start": start, "end": end, "bucket": bucket_s, **scoped}
    rows = client.query(sql, parameters=params).result_rows
    return [BucketCounts(str(g), int(b), int(t), int(n), int(p), int(c)) for g, b, t, n, p, c in rows]


def story_buckets(
    client: Any,
    *,
    start: int,
    end: int,
    bucket_s: int,
    group_by: str = "none",
    scope: dict[str, str | None] | None = None,
    use_documents: bool = False,
) -> pd.DataFrame:
    """What window_counts counts, one row per (group, bucket, story) instead of per bucket: columns grp, bucket,
    story_id and the flags neg, pos, cls (any copy of the story in the bucket negative / positive / classified).
    Same sources, scope and sentiment (toward the ticker for ticker-scoped rules) as window_counts."""
    scoped = _scope_params(scope or {})
    sql = _counts_sql(group_by, use_documents, ticker_scoped=bool(scoped["ticker"]), per_story=True)
    params = {"start": start, "end": end, "bucket": bucket_s, **scoped}
    frame: pd.DataFrame = client.query_df(sql, parameters=params)
    return frame


# A watched ticker counts a document negative by the sentiment toward that ticker where the entity model scored it
# (a LEFT JOIN of the entity rows on (document, 'ticker:' + entity)), by the document's label otherwise; a keyword by
# the document's label. Documents that are neither negative nor name a watched ticker cannot count: left out early.
_WATCH_TERMS = (
    """
    SELECT d.id AS id, d.story_id AS story_id, d.term AS term, d.published_at AS published_at,
           if(e.found = 1, e.entity_sentiment, d.doc_sentiment) AS term_sentiment
    FROM (
        SELECT id, story_id, published_at, ifNull(sentiment, '') AS doc_sentiment, term
        FROM documents_latest
        ARRAY JOIN arrayConcat(
            arrayMap(t -> concat('ticker:', t), arrayFilter(t -> has({tickers:Array(String)}, t), tickers)),
            arrayMap(k -> concat('keyword:', k),
                     arrayFilter(k -> positionCaseInsensitiveUTF8(concat(title, ' ', body), k) > 0,
                                 {keywords:Array(String)}))
        ) AS term"""
    + _DOCS_WINDOW
    + """
          AND (sentiment = 'negative' OR hasAny(tickers, {tickers:Array(String)}))"""
    + _DOCS_SCOPE
    + """
    ) AS d
    LEFT JOIN (
        SELECT document_id, concat('ticker:', entity) AS term, entity_sentiment, found
        FROM ("""
    + ENTITY_ROWS
    + """)
    ) AS e ON e.document_id = d.id AND e.term = d.term"""
)
_WATCHLIST_SQL = Template("""
SELECT term, uniqExact($counted) AS negative, arraySlice(groupUniqArray(id), 1, {samples:UInt32}) AS sample
FROM ($terms
)
WHERE term_sentiment = 'negative'
GROUP BY term
""")
# count -> what a watched term's negative figure counts (a closed set).
WATCHLIST_SQL = {
    "stories": _WATCHLIST_SQL.substitute(counted="story_id", terms=_WATCH_TERMS),
    "documents": _WATCHLIST_SQL.substitute(counted="id", terms=_WATCH_TERMS),
}
# The same negatives per (term, bucket): documents (n), or one row per (term, bucket, story) with the flags of
# story_buckets (all set: only negatives are counted) for the backtest's distinct-story windows.
_WATCH_BUCKETS_SQL = Template("""
SELECT term AS grp, intDiv(toUInt32(toDateTime(published_at)) - {start:UInt32}, {bucket:UInt32}) AS bucket, $figures
FROM ($terms
)
WHERE term_sentiment = 'negative'
GROUP BY $by
""")
WATCH_BUCKETS_SQL = {
    "documents": _WATCH_BUCKETS_SQL.substitute(figures="uniqExact(id) AS n", by="grp, bucket", terms=_WATCH_TERMS),
    "stories": _WATCH_BUCKETS_SQL.substitute(
        figures="story_id, 1 AS neg, 1 AS pos, 1 AS cls", by="grp, bucket, story_id", terms=_WATCH_TERMS
    ),
}


def watchlist_hits(
    client: Any,
    *,
    start: int,
    end: int,
    tickers: Sequence[str],
    keywords: Sequence[str],
    scope: dict[str, str | None] | None = None,
    samples: int = 5,
    count: str = "stories",
) -> dict[str, tuple[int, list[str]]]:
    """Negative stories (``count='documents'``: documents) in [start, end) per watched term ('ticker:AAPL',
    'keyword:default'), with sample document ids. Keywords match title or body case-insensitively."""
    _check_count(count)
    params = {**_watch_params(start, end, tickers, keywords, scope), "samples": samples}
    rows = client.query(WATCHLIST_SQL[count], parameters=params).result_rows
    return {str(term): (int(n), list(sample)) for term, n, sample in rows}


def _watch_params(
    start: int, end: int, tickers: Sequence[str], keywords: Sequence[str], scope: dict[str, str | None] | None
) -> dict[str, Any]:
    return {"start": start, "end": end, "tickers": list(tickers), "keywords": list(keywords),
            **_scope_params(scope or {})}  # fmt: skip


def watchlist_buckets(
    client: Any,
    *,
    start: int,
    end: int,
    bucket_s: int,
    tickers: Sequence[str],
    keywords: Sequence[str],
    scope: dict[str, str | None] | None = None,
) -> list[tuple[str, int, int]]:
    """watchlist_hits' negative documents per (term, bucket): (term, bucket, documents), empty buckets absent."""
    params = {**_watch_params(start, end, tickers, keywords, scope), "bucket": bucket_s}
    rows = client.query(WATCH_BUCKETS_SQL["documents"], parameters=params).result_rows
    return [(str(term), int(b), int(n)) for term, b, n in rows]


def watchlist_story_buckets(
    client: Any,
    *,
    start: int,
    end: int,
    bucket_s: int,
    tickers: Sequence[str],
    keywords: Sequence[str],
    scope: dict[str, str | None] | None = None,
) -> pd.DataFrame:
    """watchlist_hits' negative stories per (term, bucket), one row per story, in story_buckets' columns."""
    params = {**_watch_params(start, end, tickers, keywords, scope), "bucket": bucket_s}
    frame: pd.DataFrame = client.query_df(WATCH_BUCKETS_SQL["stories"], parameters=params)
    return frame


_SAMPLE_SQL = Template("""
SELECT id FROM $source$window$scope
  AND ({negative_only:UInt8} = 0 OR sentiment = 'negative')
  AND $group = {group:String}
ORDER BY published_at DESC, id
LIMIT {limit:UInt32}
""")


def sample_document_ids(
    client: Any,
    *,
    start: int,
    end: int,
    group_by: str,
    group: str,
    scope: dict[str, str | None] | None = None,
    negative_only: bool = True,
    limit: int = 5,
) -> list[str]:
    """The newest documents behind an alert (its group in its window), for the alert message and drill-down."""
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {GROUPS}, not {group_by!r}")
    by_ticker = group_by == "ticker"
    # the sentiment toward the ticker, as the counts read it
    entity = by_ticker or bool((scope or {}).get("ticker"))
    source = _entity_source(False, by_ticker) if entity else "documents_latest"
    sql = _SAMPLE_SQL.substitute(
        source=source,
        window=_DOCS_WINDOW,
        scope=_DOCS_SCOPE,
        group=_DOCS_GROUP[group_by],
    )
    params = {
        "start": start,
        "end": end,
        "group": group,
        "negative_only": int(negative_only),
        "limit": limit,
        **_scope_params(scope or {}),
    }
    return [str(row[0]) for row in client.query(sql, parameters=params).result_rows]


# --- why an alert fired: its top contributing stories -------------------------------------------------------------

# group_by -> the condition that keeps one group's documents (a ticker group keeps every document naming it).
_STORY_GROUP = {
    "none": "1",
    "topic": "ifNull(topic, '') = {group:String}",
    "ticker": "has(tickers, {group:String})",
    "source": "source = {group:String}",
    "lang": "lang = {group:String}",
}

# One row per story (story_id, migration 0030) of the window's documents in the rule's scope and group: its first
# report in the window, the mean score and the copy count; the window functions count every story and document
# before LIMIT keeps the top ones. Aliases differ from column names: ClickHouse would read an alias in WHERE.
# With a ticker in focus ($entity_figures from _TOP_ENTITY_FIGURES), the sentiment toward it where an entity row
# exists (see _entity_source), and per story that entity's mean score and relevance over the copies that have one.
_TOP_STORIES_SQL = Template("""
SELECT story_id,
       argMin(title, (published_at, id)) AS first_title,
       argMin(source, (published_at, id)) AS first_source,
       argMin(url, (published_at, id)) AS first_url,
       min(published_at) AS first_at,
       argMin(sentiment, (published_at, id)) AS first_sentiment,
       avg(sentiment_score) AS mean_score,
       count() AS copies,
       count() OVER () AS stories,
       sum(count()) OVER () AS documents,
       $entity_figures
FROM $source $window$scope
  AND ({negative_only:UInt8} = 0 OR sentiment = 'negative')
  AND $group
  AND ({term_ticker:String} = '' OR has(tickers, {term_ticker:String}))
  AND ({term_keyword:String} = ''
       OR positionCaseInsensitiveUTF8(concat(title, ' ', body), {term_keyword:String}) > 0)
GROUP BY story_id
ORDER BY copies DESC, mean_score ASC NULLS LAST, first_at, story_id
LIMIT {limit:UInt32}
""")


# (aliases differ from column names, as above)
_TOP_ENTITY_FIGURES = """argMinIf(sentiment, (published_at, id), has_entity = 1) AS story_entity_sentiment,
       avgIf(entity_score, has_entity = 1) AS story_entity_score,
       avgIf(entity_relevance, has_entity = 1) AS story_entity_relevance,
       countIf(has_entity = 1) AS story_entity_rows,
       sum(countIf(has_entity = 1)) OVER () AS all_entity_rows,
       sum(sumIf(entity_relevance, has_entity = 1)) OVER () AS all_relevance"""
_NO_ENTITY_FIGURES = """'' AS story_entity_sentiment, NULL AS story_entity_score, NULL AS story_entity_relevance,
       0 AS story_entity_rows, 0 AS all_entity_rows, 0 AS all_relevance"""


@dataclass(frozen=True)
class StoryContribution:
    """One story's documents behind an alert: the first report in the window and the copy count."""

    story_id: str
    title: str
    source: str
    url: str | None
    published_at: Any
    sentiment: str | None
    sentiment_score: float | None
    copies: int
    # With a ticker in focus: the sentiment toward it (first report with an entity row), the mean entity score and
    # relevance over the copies the entity model scored, and how many it scored (0: document-level only).
    entity_sentiment: str | None = None
    entity_score: float | None = None
    entity_relevance: float | None = None
    entity_rows: int = 0


@dataclass(frozen=True)
class TopStories:
    stories: list[StoryContribution]  # the top ``limit``, most copies (then most negative) first
    story_count: int  # every story behind the alert, not only the top ones
    doc_count: int
    entity: str = ""  # the ticker in focus ('' when none)
    entity_docs: int = 0  # documents behind the alert that have an entity row for it
    entity_relevance: float | None = None  # their mean relevance

    @property
    def basis(self) -> str:
        """What sentiment the documents behind the alert were counted by: entity | document | mixed ('' when no
        ticker is in focus)."""
        if not self.entity:
            return ""
        if self.entity_docs == 0:
            return "document"
        return "entity" if self.entity_docs >= self.doc_count else "mixed"


def top_stories(
    client: Any,
    *,
    start: int,
    end: int,
    group_by: str,
    group: str,
    scope: dict[str, str | None] | None = None,
    negative_only: bool = True,
    ticker: str = "",
    keyword: str = "",
    limit: int = 5,
) -> TopStories:
    """The stories behind an alert: the documents of [start, end) in its scope and group (negative ones for
    negative rules; ``ticker`` / ``keyword`` narrow to a watchlist term), grouped by story, top ``limit`` by copies
    then negativity. Reads documents_latest: one row per document under its latest label. The ticker in focus (a
    ticker group, the scope's ticker or a watched ticker) is counted by the sentiment toward it where an entity row
    exists."""
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {GROUPS}, not {group_by!r}")
    focus = group if group_by == "ticker" else ticker or (scope or {}).get("ticker") or ""
    sql = _TOP_STORIES_SQL.substitute(
        source=_entity_source(False, False, "focus") if focus else "documents_latest",
        entity_figures=_TOP_ENTITY_FIGURES if focus else _NO_ENTITY_FIGURES,
        window=_DOCS_WINDOW,
        scope=_DOCS_SCOPE,
        group=_STORY_GROUP[group_by],
    )
    params = {
        "focus": focus,
        "start": start,
        "end": end,
        "group": group,
        "negative_only": int(negative_only),
        "term_ticker": ticker,
        "term_keyword": keyword,
        "limit": limit,
        **_scope_params(scope or {}),
    }
    rows = client.query(sql, parameters=params).result_rows
    stories = [
        StoryContribution(
            story_id=str(story_id), title=str(title), source=str(source), url=url, published_at=first_at,
            sentiment=sentiment, sentiment_score=None if score is None else float(score), copies=int(copies),
            entity_sentiment=(e_sentiment or None) if e_rows else None,
            entity_score=_opt_float(e_score) if e_rows else None,
            entity_relevance=_opt_float(e_relevance) if e_rows else None,
            entity_rows=int(e_rows),
        )
        for (story_id, title, source, url, first_at, sentiment, score, copies, _, _,
             e_sentiment, e_score, e_relevance, e_rows, _, _) in rows
    ]  # fmt: skip
    entity_docs = int(rows[0][14]) if rows else 0
    return TopStories(
        stories=stories,
        story_count=int(rows[0][8]) if rows else 0,
        doc_count=int(rows[0][9]) if rows else 0,
        entity=focus,
        entity_docs=entity_docs,
        entity_relevance=float(rows[0][15]) / entity_docs if entity_docs else None,
    )


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    out = float(value)
    return None if out != out else out  # avgIf over no rows is NaN
