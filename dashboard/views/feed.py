"""Live feed: the newest classified items, filtered by topic, sentiment, ticker, source, language, confidence;
copies of one story (syndicated, near-duplicates) collapse into one row unless the analyst asks for every copy."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, corrections, data
from dashboard.views.common import COLLAPSE_HELP, RANGES_H, documents_table, updated_caption

SENTIMENTS = ["negative", "neutral", "positive"]
_SHOWN = "feed_shown"  # session state: the documents the table shows, for the correction panel


def render() -> None:
    st.title("Live feed")
    options = data.filter_options()
    row1 = st.columns(3)
    topics = row1[0].multiselect("Topic", options["topic"], placeholder="All topics")
    sentiments = row1[1].multiselect("Sentiment", SENTIMENTS, placeholder="All sentiments")
    tickers = row1[2].multiselect("Ticker", options["ticker"], placeholder="All tickers")
    row2 = st.columns([2, 2, 2, 1, 1])
    sources = row2[0].multiselect("Source", options["source"], placeholder="All sources")
    langs = row2[1].multiselect("Language", options["lang"], placeholder="All languages")
    min_confidence = row2[2].slider("Minimum confidence", 0.0, 1.0, 0.0, 0.05)
    limit = row2[3].selectbox("Items", [50, 100, 250, 500], index=1)
    collapse = row2[4].toggle("Collapse copies", value=True, key="feed_collapse", help=COLLAPSE_HELP)
    filters = (tuple(topics), tuple(sentiments), tuple(sources), tuple(langs), tuple(tickers), min_confidence, limit)
    st.fragment(_live, run_every=data.refresh_s())(filters, collapse)
    # Outside the live fragment: its choices stay put while the table refreshes (the last full run's documents).
    corrections.render_panel(st.session_state.get(_SHOWN, pd.DataFrame()), key="feed")


def _live(filters: tuple, collapse: bool = True) -> None:
    hours = max(RANGES_H)
    items = data.latest_documents(hours, *filters, collapse)
    st.session_state[_SHOWN] = items
    if items.empty:
        st.info(
            "No classified items match these filters in the last 7 days. Clear a filter or lower the minimum "
            "confidence; if the feed stays empty, start the pipeline with `finpulse up`."
        )
        return
    left, right = st.columns([3, 1])
    if collapse:
        copies = int(items["copies"].sum())
        left.markdown(
            f"**{len(items)} newest stories** ({copies} documents; by the classification time of their latest copy). "
            "Each row is a story's first report; *copies* counts its documents."
        )
    else:
        left.markdown(f"**{len(items)} newest items** (by classification time)")
    with right:
        st.altair_chart(charts.sentiment_mix(items), width="stretch")
    documents_table(corrections.mark(items), key="feed_table", height=560)
    updated_caption(data.refresh_s())
