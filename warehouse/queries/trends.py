"""Trend, drill-down, feed and pipeline-health queries shared by the dashboard and the alert engine.

Every query is a constant SQL text with server-side parameters (``{name:Type}``): nothing a user types is ever
spliced into SQL. Counts are dedup-safe (DESIGN: at-least-once delivery, exactly-once results) and relabel-safe (a
document relabeled by a newer model counts once, under its latest label): aggregates read the per-minute table
``documents_minutely_latest FINAL`` (one row per document, latest label; migration 0020) where
topic/sentiment/source/ticker suffice, and everything else reads ``documents_latest``. Pipeline-health figures
describe the stream, so they skip the rows ``finpulse relabel`` wrote (``relabeled = 1``).

Times are passed as Unix seconds (``toDateTime({end:UInt32}, 'UTC')``) so no datetime formatting or time zone
can differ between client and server; ``end=None`` means now.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from string import Template
from typing import Any
from urllib.parse import quote

import pandas as pd

from warehouse.queries.entities import entity_source

SENTIMENT_CONFIDENCE_SQL = "if(empty(sentiment_probs), NULL, arrayMax(mapValues(sentiment_probs)))"
"""A document's confidence: the probability of the sentiment label the model chose (its largest probability)."""


@dataclass(frozen=True)
class Window:
    """[start, end) in Unix seconds."""

    start: int
    end: int

    @classmethod
    def last(cls, minutes: float, end: datetime | float | None = None) -> Window:
        stop = _epoch(end)
        return cls(stop - round(minutes * 60), stop)

    def params(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end}


def _epoch(value: datetime | float | None) -> int:
    if value is None:
        # The next whole minute, so the current (partial) minute's rollup rows are inside the window.
        return (int(time.time()) // 60 + 1) * 60
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(value)


def _df(client: Any, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    frame: pd.DataFrame = client.query_df(sql, parameters=params)
    return frame


# --- rollup-based trends --------------------------------------------------------------------------------------

# FINAL leaves one row per document (its latest label), so count() is exact and a relabeled document is counted
# under its new label only; summing over minutes/topics stays exact, because a document has one minute and topic.
ROLLUP = "documents_minutely_latest FINAL"

_ROLLUP_BY_TOPIC = f"""
SELECT minute, topic, sentiment, count() AS n
FROM {ROLLUP}
WHERE minute >= toDateTime({{start:UInt32}}, 'UTC') AND minute < toDateTime({{end:UInt32}}, 'UTC')
  AND (empty({{topics:Array(String)}}) OR has({{topics:Array(String)}}, topic))
GROUP BY minute, topic, sentiment
"""

VOLUME_SENTIMENT_SQL = f"""
SELECT
    toStartOfInterval(minute, toIntervalMinute({{bucket:UInt32}})) AS bucket,
    if(topic = '', '(unclassified)', topic) AS topic,
    sum(n) AS docs,
    sumIf(n, sentiment = 'negative') AS negative,
    sumIf(n, sentiment = 'positive') AS positive,
    if(sumIf(n, sentiment != '') = 0, NULL, (positive - negative) / sumIf(n, sentiment != '')) AS sentiment_index
FROM ({_ROLLUP_BY_TOPIC})
GROUP BY bucket, topic
ORDER BY bucket, topic
"""


def volume_sentiment(
    client: Any,
    *,
    hours: float = 24,
    bucket_minutes: int = 5,
    topics: Sequence[str] = (),
    end: datetime | float | None = None,
) -> pd.DataFrame:
    """Per time bucket and topic: docs, negative, positive and the sentiment index (pos - neg) / labelled docs."""
    params = Window.last(hours * 60, end).params() | {"bucket": bucket_minutes, "topics": list(topics)}
    return _df(client, VOLUME_SENTIMENT_SQL, params)


_SPLIT = "minute >= toDateTime({split:UInt32}, 'UTC')"
_BEFORE = "minute < toDateTime({split:UInt32}, 'UTC')"
_WINDOW_BASELINE_COUNTS = f"""
    countIf({_SPLIT}) AS window_docs,
    countIf({_SPLIT} AND sentiment = 'negative') AS window_negative,
    countIf({_SPLIT} AND sentiment = 'positive') AS window_positive,
    countIf({_BEFORE}) AS baseline_docs,
    countIf({_BEFORE} AND sentiment = 'negative') AS baseline_negative,
    countIf({_BEFORE} AND sentiment = 'positive') AS baseline_positive"""

WINDOW_VS_BASELINE_SQL = f"""
SELECT
    topic,{_WINDOW_BASELINE_COUNTS}
FROM {ROLLUP}
WHERE minute >= toDateTime({{start:UInt32}}, 'UTC') AND minute < toDateTime({{end:UInt32}}, 'UTC') AND topic != ''
GROUP BY topic
"""


def window_vs_baseline(
    client: Any, *, window_minutes: int = 60, baseline_hours: float = 24, end: datetime | float | None = None
) -> pd.DataFrame:
    """Per topic: the current window against the baseline before it, scaled to the window's length.

    Columns: topic, window_docs, baseline_docs_per_window, volume_ratio, window_negative_share,
    baseline_negative_share, negative_share_change, window_index, baseline_index.
    """
    stop = _epoch(end)
    split = stop - window_minutes * 60
    start = split - round(baseline_hours * 3600)
    raw = _df(client, WINDOW_VS_BASELINE_SQL, {"start": start, "split": split, "end": stop})
    return _compare(raw, window_minutes / (baseline_hours * 60), key="topic")


def _compare(raw: pd.DataFrame, scale: float, *, key: str) -> pd.DataFrame:
    """Shares, indices and ratios for rows of window_* / baseline_* counts (scale = window / baseline length)."""
    columns = [
        key,
        "window_docs",
        "baseline_docs_per_window",
        "volume_ratio",
        "window_negative_share",
        "baseline_negative_share",
        "negative_share_change",
        "window_index",
        "baseline_index",
    ]
    if raw.empty:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame({key: raw[key]})
    raw = raw.astype({c: float for c in raw.columns if c != key})  # UInt64 differences would wrap around
    window = raw["window_docs"]
    baseline = raw["baseline_docs"]
    out["window_docs"] = raw["window_docs"].astype(int)
    out["baseline_docs_per_window"] = baseline * scale
    out["volume_ratio"] = (window / out["baseline_docs_per_window"]).where(out["baseline_docs_per_window"] > 0)
    out["window_negative_share"] = (raw["window_negative"] / window).where(window > 0)
    out["baseline_negative_share"] = (raw["baseline_negative"] / baseline).where(baseline > 0)
    out["negative_share_change"] = out["window_negative_share"] - out["baseline_negative_share"]
    out["window_index"] = ((raw["window_positive"] - raw["window_negative"]) / window).where(window > 0)
    out["baseline_index"] = ((raw["baseline_positive"] - raw["baseline_negative"]) / baseline).where(baseline > 0)
    return out[columns].reset_index(drop=True)


TOPIC_HEATMAP_SQL = f"""
SELECT
    toStartOfInterval(minute, toIntervalMinute({{bucket:UInt32}})) AS bucket,
    topic,
    sum(n) AS docs,
    sumIf(n, sentiment = 'negative') AS negative,
    negative / docs AS negative_share
FROM ({_ROLLUP_BY_TOPIC})
WHERE topic != ''
GROUP BY bucket, topic
ORDER BY bucket, topic
"""


def topic_heatmap(
    client: Any, *, hours: float = 24, bucket_minutes: int = 30, end: datetime | float | None = None
) -> pd.DataFrame:
    """Per time bucket and topic: docs, negative docs and the negative share (cells of a topic-by-time heatmap)."""
    params = Window.last(hours * 60, end).params() | {"bucket": bucket_minutes, "topics": []}
    return _df(client, TOPIC_HEATMAP_SQL, params)


# One row per (document, ticker): the table's tickers are distinct per document. A document's sentiment toward the
# ticker where the entity model scored it (warehouse/queries/entities.py), its own label otherwise; window_entity
# counts the window's documents counted at entity level (the ranking's basis).
TICKER_SHIFT_SQL = f"""
SELECT ticker, window_docs, window_negative, window_positive, baseline_docs, baseline_negative, baseline_positive,
       window_entity
FROM (
    SELECT
        ticker,{_WINDOW_BASELINE_COUNTS},
        countIf({_SPLIT} AND has_entity = 1) AS window_entity
    FROM {entity_source(True, True)}
    WHERE minute >= toDateTime({{start:UInt32}}, 'UTC') AND minute < toDateTime({{end:UInt32}}, 'UTC')
      AND ticker != '' AND sentiment != ''
    GROUP BY ticker
)
WHERE window_docs >= {{min_docs:UInt32}}
"""


def basis_of(entity_docs: int, docs: int) -> str:
    """entity (every document counted by its sentiment toward the ticker), document (none), or mixed."""
    if entity_docs <= 0:
        return "document"
    return "entity" if entity_docs >= docs else "mixed"


def ticker_shift(
    client: Any,
    *,
    window_minutes: int = 60,
    baseline_hours: float = 24,
    min_docs: int = 3,
    limit: int = 25,
    end: datetime | float | None = None,
) -> pd.DataFrame:
    """Tickers with at least ``min_docs`` labelled docs in the window, ranked by the rise of their negative share
    over their own baseline (a ticker without baseline ranks by its window share). A document counts by its
    sentiment toward the ticker where the entity model scored it: ``entity_docs`` of the window's documents did, and
    ``basis`` says entity | document | mixed."""
    stop = _epoch(end)
    split = stop - window_minutes * 60
    start = split - round(baseline_hours * 3600)
    raw = _df(client, TICKER_SHIFT_SQL, {"start": start, "split": split, "end": stop, "min_docs": min_docs})
    out = _compare(raw, window_minutes / (baseline_hours * 60), key="ticker")
    if out.empty:
        return out.assign(entity_docs=pd.Series(dtype=int), basis=pd.Series(dtype=str))
    # _compare keeps raw's row order
    out["entity_docs"] = raw["window_entity"].astype(int).to_numpy()
    out["basis"] = [basis_of(e, d) for e, d in zip(out["entity_docs"], out["window_docs"], strict=True)]
    rank = out["negative_share_change"].fillna(out["window_negative_share"])
    order = rank.sort_values(ascending=False, kind="stable").index
    return out.loc[order].head(limit).reset_index(drop=True)


# --- documents: drill-down and live feed ----------------------------------------------------------------------

_DOC_COLUMNS = f"""
    id, published_at, classified_at, source, kind, lang, topic, sentiment, sentiment_score,
    {SENTIMENT_CONFIDENCE_SQL} AS confidence, topic_score, tickers,
    -- comments carry their text in the body only: show its start where there is no title
    if(title != '', title, substring(body, 1, 200)) AS title, substring(body, 1, 280) AS body, url, model_version,
    story_id
"""

_DOC_FILTERS = """
      AND (empty({topics:Array(String)}) OR has({topics:Array(String)}, ifNull(topic, '')))
      AND (empty({sentiments:Array(String)}) OR has({sentiments:Array(String)}, ifNull(sentiment, '')))
      AND (empty({sources:Array(String)}) OR has({sources:Array(String)}, source))
      AND (empty({langs:Array(String)}) OR has({langs:Array(String)}, lang))
      AND (empty({tickers:Array(String)}) OR hasAny(tickers, {tickers:Array(String)}))
      AND ({min_confidence:Float64} <= 0 OR ifNull(confidence, 0) >= {min_confidence:Float64})
"""

DRILLDOWN_SQL = f"""
SELECT {_DOC_COLUMNS}
FROM documents_latest
WHERE published_at >= toDateTime({{start:UInt32}}, 'UTC') AND published_at < toDateTime({{end:UInt32}}, 'UTC')
{_DOC_FILTERS}
ORDER BY published_at DESC, id
LIMIT {{limit:UInt32}}
"""

FEED_SQL = f"""
SELECT {_DOC_COLUMNS}
FROM documents_latest
WHERE published_at >= toDateTime({{start:UInt32}}, 'UTC')
{_DOC_FILTERS}
ORDER BY classified_at DESC, id
LIMIT {{limit:UInt32}}
"""


# --- stories: one row per story instead of one per copy ---------------------------------------------------------
# Two steps, because every read of documents_latest (FINAL) merges the whole table whatever the time window: (1) one
# such read of the matching documents' slim columns, grouped by story_id: which document reported the story first
# (earliest published_at, then id), how many matching copies, when the latest was published / classified; at most
# `limit` stories, newest activity first; (2) those first reports' rows, looked up by id (the primary key: a few
# granules, not another full read). A single statement would need the stories twice (~2x the time, measured).
# documents_latest holds one row per id, so a redelivered copy is one copy.
_STORY_ROWS = f"""
    SELECT id, story_id, published_at, classified_at, topic, sentiment, source, lang, tickers,
           {SENTIMENT_CONFIDENCE_SQL} AS confidence
    FROM documents_latest"""

_STORIES = Template(f"""
SELECT story_id, argMin(id, (published_at, id)) AS first_id, count() AS copies,
       max(published_at) AS latest_published_at, max(classified_at) AS latest_classified_at
FROM ({_STORY_ROWS}
    WHERE $window{_DOC_FILTERS})
GROUP BY story_id
ORDER BY $latest DESC, story_id
LIMIT {{limit:UInt32}}
""")

DRILLDOWN_STORIES_SQL = _STORIES.substitute(
    window="published_at >= toDateTime({start:UInt32}, 'UTC') AND published_at < toDateTime({end:UInt32}, 'UTC')",
    latest="latest_published_at",
)
FEED_STORIES_SQL = _STORIES.substitute(
    window="published_at >= toDateTime({start:UInt32}, 'UTC')", latest="latest_classified_at"
)

STORY_REPORTS_SQL = f"""
SELECT {_DOC_COLUMNS}
FROM documents_latest
WHERE id IN {{ids:Array(String)}}
"""

STORY_COLUMNS = ("copies", "latest_published_at", "latest_classified_at")
"""What a collapsed row adds to a document's columns: its story's matching copies (the first report included) and
the newest copy's published_at / classified_at."""

# Ids per lookup, by length: clickhouse-connect sends bind parameters over 4 KB (URL-encoded) as a multipart form,
# and a real server caps one form field at 128 KiB (http_max_field_value_size); 3,500 URL-encoded characters of ids
# stay in the URL, which every endpoint and proxy reads (an id costs its encoded length plus 9: two quotes and a
# comma, encoded).
LOOKUP_CHARS = 3_500


def _id_chunks(ids: list[str]) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    size = 0
    for doc_id in ids:
        cost = len(quote(doc_id)) + 9
        if chunks[-1] and size + cost > LOOKUP_CHARS:
            chunks.append([])
            size = 0
        chunks[-1].append(doc_id)
        size += cost
    return chunks


def _collapsed(client: Any, stories_sql: str, params: dict[str, Any]) -> pd.DataFrame:
    """One row per story: the first report's columns and STORY_COLUMNS, in the order stories_sql ranked them."""
    stories = _df(client, stories_sql, params)
    if stories.empty:
        return stories
    parts = [_df(client, STORY_REPORTS_SQL, {"ids": c}) for c in _id_chunks([str(i) for i in stories["first_id"]])]
    reports = pd.concat([p for p in parts if not p.empty] or parts[:1], ignore_index=True)
    if reports.empty:  # the first reports expired (TTL) between the two reads: nothing to show for them
        return reports
    # An inner merge keeps the stories' order (newest activity first).
    out = stories[["first_id", *STORY_COLUMNS]].merge(reports, left_on="first_id", right_on="id", how="inner")
    return out.drop(columns=["first_id"])[[*reports.columns, *STORY_COLUMNS]].reset_index(drop=True)


def _filters(
    topics: Sequence[str],
    sentiments: Sequence[str],
    sources: Sequence[str],
    langs: Sequence[str],
    tickers: Sequence[str],
    min_confidence: float,
) -> dict[str, Any]:
    return {
        "topics": list(topics),
        "sentiments": list(sentiments),
        "sources": list(sources),
        "langs": list(langs),
        "tickers": [t.upper() for t in tickers],
        "min_confidence": float(min_confidence),
    }


def drilldown(
    client: Any,
    *,
    start: datetime | float,
    end: datetime | float,
    topics: Sequence[str] = (),
    sentiments: Sequence[str] = (),
    sources: Sequence[str] = (),
    langs: Sequence[str] = (),
    tickers: Sequence[str] = (),
    min_confidence: float = 0.0,
    limit: int = 200,
    collapse: bool = False,
) -> pd.DataFrame:
    """The documents behind a chart point: published in [start, end), matching every filter given, newest first.

    ``collapse``: one row per story instead (its first report in the range, with STORY_COLUMNS), the story with
    the newest copy first; ``limit`` then counts stories."""
    params = {"start": _epoch(start), "end": _epoch(end), "limit": limit}
    params |= _filters(topics, sentiments, sources, langs, tickers, min_confidence)
    if not tickers:
        return _collapsed(client, DRILLDOWN_STORIES_SQL, params) if collapse else _df(client, DRILLDOWN_SQL, params)
    if collapse:
        out = _collapsed(client, DRILLDOWN_STORIES_ENTITY_SQL, params)
    else:
        out = _df(client, DRILLDOWN_ENTITY_SQL, params)
    return with_entity_sentiment(client, out, [t.upper() for t in tickers], _epoch(start), _epoch(end))


# A ticker drill-down filtered by sentiment filters by the sentiment toward the picked ticker(s) where the entity
# model scored the document (the most relevant of the picked tickers), as ticker-scoped alerts count: an alert on
# Globex's negatives opens on the documents negative toward Globex even when they are positive as a whole.
_ENTITY_PICK = """
    LEFT JOIN (
        SELECT document_id, argMax(sentiment, relevance) AS picked_sentiment, 1 AS picked
        FROM document_entities FINAL
        WHERE published_at >= toDateTime64({start:UInt32}, 3, 'UTC')
          AND published_at < toDateTime64({end:UInt32}, 3, 'UTC') AND has({tickers:Array(String)}, entity)
        GROUP BY document_id
    ) AS picked_entity ON picked_entity.document_id = documents_latest.id"""
_DOC_SENTIMENT_FILTER = "has({sentiments:Array(String)}, ifNull(sentiment, ''))"
_PICKED_SENTIMENT_FILTER = "has({sentiments:Array(String)}, if(picked = 1, picked_sentiment, ifNull(sentiment, '')))"


def _by_picked_sentiment(sql: str) -> str:
    """``sql`` (a drill-down over documents_latest) with its sentiment filter on the sentiment toward the tickers."""
    if sql.count("FROM documents_latest\n") != 1 or sql.count(_DOC_SENTIMENT_FILTER) != 1:
        raise RuntimeError("the drill-down SQL no longer has the shape _by_picked_sentiment rewrites")
    return sql.replace("FROM documents_latest\n", "FROM documents_latest" + _ENTITY_PICK + "\n").replace(
        _DOC_SENTIMENT_FILTER, _PICKED_SENTIMENT_FILTER
    )


ENTITY_LOOKUP_SQL = """
SELECT document_id AS id, entity, sentiment AS entity_sentiment, sentiment_score AS entity_score,
       relevance AS entity_relevance, label_source AS entity_label_source
FROM document_entities FINAL
WHERE published_at >= toDateTime64({start:UInt32}, 3, 'UTC') AND published_at < toDateTime64({end:UInt32}, 3, 'UTC')
  AND document_id IN {ids:Array(String)} AND has({entities:Array(String)}, entity)
"""

DRILLDOWN_ENTITY_SQL = _by_picked_sentiment(DRILLDOWN_SQL)
DRILLDOWN_STORIES_ENTITY_SQL = _by_picked_sentiment(DRILLDOWN_STORIES_SQL)

ENTITY_COLUMNS = ("entity", "entity_sentiment", "entity_score", "entity_relevance", "basis")
"""What a drill-down filtered by ticker adds: the sentiment toward the picked ticker (the most relevant of them when
several are picked) and ``basis`` (entity | document: whether the entity model scored it)."""


def with_entity_sentiment(
    client: Any, docs: pd.DataFrame, tickers: Sequence[str], start: int, end: int
) -> pd.DataFrame:
    """``docs`` (with id and published_at in [start, end)) plus ENTITY_COLUMNS for the given tickers."""
    out = docs.copy()
    if out.empty:
        return out.assign(**{c: pd.Series(dtype=object) for c in ENTITY_COLUMNS})
    ids = [str(i) for i in out["id"]]
    params = {"start": start, "end": end, "entities": list(tickers)}
    parts = [_df(client, ENTITY_LOOKUP_SQL, params | {"ids": chunk}) for chunk in _id_chunks(ids)]
    found = pd.concat([p for p in parts if not p.empty] or parts[:1], ignore_index=True)
    if not found.empty:
        found = found.sort_values("entity_relevance", ascending=False, kind="stable").drop_duplicates("id")
        out = out.merge(found.drop(columns=["entity_label_source"]), on="id", how="left")
    else:
        out = out.assign(entity=None, entity_sentiment=None, entity_score=None, entity_relevance=None)
    out["basis"] = ["entity" if isinstance(e, str) and e else "document" for e in out["entity_sentiment"]]
    return out


def latest_documents(
    client: Any,
    *,
    hours: float = 24,
    topics: Sequence[str] = (),
    sentiments: Sequence[str] = (),
    sources: Sequence[str] = (),
    langs: Sequence[str] = (),
    tickers: Sequence[str] = (),
    min_confidence: float = 0.0,
    limit: int = 100,
    collapse: bool = False,
) -> pd.DataFrame:
    """The newest classified documents (by classified_at) published in the last ``hours``, filtered.

    ``collapse``: one row per story instead (its first report, with STORY_COLUMNS), the story whose newest copy was
    classified last first; ``limit`` then counts stories."""
    params = {"start": _epoch(None) - round(hours * 3600), "limit": limit}
    params |= _filters(topics, sentiments, sources, langs, tickers, min_confidence)
    if collapse:
        return _collapsed(client, FEED_STORIES_SQL, params)
    return _df(client, FEED_SQL, params)


FILTER_OPTIONS_SQL = f"""
SELECT 'topic' AS field, topic AS value, count() AS docs FROM {ROLLUP}
WHERE minute >= toDateTime({{start:UInt32}}, 'UTC') AND topic != '' GROUP BY topic
UNION ALL
SELECT 'source', source, count() FROM {ROLLUP}
WHERE minute >= toDateTime({{start:UInt32}}, 'UTC') GROUP BY source
UNION ALL
SELECT 'ticker', ticker, count() FROM {ROLLUP} ARRAY JOIN tickers AS ticker
WHERE minute >= toDateTime({{start:UInt32}}, 'UTC') AND ticker != '' GROUP BY ticker
UNION ALL
SELECT 'lang', lang, uniqExact(id) FROM documents
WHERE published_at >= toDateTime({{start:UInt32}}, 'UTC') GROUP BY lang
"""


def filter_options(client: Any, *, hours: float = 24 * 7, max_tickers: int = 500) -> dict[str, list[str]]:
    """Values seen in the last ``hours`` for each filter (topic, source, ticker, lang), most frequent first."""
    df = _df(client, FILTER_OPTIONS_SQL, {"start": _epoch(None) - round(hours * 3600)})
    out: dict[str, list[str]] = {"topic": [], "source": [], "ticker": [], "lang": []}
    if df.empty:  # a backend may answer no rows with no columns either
        return out
    for field, group in df.sort_values(["docs", "value"], ascending=[False, True]).groupby("field", sort=False):
        out[str(field)] = [str(v) for v in group["value"]]
    out["ticker"] = out["ticker"][:max_tickers]
    return out


# --- pipeline health ------------------------------------------------------------------------------------------

THROUGHPUT_SQL = """
SELECT
    toStartOfInterval(classified_at, toIntervalMinute({bucket:UInt32})) AS bucket,
    uniqExact(id) AS docs,
    uniqExact(id) / ({bucket:UInt32} * 60) AS docs_per_s,
    quantile(0.5)(dateDiff('millisecond', ingested_at, classified_at)) / 1000 AS latency_p50_s,
    quantile(0.95)(dateDiff('millisecond', ingested_at, classified_at)) / 1000 AS latency_p95_s
FROM documents
WHERE classified_at >= toDateTime({start:UInt32}, 'UTC') AND classified_at < toDateTime({end:UInt32}, 'UTC')
  AND relabeled = 0
GROUP BY bucket
ORDER BY bucket
"""


def throughput(
    client: Any, *, hours: float = 6, bucket_minutes: int = 5, end: datetime | float | None = None
) -> pd.DataFrame:
    """Classified documents per bucket of classified_at, docs/s, and ingest-to-classified latency p50/p95."""
    params = Window.last(hours * 60, end).params() | {"bucket": bucket_minutes}
    return _df(client, THROUGHPUT_SQL, params)


CONFIDENCE_SQL = f"""
SELECT
    toStartOfInterval(at, toIntervalMinute({{bucket:UInt32}})) AS bucket,
    count() AS docs,
    quantile(0.1)(confidence) AS p10,
    quantile(0.5)(confidence) AS p50,
    quantile(0.9)(confidence) AS p90,
    countIf(confidence < {{low:Float64}}) / count() AS low_share
FROM (
    -- the latest label of each document (a relabeled one: its new model's confidence, at its relabel time)
    SELECT id, classified_at AS at, {SENTIMENT_CONFIDENCE_SQL} AS confidence
    FROM documents_latest
    WHERE classified_at >= toDateTime({{start:UInt32}}, 'UTC') AND classified_at < toDateTime({{end:UInt32}}, 'UTC')
      AND NOT empty(sentiment_probs)
)
GROUP BY bucket
ORDER BY bucket
"""


def confidence_over_time(
    client: Any,
    *,
    hours: float = 24,
    bucket_minutes: int = 30,
    low: float = 0.6,
    end: datetime | float | None = None,
) -> pd.DataFrame:
    """Per bucket: the p10/p50/p90 of sentiment confidence and the share below ``low`` - a drift signal."""
    params = Window.last(hours * 60, end).params() | {"bucket": bucket_minutes, "low": low}
    return _df(client, CONFIDENCE_SQL, params)


# documents_latest: a relabeled document counts under the model that labels it now, not under both.
MODEL_VERSIONS_SQL = """
SELECT model_version, count() AS docs, min(classified_at) AS first_seen, max(classified_at) AS last_seen
FROM documents_latest
WHERE classified_at >= toDateTime({start:UInt32}, 'UTC')
GROUP BY model_version
ORDER BY last_seen DESC
"""


def model_versions(client: Any, *, hours: float = 24) -> pd.DataFrame:
    """Model versions that classified documents in the last ``hours``, newest first."""
    return _df(client, MODEL_VERSIONS_SQL, {"start": _epoch(None) - round(hours * 3600)})


FRESHNESS_SQL = """
SELECT
    count() AS stored_rows,
    uniqExactIf(id, classified_at >= toDateTime({since:UInt32}, 'UTC')) AS docs_last_hour,
    max(classified_at) AS last_classified_at,
    max(published_at) AS last_published_at
FROM documents
WHERE classified_at >= toDateTime({start:UInt32}, 'UTC') AND relabeled = 0
"""


def freshness(client: Any, *, hours: float = 24) -> dict[str, Any]:
    """docs_last_hour and the newest classified_at / published_at of the last ``hours`` (None when none)."""
    now = _epoch(None)
    row = _df(client, FRESHNESS_SQL, {"start": now - round(hours * 3600), "since": now - 3600}).iloc[0]
    seen = int(row["stored_rows"]) > 0  # max() over no rows is the epoch, not NULL
    return {
        "docs_last_hour": int(row["docs_last_hour"]),
        "last_classified_at": row["last_classified_at"] if seen else None,
        "last_published_at": row["last_published_at"] if seen else None,
    }
