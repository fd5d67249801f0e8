"""Topics and tickers: a topic-by-time heatmap, tickers ranked by the change of their negative share (by the
sentiment toward each ticker where the entity model scored it, with the basis shown), and the documents behind any
cell or bar (click it; the hottest cell is shown until you do), with copies of one story
collapsed into one row unless the analyst asks for every copy."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.views.common import COLLAPSE_HELP, NO_DATA, documents_table, time_range, to_utc, updated_caption

WINDOWS_MIN = {15: "15 minutes", 60: "1 hour", 240: "4 hours"}
# The ranking as a table: which sentiment each ticker was counted by (entity-level where the entity model scored the
# document, document-level otherwise).
RANKING_COLUMNS = ["ticker", "window_docs", "window_negative_share", "negative_share_change", "basis"]
RANKING_CONFIG = {
    "window_docs": st.column_config.NumberColumn("docs", format="%d"),
    "window_negative_share": st.column_config.NumberColumn("negative now", format="percent"),
    "negative_share_change": st.column_config.NumberColumn("change", format="percent"),
    "basis": st.column_config.TextColumn(
        "basis",
        help="entity: every document counted by its sentiment toward the ticker; document: by the document's "
        "own label (no entity row); mixed: some of each",
    ),
}


def render() -> None:
    st.title("Topics and tickers")
    left, middle, right = st.columns(3)
    with left:
        hours, bucket = time_range(key="topics_hours")
    with middle:
        metric = st.radio(
            "Colour cells by", ["negative_share", "docs"], horizontal=True, format_func=_metric_label, key="heat_metric"
        )
    with right:
        window = st.selectbox("Ticker window", list(WINDOWS_MIN), index=1, format_func=WINDOWS_MIN.get)
    collapse = st.toggle("Collapse copies", value=True, key="topics_collapse", help=COLLAPSE_HELP)
    bucket = max(bucket, 30) if hours >= 24 else bucket  # wide cells keep a day's heatmap readable
    st.fragment(_live, run_every=data.refresh_s())(hours, bucket, metric, window, collapse)


def _metric_label(metric: str) -> str:
    return "negative share" if metric == "negative_share" else "volume"


def _live(hours: int, bucket: int, metric: str, window: int, collapse: bool = True) -> None:
    heat = data.topic_heatmap(hours, bucket)
    if heat.empty:
        st.info(NO_DATA)
        return
    event = st.altair_chart(
        charts.topic_heatmap(heat, bucket, metric),
        on_select="rerun",
        selection_mode="cell",
        key="heatmap",
        width="stretch",
    )
    topic, start = _picked_cell(event, heat)
    end = start + timedelta(minutes=bucket)
    st.subheader(f"Behind the cell: {topic}, {start:%m-%d %H:%M}-{end:%H:%M} UTC")
    docs = data.drilldown(start.timestamp(), end.timestamp(), topics=(topic,), collapse=collapse)
    documents_table(docs, key="heat_docs", height=260)

    st.subheader(f"Tickers: negative share in the last {WINDOWS_MIN[window]} vs the 24 h before")
    shift = data.ticker_shift(window, 24, 3)
    if shift.empty:
        st.info(
            f"No ticker has 3 or more labelled documents in the last {WINDOWS_MIN[window]}: "
            "pick a longer ticker window, or check that ingest finds tickers (Pipeline health)."
        )
    else:
        left, right = st.columns([3, 2])
        with left:
            picked = st.altair_chart(
                charts.ticker_shift(shift), on_select="rerun", selection_mode="ticker", key="tickers", width="stretch"
            )
            st.dataframe(
                shift[[c for c in RANKING_COLUMNS if c in shift.columns]],
                column_config=RANKING_CONFIG,
                hide_index=True,
                width="stretch",
                key="ticker_ranking",
            )
        ticker = _picked_ticker(picked) or str(shift["ticker"].iloc[0])
        with right:
            st.markdown(f"**{ticker}**, last {WINDOWS_MIN[window]}")
            now = pd.Timestamp.now(tz="UTC")
            items = data.drilldown(
                (now - timedelta(minutes=window)).timestamp(),
                now.timestamp() + 60,
                tickers=(ticker,),
                collapse=collapse,
            )
            if not items.empty:
                st.altair_chart(charts.sentiment_mix(items), width="stretch")
        documents_table(items, key="ticker_docs", height=260)
    updated_caption(data.refresh_s())


def _picked_cell(event: object, heat: pd.DataFrame) -> tuple[str, pd.Timestamp]:
    """The clicked cell, else the one with the most negative documents (most recent on ties)."""
    points = _selection(event, "cell")
    if points and "topic" in points[0] and "bucket" in points[0]:
        return str(points[0]["topic"]), to_utc(points[0]["bucket"])
    hottest = heat.sort_values(["negative", "bucket"], ascending=False).iloc[0]
    return str(hottest["topic"]), to_utc(hottest["bucket"])


def _picked_ticker(event: object) -> str | None:
    points = _selection(event, "ticker")
    return str(points[0]["ticker"]) if points and "ticker" in points[0] else None


def _selection(event: object, name: str) -> list[dict]:
    try:
        return list(event["selection"][name])  # type: ignore[index]
    except (KeyError, TypeError):
        return []
