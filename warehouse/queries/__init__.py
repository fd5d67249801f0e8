"""Queries the dashboard and the alert engine share: constant SQL with server-side parameters, dedup-safe counts."""

from warehouse.queries.trends import (
    Window,
    confidence_over_time,
    drilldown,
    filter_options,
    freshness,
    latest_documents,
    model_versions,
    throughput,
    ticker_shift,
    topic_heatmap,
    volume_sentiment,
    window_vs_baseline,
)

__all__ = [
    "Window",
    "confidence_over_time",
    "drilldown",
    "filter_options",
    "freshness",
    "latest_documents",
    "model_versions",
    "throughput",
    "ticker_shift",
    "topic_heatmap",
    "volume_sentiment",
    "window_vs_baseline",
]
