"""Page helpers that interpret chart selections (what a click on the heatmap or a ticker bar drills into)."""

from __future__ import annotations

import pandas as pd

from dashboard.views import topics
from dashboard.views.common import to_utc

HEAT = pd.DataFrame(
    {
        "bucket": pd.to_datetime(["2026-11-22 10:00", "2026-11-22 10:30", "2026-11-22 10:30"]),
        "topic": ["macro", "macro", "regulation"],
        "negative": [5, 1, 5],
    }
)


def test_a_clicked_cell_wins_over_the_hottest() -> None:
    stamp = pd.Timestamp("2026-11-22 10:00", tz="UTC")
    clicked = {"selection": {"cell": [{"bucket": stamp.value // 1_000_000, "topic": "macro"}]}}
    assert topics._picked_cell(clicked, HEAT) == ("macro", stamp)
    as_text = {"selection": {"cell": [{"bucket": "2026-11-22T10:00:00", "topic": "macro"}]}}
    assert topics._picked_cell(as_text, HEAT) == ("macro", stamp)


def test_without_a_click_the_most_negative_and_most_recent_cell_is_shown() -> None:
    for event in (None, {}, {"selection": {}}, {"selection": {"cell": []}}):
        assert topics._picked_cell(event, HEAT) == ("regulation", pd.Timestamp("2026-11-22 10:30", tz="UTC"))


def test_picked_ticker_and_time_conversion() -> None:
    assert topics._picked_ticker({"selection": {"ticker": [{"ticker": "TSLA"}]}}) == "TSLA"
    assert topics._picked_ticker({"selection": {"ticker": []}}) is None
    assert to_utc(pd.Timestamp("2026-01-01 08:00", tz="Asia/Shanghai")) == pd.Timestamp("2026-01-01 00:00", tz="UTC")
