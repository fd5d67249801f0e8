"""Overview: volume and the sentiment index over time, by topic, and the current window against its baseline."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.views.common import NO_DATA, time_range, updated_caption

WINDOWS_MIN = {15: "15 minutes", 60: "1 hour", 240: "4 hours"}
BASELINE_H = 24


def render() -> None:
    st.title("Overview")
    left, middle, right = st.columns([1, 1, 2])
    with left:
        hours, bucket = time_range()
    with middle:
        window = st.selectbox("Current window", list(WINDOWS_MIN), index=1, format_func=WINDOWS_MIN.get)
    with right:
        topics = st.multiselect("Topics", data.filter_options()["topic"], placeholder="All topics")
    st.fragment(_live, run_every=data.refresh_s())(hours, bucket, window, tuple(topics))


def _live(hours: int, bucket: int, window: int, topics: tuple[str, ...]) -> None:
    trend = data.volume_sentiment(hours, bucket, topics)
    if trend.empty:
        st.info(NO_DATA)
        return
    compare = data.window_vs_baseline(window, BASELINE_H)
    if topics:
        compare = compare[compare["topic"].isin(topics)]
    _kpis(compare, window)
    left, right = st.columns(2)
    left.altair_chart(charts.volume_by_topic(trend), width="stretch")
    right.altair_chart(charts.sentiment_index(trend), width="stretch")
    st.subheader(f"Last {WINDOWS_MIN[window]} against the {BASELINE_H} h before it")
    if compare.empty or compare["window_docs"].sum() == 0:
        st.info(f"No documents in the last {WINDOWS_MIN[window]}: the pipeline may be idle (see Pipeline health).")
    else:
        left, right = st.columns([3, 2])
        compare = compare.sort_values("window_docs", ascending=False)
        left.altair_chart(charts.window_vs_baseline(compare), width="stretch")
        right.dataframe(
            compare[["topic", "window_docs", "volume_ratio", "window_negative_share", "negative_share_change"]],
            column_config={
                "window_docs": st.column_config.NumberColumn("docs"),
                "volume_ratio": st.column_config.NumberColumn("volume vs baseline", format="%.1fx"),
                "window_negative_share": st.column_config.NumberColumn("negative", format="percent"),
                "negative_share_change": st.column_config.NumberColumn("change", format="percent"),
            },
            hide_index=True,
            width="stretch",
        )
    updated_caption(data.refresh_s())


def _kpis(compare: pd.DataFrame, window: int) -> None:
    docs = float(compare["window_docs"].sum()) if not compare.empty else 0.0
    baseline = float(compare["baseline_docs_per_window"].sum()) if not compare.empty else 0.0
    weights = compare["window_docs"].astype(float)
    base_weights = compare["baseline_docs_per_window"].astype(float)

    def weighted(column: str, w: pd.Series) -> float | None:
        values = compare[column]
        mask = values.notna() & (w > 0)
        return float((values[mask] * w[mask]).sum() / w[mask].sum()) if mask.any() else None

    index_now, index_base = weighted("window_index", weights), weighted("baseline_index", base_weights)
    neg_now = weighted("window_negative_share", weights)
    neg_base = weighted("baseline_negative_share", base_weights)
    cols = st.columns(3)
    cols[0].metric(
        f"Documents, last {WINDOWS_MIN[window]}",
        f"{docs:,.0f}",
        delta=f"{docs / baseline - 1:+.0%} vs baseline" if baseline else None,
        delta_color="off",
    )
    cols[1].metric(
        "Sentiment index",
        "-" if index_now is None else f"{index_now:+.2f}",
        delta=None if index_now is None or index_base is None else f"{index_now - index_base:+.2f} vs baseline",
    )
    cols[2].metric(
        "Negative share",
        "-" if neg_now is None else f"{neg_now:.1%}",
        delta=None if neg_now is None or neg_base is None else f"{(neg_now - neg_base) * 100:+.1f} pp vs baseline",
        delta_color="inverse",
    )
