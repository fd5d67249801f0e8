"""Why an alert fired, on the Alerts page: its numbers, its top stories and the documents behind it (the
drill-down filtered to the alert's window, scope and group). Webhooks link here: ``/alerts?alert=<id>``.

The alert is read whole from the alerts table (every column, Alert.from_row), so it shows what the webhooks sent;
a row written before the evidence columns existed (migration 0031) shows its numbers and documents without stories.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from alerts import repository
from alerts.alert import Alert
from dashboard import corrections, data
from dashboard.views.common import documents_table
from warehouse import queries

NEGATIVE_KINDS = ("negative_share", "surge", "watchlist")  # rules about negative documents: show those
STORY_COLUMNS = {
    "title": st.column_config.TextColumn("story (first report)", width="large"),
    "copies": st.column_config.NumberColumn("copies"),
    "source": st.column_config.TextColumn("source"),
    "published_at": st.column_config.DatetimeColumn("first seen (UTC)", format="MM-DD HH:mm:ss"),
    "sentiment": st.column_config.TextColumn("sentiment"),
    "sentiment_score": st.column_config.NumberColumn("score", format="%.2f"),
    # ticker-scoped alerts: the sentiment toward the alert's entity in this story (empty: document-level only)
    "entity_sentiment": st.column_config.TextColumn("toward entity"),
    "entity_relevance": st.column_config.ProgressColumn("relevance", min_value=0.0, max_value=1.0, format="%.2f"),
    "url": st.column_config.LinkColumn("link"),
}


@st.cache_data(ttl=5, show_spinner=False)
def load_alert(alert_id: str) -> Alert | None:
    """The latest version of one alert, or None (the alert SQL lives in alerts/repository.py)."""
    return repository.alert(data.client(), alert_id)


def drilldown_filters(alert: Alert) -> dict[str, tuple[str, ...]]:
    """The drill-down's filters for an alert: its rule's scope, narrowed to its group (a watched ticker counts as
    a ticker; a watched keyword cannot be a filter, its documents are the negative ones of the scope)."""
    filters: dict[str, set[str]] = {"topics": set(), "tickers": set(), "sources": set(), "langs": set()}
    field = {"topic": "topics", "ticker": "tickers", "source": "sources", "lang": "langs"}
    for key, value in alert.scope.items():
        if value and key in field:
            filters[field[key]].add(value)
    if alert.group_value:
        if alert.group_by in field:
            filters[field[alert.group_by]] = {alert.group_value}
        elif alert.group_by == "watch" and alert.group_value.startswith("ticker:"):
            filters["tickers"] = {alert.group_value.split(":", 1)[1]}
    out = {k: tuple(sorted(v)) for k, v in filters.items() if v}
    if alert.kind in NEGATIVE_KINDS:
        out["sentiments"] = ("negative",)
    return out


@st.cache_data(ttl=30, show_spinner=False)
def _documents(start: float, end: float, filters_json: str, collapse: bool) -> pd.DataFrame:
    filters = {k: tuple(v) for k, v in json.loads(filters_json).items()}
    return queries.drilldown(data.client(), start=start, end=end, collapse=collapse, limit=200, **filters)


def stories_frame(alert: Alert) -> pd.DataFrame:
    rows = [s.model_dump() for s in alert.top_stories]
    return pd.DataFrame(rows, columns=["story_id", *STORY_COLUMNS])


def render(alert_id: str) -> None:
    """The detail of one alert, in a bordered box at the top of the page, with a button that closes it."""
    with st.container(border=True, key="alert_detail"):
        alert = load_alert(alert_id)
        if alert is None:
            st.warning(f"No alert with id {alert_id!r}: it may have expired, or the link is wrong.")
            _close_button()
            return
        where = f"{alert.group_by} = {alert.group_value}" if alert.group_value else "all documents in scope"
        state = "resolved" if alert.status == "resolved" else "firing"
        st.subheader(f"Why it fired: {alert.rule_name} ({where})")
        st.caption(
            f"{alert.severity} · {state} · started {alert.started_at:%Y-%m-%d %H:%M:%S} UTC"
            + (f" · resolved {alert.resolved_at:%Y-%m-%d %H:%M:%S} UTC" if alert.resolved_at else "")
            + f" · window {alert.window_start:%H:%M}-{alert.window_end:%H:%M} UTC · alert {alert.id}"
        )
        cols = st.columns(5)
        cols[0].metric(alert.metric, f"{alert.value:.3g}")
        cols[1].metric("threshold", f"{alert.threshold:g}")
        cols[2].metric("baseline", "-" if alert.baseline is None else f"{alert.baseline:.3g}")
        cols[3].metric(f"volume ({alert.count})", alert.doc_count)
        cols[4].metric("stories", alert.story_count or len(alert.top_stories))
        st.markdown(f"**Numbers:** {alert.numbers()}")
        st.markdown(f"**Message:** {alert.message}")
        st.markdown("**Top stories**")
        if alert.top_stories:
            st.dataframe(
                stories_frame(alert),
                column_order=list(STORY_COLUMNS),
                column_config=STORY_COLUMNS,
                hide_index=True,
                width="stretch",
                key="alert_detail_stories",
            )
        else:
            st.caption("This alert carries no stories (it was stored before alerts named their stories).")
        filters = drilldown_filters(alert)
        described = "; ".join(f"{k} {', '.join(v)}" for k, v in filters.items()) or "no filter"
        left, right = st.columns([3, 1])
        left.markdown(f"**Documents behind it** (published in the window; {described})")
        collapse = right.toggle("One row per story", value=False, key="alert_detail_collapse")
        docs = _documents(alert.window_start.timestamp(), alert.window_end.timestamp(), json.dumps(filters), collapse)
        if docs.empty:
            st.info(
                "No document of the window matches the alert's filter now: the retention may have removed them, "
                "or analysts' corrections moved them out of it."
            )
        else:
            documents_table(corrections.mark(docs), key="alert_detail_docs", height=320)
        # Also when empty: a correction that moved the last document out of the filter still shows its confirmation.
        corrections.render_panel(docs, key="alert_detail")
        _close_button()


def _close_button() -> None:
    if st.button("Close the alert's detail", key="alert_detail_close"):
        st.query_params.pop("alert", None)
        st.rerun()
