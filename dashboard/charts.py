"""Altair charts of the dashboard: pure functions from a query's DataFrame to a chart, readable at a glance.

Sentiment colours are fixed across every chart (red negative, grey neutral, green positive) and the sentiment
index always uses a diverging scale centred on zero, so a reader never has to re-learn a legend.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

SENTIMENT_COLORS = alt.Scale(domain=["negative", "neutral", "positive"], range=["#d62728", "#9e9e9e", "#2ca02c"])
TIME = alt.X("bucket:T", title=None, axis=alt.Axis(format="%H:%M", labelOverlap=True))
HEIGHT = 260


def volume_by_topic(df: pd.DataFrame) -> alt.Chart:
    """Stacked area: documents per bucket, by topic (bars while there are too few buckets to draw an area)."""
    few = df["bucket"].nunique() < 4 if "bucket" in df else True
    chart = alt.Chart(df, height=HEIGHT, title="Volume by topic")
    return (chart.mark_bar(opacity=0.85) if few else chart.mark_area(opacity=0.85)).encode(
        x=TIME,
        y=alt.Y("sum(docs):Q", title="documents", stack="zero"),
        color=alt.Color("topic:N", title="topic"),
        tooltip=[alt.Tooltip("bucket:T", format="%Y-%m-%d %H:%M"), "topic:N", alt.Tooltip("sum(docs):Q")],
    )


def sentiment_index(df: pd.DataFrame) -> alt.LayerChart:
    """The sentiment index over time, overall (thick) and per topic (thin), with a zero rule."""
    overall = (
        df.groupby("bucket", as_index=False)[["docs", "negative", "positive"]]
        .sum()
        .assign(sentiment_index=lambda d: (d["positive"].astype(float) - d["negative"]) / d["docs"].clip(lower=1))
    )
    scale = alt.Scale(domain=[-1, 1])
    per_topic = (
        alt.Chart(df)
        .mark_line(strokeWidth=1, opacity=0.45)
        .encode(
            x=TIME,
            y=alt.Y("sentiment_index:Q", title="sentiment index (pos - neg) / docs", scale=scale),
            color=alt.Color("topic:N", title="topic"),
            tooltip=["topic:N", alt.Tooltip("sentiment_index:Q", format="+.2f"), "docs:Q"],
        )
    )
    total = (
        alt.Chart(overall)
        .mark_line(strokeWidth=3, color="#1f3b73", point=True)
        .encode(
            x=TIME, y=alt.Y("sentiment_index:Q", scale=scale), tooltip=[alt.Tooltip("sentiment_index:Q", format="+.2f")]
        )
    )
    zero = alt.Chart(pd.DataFrame({"y": [0]})).mark_rule(strokeDash=[4, 4], color="#555").encode(y="y:Q")
    return alt.layer(per_topic, total, zero, height=HEIGHT, title="Sentiment index (all topics in bold)")


def window_vs_baseline(df: pd.DataFrame) -> alt.LayerChart:
    """Per topic: negative share now (bar) against its baseline (tick)."""
    base = alt.Chart(df, height=alt.Step(26)).encode(y=alt.Y("topic:N", title=None, sort="-x"))
    bars = base.mark_bar(color="#d62728", opacity=0.8).encode(
        x=alt.X("window_negative_share:Q", title="negative share", axis=alt.Axis(format="%")),
        tooltip=[
            "topic:N",
            alt.Tooltip("window_docs:Q", title="docs in window"),
            alt.Tooltip("window_negative_share:Q", format=".1%", title="negative now"),
            alt.Tooltip("baseline_negative_share:Q", format=".1%", title="negative baseline"),
        ],
    )
    ticks = base.mark_tick(color="black", thickness=3, size=18).encode(x="baseline_negative_share:Q")
    return alt.layer(bars, ticks, title="Negative share: current window (bar) vs baseline (tick)")


def topic_heatmap(df: pd.DataFrame, bucket_minutes: int, metric: str = "negative_share") -> alt.Chart:
    """Topic-by-time cells coloured by negative share or volume; a click selects a cell for drill-down."""
    df = df.assign(bucket_end=df["bucket"] + pd.Timedelta(minutes=bucket_minutes))
    pick = alt.selection_point(name="cell", fields=["bucket", "topic"], on="click")
    color = (
        alt.Color("negative_share:Q", title="negative share", scale=alt.Scale(scheme="reds", domain=[0, 1]))
        if metric == "negative_share"
        else alt.Color("docs:Q", title="documents", scale=alt.Scale(scheme="blues"))
    )
    return (
        alt.Chart(df, height=alt.Step(34), title="Topics over time (click a cell)")
        .mark_rect(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("bucket:T", title=None, axis=alt.Axis(format="%H:%M", labelOverlap=True)),
            x2="bucket_end:T",
            y=alt.Y("topic:N", title=None),
            color=color,
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.45)),
            tooltip=[
                alt.Tooltip("bucket:T", format="%Y-%m-%d %H:%M"),
                "topic:N",
                "docs:Q",
                alt.Tooltip("negative_share:Q", format=".1%"),
            ],
        )
        .add_params(pick)
    )


def ticker_shift(df: pd.DataFrame) -> alt.Chart:
    """Tickers ranked by the change of their negative share (percentage points), red when it rose."""
    pick = alt.selection_point(name="ticker", fields=["ticker"], on="click")
    data = df.assign(change=df["negative_share_change"].fillna(df["window_negative_share"]))
    return (
        alt.Chart(data, height=alt.Step(24), title="Change in negative share vs baseline (click a bar)")
        .mark_bar()
        .encode(
            x=alt.X("change:Q", title="change in negative share", axis=alt.Axis(format="+%")),
            y=alt.Y("ticker:N", title=None, sort="-x"),
            color=alt.condition("datum.change > 0", alt.value("#d62728"), alt.value("#2ca02c")),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.5)),
            tooltip=[
                "ticker:N",
                alt.Tooltip("window_docs:Q", title="docs in window"),
                alt.Tooltip("window_negative_share:Q", format=".1%", title="negative now"),
                alt.Tooltip("baseline_negative_share:Q", format=".1%", title="negative baseline"),
                *([alt.Tooltip("basis:N", title="sentiment basis")] if "basis" in data.columns else []),
            ],
        )
        .add_params(pick)
    )


def throughput(df: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df, height=220, title="Classified documents per second")
        .mark_area(line=True, opacity=0.4)
        .encode(x=TIME, y=alt.Y("docs_per_s:Q", title="docs/s"), tooltip=["bucket:T", "docs:Q", "docs_per_s:Q"])
    )


def latency(df: pd.DataFrame) -> alt.Chart:
    long = df.melt(id_vars=["bucket"], value_vars=["latency_p50_s", "latency_p95_s"], var_name="q", value_name="s")
    long["q"] = long["q"].map({"latency_p50_s": "p50", "latency_p95_s": "p95"})
    return (
        alt.Chart(long, height=220, title="Ingest-to-classified latency")
        .mark_line(point=True)
        .encode(x=TIME, y=alt.Y("s:Q", title="seconds"), color=alt.Color("q:N", title=None), tooltip=["q:N", "s:Q"])
    )


def confidence(df: pd.DataFrame, low: float) -> alt.LayerChart:
    """Sentiment confidence over time: the p10-p90 band, the median, and the low-confidence threshold."""
    base = alt.Chart(df).encode(x=TIME)
    band = base.mark_area(opacity=0.25, color="#1f77b4").encode(
        y=alt.Y("p10:Q", title="sentiment confidence", scale=alt.Scale(domain=[0, 1])), y2="p90:Q"
    )
    median = base.mark_line(color="#1f77b4", strokeWidth=2, point=True).encode(
        y="p50:Q",
        tooltip=[
            alt.Tooltip("bucket:T", format="%Y-%m-%d %H:%M"),
            "docs:Q",
            alt.Tooltip("p10:Q", format=".2f"),
            alt.Tooltip("p50:Q", format=".2f"),
            alt.Tooltip("p90:Q", format=".2f"),
            alt.Tooltip("low_share:Q", format=".1%", title=f"share < {low:g}"),
        ],
    )
    threshold = alt.Chart(pd.DataFrame({"y": [low]})).mark_rule(color="#d62728", strokeDash=[4, 4]).encode(y="y:Q")
    return alt.layer(band, median, threshold, height=240, title="Confidence distribution (p10-p90 band, median)")


def low_confidence_share(df: pd.DataFrame, low: float) -> alt.Chart:
    return (
        alt.Chart(df, height=160, title=f"Share of documents with confidence < {low:g}")
        .mark_bar(color="#ff7f0e")
        .encode(
            x=TIME,
            y=alt.Y("low_share:Q", title=None, axis=alt.Axis(format="%")),
            tooltip=[alt.Tooltip("low_share:Q", format=".1%")],
        )
    )


def sentiment_mix(df: pd.DataFrame) -> alt.Chart:
    """Documents by sentiment (a small bar), for a feed or drill-down selection."""
    counts = df["sentiment"].fillna("unlabelled").value_counts().rename_axis("sentiment").reset_index(name="docs")
    return (
        alt.Chart(counts, height=alt.Step(22), title="Sentiment of these items")
        .mark_bar()
        .encode(
            x=alt.X("docs:Q", title="documents"),
            y=alt.Y("sentiment:N", title=None, sort=["negative", "neutral", "positive"]),
            color=alt.Color("sentiment:N", scale=SENTIMENT_COLORS, legend=None),
        )
    )
