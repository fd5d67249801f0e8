"""Small rendering helpers the pages share."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

RANGES_H = {1: "last hour", 6: "last 6 hours", 24: "last 24 hours", 72: "last 3 days", 168: "last 7 days"}
# A bucket per range that gives 40-100 points: enough shape, still readable.
BUCKETS_MIN = {1: 1, 6: 5, 24: 15, 72: 60, 168: 120}

NO_DATA = (
    "No classified documents in this time range yet. Start the pipeline with `finpulse up` (it runs the scenario "
    "generator when no sources are configured), or pick a longer time range."
)

COLLAPSE_HELP = (
    "On: one row per story (syndicated copies and near-duplicates share a story), showing its first report, the "
    "number of copies and the latest copy's time. Off: every document."
)

DOC_COLUMNS = {
    "published_at": st.column_config.DatetimeColumn("published (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "classified_at": None,
    "id": None,
    "body": None,
    "kind": None,
    "model_version": None,
    "topic_score": st.column_config.NumberColumn("topic score", format="%.2f"),
    "sentiment_score": st.column_config.NumberColumn("score", format="%+.2f", help="P(positive) - P(negative)"),
    "confidence": st.column_config.ProgressColumn("confidence", min_value=0.0, max_value=1.0, format="%.2f"),
    "tickers": st.column_config.ListColumn("tickers"),
    "title": st.column_config.TextColumn("title", width="large"),
    "url": st.column_config.LinkColumn("link", display_text="open"),
    # collapsed copies (one row per story): the first report's columns plus these
    "story_id": None,
    "copies": st.column_config.NumberColumn("copies", format="%d", help="Documents of this story in the range"),
    "latest_published_at": st.column_config.DatetimeColumn("latest copy (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "latest_classified_at": None,
    "corrected": st.column_config.TextColumn("corrected", width="medium", help="Labels an analyst corrected, and who"),
    # a drill-down on a ticker: the sentiment toward it (entity model) where scored
    "entity": None,
    "entity_sentiment": st.column_config.TextColumn("toward ticker", help="Sentiment toward the picked ticker"),
    "entity_score": st.column_config.NumberColumn("ticker score", format="%+.2f", help="Toward the ticker"),
    "entity_relevance": st.column_config.ProgressColumn(
        "relevance", min_value=0.0, max_value=1.0, format="%.2f", help="Is the document about the ticker?"
    ),
    "basis": st.column_config.TextColumn(
        "basis", help="entity: counted by its sentiment toward the ticker; document: by the document's own label"
    ),
}
DOC_ORDER = [
    "published_at",
    "latest_published_at",
    "title",
    "copies",
    "topic",
    "sentiment",
    "corrected",
    "sentiment_score",
    "entity_sentiment",
    "entity_score",
    "entity_relevance",
    "basis",
    "confidence",
    "tickers",
    "source",
    "lang",
    "topic_score",
    "url",
]


def time_range(label: str = "Time range", key: str = "hours", default: int = 24) -> tuple[int, int]:
    """A time-range picker; returns (hours, bucket minutes)."""
    hours = st.selectbox(label, list(RANGES_H), index=list(RANGES_H).index(default), format_func=RANGES_H.get, key=key)
    return hours, BUCKETS_MIN[hours]


def updated_caption(refresh_s: float) -> None:
    st.caption(f"Updated {datetime.now(UTC):%H:%M:%S} UTC · refreshes every {refresh_s:g} s")


def documents_table(df: pd.DataFrame, *, key: str, height: int | None = None) -> None:
    """Documents as a table with readable columns (newest first, confidence as a bar, links clickable)."""
    columns = [c for c in DOC_ORDER if c in df.columns]
    st.dataframe(
        df,
        column_order=columns,
        column_config=DOC_COLUMNS,
        hide_index=True,
        width="stretch",
        height=height or "auto",
        key=key,
    )


def to_utc(value: object) -> pd.Timestamp:
    """A temporal value from a chart selection (epoch milliseconds or text) as a UTC timestamp."""
    if isinstance(value, int | float):
        return pd.Timestamp(value, unit="ms", tz="UTC")
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
