"""Pipeline health: throughput, latency, consumer lag, DLQ size, model versions, and the confidence
distribution over time (a drift signal: a falling median or a growing low-confidence share)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.views.common import NO_DATA, time_range, updated_caption

LOW_CONFIDENCE = 0.6


def render() -> None:
    st.title("Pipeline health")
    hours, bucket = time_range(key="health_hours", default=6)
    st.fragment(_live, run_every=data.refresh_s())(hours, bucket)


def _live(hours: int, bucket: int) -> None:
    fresh = data.freshness()
    kafka = data.kafka_health()
    models = data.model_versions(24)
    cols = st.columns([1, 1, 1, 1, 2])
    cols[0].metric("Classified, last hour", f"{fresh['docs_last_hour']:,}")
    last = fresh["last_classified_at"]
    age = (pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timestamp(last)).total_seconds() if last else None
    cols[1].metric("Newest classification", "never" if age is None else f"{_age(age)} ago")
    lag_total = int(kafka.lag["lag"].sum()) if not kafka.lag.empty else None
    cols[2].metric("Consumer lag (raw topic)", "n/a" if lag_total is None else f"{lag_total:,}")
    cols[3].metric("DLQ messages", "n/a" if kafka.dlq_messages is None else f"{kafka.dlq_messages:,}")
    cols[4].metric("Model version", str(models["model_version"].iloc[0]) if not models.empty else "none yet")
    if kafka.note:
        st.caption(f"Kafka: {kafka.note}")
    _training()

    flow = data.throughput(hours, bucket)
    if flow.empty:
        st.info(NO_DATA)
    else:
        left, right = st.columns(2)
        left.altair_chart(charts.throughput(flow), width="stretch")
        right.altair_chart(charts.latency(flow), width="stretch")

    st.subheader("Confidence over time (drift signal)")
    conf = data.confidence_over_time(max(hours, 24), max(bucket, 30), LOW_CONFIDENCE)
    if conf.empty:
        st.info("No sentiment probabilities stored in the last 24 hours: nothing to judge drift by yet.")
    else:
        left, right = st.columns([3, 2])
        left.altair_chart(charts.confidence(conf, LOW_CONFIDENCE), width="stretch")
        right.altair_chart(charts.low_confidence_share(conf, LOW_CONFIDENCE), width="stretch")

    left, right = st.columns(2)
    with left:
        st.subheader("Model versions, last 24 h")
        if models.empty:
            st.info("No documents classified in the last 24 hours.")
        else:
            st.dataframe(models, hide_index=True, width="stretch")
    with right:
        st.subheader("Consumer lag by partition")
        if kafka.lag.empty:
            st.info(kafka.note or "No lag data.")
        else:
            st.dataframe(kafka.lag, hide_index=True, width="stretch")
    metrics, note = data.stream_metrics()
    with st.expander("Stream worker metrics"):
        if note:
            st.caption(note)
        else:
            st.dataframe(metrics, hide_index=True, width="stretch")
    updated_caption(data.refresh_s())


def _training() -> None:
    """The background transformer's progress (classifier/background.py writes it; `finpulse status` shows it too)."""
    from dashboard.pipeline import trainer_progress

    progress, line = trainer_progress(data.settings())
    st.subheader("Background training")
    if progress and progress.get("state") == "training" and progress.get("total"):
        st.progress(min(1.0, progress.get("step", 0) / progress["total"]), text=line)
    else:
        st.caption(line)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
