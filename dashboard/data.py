"""The dashboard's one data module: every query goes through here, cached.

The ClickHouse clients are process-wide resources (``st.cache_resource``); query results are cached for at most
the refresh interval (``st.cache_data(ttl=...)``), so several viewers of one page cost one query per interval.
The SQL lives in ``warehouse.queries`` (shared with the alert engine), always with server-side parameters.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import explorer, pipeline
from finpulse.settings import Settings, load_settings
from warehouse import queries


@st.cache_resource
def settings() -> Settings:
    """Built once per dashboard process from the environment (FINPULSE_*), like every other service."""
    return load_settings()


_TTL = max(1.0, settings().dashboard_refresh_s - 0.5)  # fresh by the time a live panel reruns


@st.cache_resource
def client() -> Any:
    from warehouse.client import create_client

    # No session id: one client serves every Streamlit session's thread, and a session would serialise them.
    return create_client(settings(), autogenerate_session_id=False)


@st.cache_resource
def analyst_client() -> Any:
    return explorer.readonly_client(settings(), settings().dashboard_sql_timeout_s)


def refresh_s() -> float:
    return settings().dashboard_refresh_s


@st.cache_data(ttl=_TTL, show_spinner=False)
def volume_sentiment(hours: float, bucket_minutes: int, topics: tuple[str, ...]) -> pd.DataFrame:
    return queries.volume_sentiment(client(), hours=hours, bucket_minutes=bucket_minutes, topics=topics)


@st.cache_data(ttl=_TTL, show_spinner=False)
def window_vs_baseline(window_minutes: int, baseline_hours: float) -> pd.DataFrame:
    return queries.window_vs_baseline(client(), window_minutes=window_minutes, baseline_hours=baseline_hours)


@st.cache_data(ttl=_TTL, show_spinner=False)
def topic_heatmap(hours: float, bucket_minutes: int) -> pd.DataFrame:
    return queries.topic_heatmap(client(), hours=hours, bucket_minutes=bucket_minutes)


@st.cache_data(ttl=_TTL, show_spinner=False)
def ticker_shift(window_minutes: int, baseline_hours: float, min_docs: int) -> pd.DataFrame:
    return queries.ticker_shift(
        client(), window_minutes=window_minutes, baseline_hours=baseline_hours, min_docs=min_docs
    )


@st.cache_data(ttl=_TTL, show_spinner=False)
def drilldown(
    start: float, end: float, topics: tuple[str, ...] = (), tickers: tuple[str, ...] = (), collapse: bool = False
) -> pd.DataFrame:
    return queries.drilldown(client(), start=start, end=end, topics=topics, tickers=tickers, collapse=collapse)


@st.cache_data(ttl=_TTL, show_spinner=False)
def latest_documents(
    hours: float,
    topics: tuple[str, ...],
    sentiments: tuple[str, ...],
    sources: tuple[str, ...],
    langs: tuple[str, ...],
    tickers: tuple[str, ...],
    min_confidence: float,
    limit: int,
    collapse: bool = False,
) -> pd.DataFrame:
    return queries.latest_documents(
        client(),
        hours=hours,
        topics=topics,
        sentiments=sentiments,
        sources=sources,
        langs=langs,
        tickers=tickers,
        min_confidence=min_confidence,
        limit=limit,
        collapse=collapse,
    )


@st.cache_data(ttl=60, show_spinner=False)
def filter_options() -> dict[str, list[str]]:
    return queries.filter_options(client())


@st.cache_data(ttl=_TTL, show_spinner=False)
def throughput(hours: float, bucket_minutes: int) -> pd.DataFrame:
    return queries.throughput(client(), hours=hours, bucket_minutes=bucket_minutes)


@st.cache_data(ttl=_TTL, show_spinner=False)
def confidence_over_time(hours: float, bucket_minutes: int, low: float) -> pd.DataFrame:
    return queries.confidence_over_time(client(), hours=hours, bucket_minutes=bucket_minutes, low=low)


@st.cache_data(ttl=_TTL, show_spinner=False)
def model_versions(hours: float) -> pd.DataFrame:
    return queries.model_versions(client(), hours=hours)


@st.cache_data(ttl=_TTL, show_spinner=False)
def freshness() -> dict[str, Any]:
    return queries.freshness(client())


@st.cache_data(ttl=_TTL, show_spinner=False)
def kafka_health() -> pipeline.KafkaHealth:
    return pipeline.kafka_health(settings())


@st.cache_data(ttl=_TTL, show_spinner=False)
def stream_metrics() -> tuple[pd.DataFrame, str]:
    return pipeline.stream_metrics(settings())


def run_sql(sql: str, row_limit: int) -> explorer.ExplorerResult:
    """Not cached: an analyst who presses Run wants the answer now."""
    return explorer.run(analyst_client(), sql, row_limit=row_limit, timeout_s=settings().dashboard_sql_timeout_s)


# --- alerts: read through the alert part's store (its tables, its SQL), cached like every other query ------------


@st.cache_data(ttl=_TTL, show_spinner=False)
def list_alerts(state: str | None = None, limit: int = 200) -> pd.DataFrame:
    from alerts import store

    return store.list_alerts(settings(), state=state, limit=limit, client=client())


@st.cache_data(ttl=_TTL, show_spinner=False)
def list_rules() -> list[Any]:
    from alerts import store

    return store.list_rules(settings(), client=client())


@st.cache_data(ttl=_TTL, show_spinner=False)
def list_targets() -> list[Any]:
    from alerts import store

    return store.list_targets(settings(), client=client())


@st.cache_data(ttl=_TTL, show_spinner=False)
def list_deliveries(limit: int = 200) -> pd.DataFrame:
    from alerts import store

    return store.list_deliveries(settings(), limit, client=client())


@st.cache_data(ttl=_TTL, show_spinner=False)
def list_silences() -> pd.DataFrame:
    from alerts import store

    return store.list_silences(settings(), client=client())


def alerts_changed() -> None:
    """After a write (acknowledge, silence, rule or target edit), the next read must see it."""
    for cached in (list_alerts, list_rules, list_targets, list_deliveries, list_silences):
        cached.clear()
