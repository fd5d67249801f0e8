"""The shared queries: constant SQL whose every server-side parameter is supplied, and user text never in SQL."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest

from warehouse import queries
from warehouse.queries import trends

PARAM = re.compile(r"\{(\w+):([^}]+)\}")


class Recorder:
    """Stands in for a clickhouse-connect client: records the SQL and parameters, returns a given frame."""

    def __init__(self, frame: pd.DataFrame | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.frame = frame if frame is not None else pd.DataFrame()

    def query_df(self, sql: str, parameters: dict[str, Any]) -> pd.DataFrame:
        self.calls.append((sql, parameters))
        return self.frame


HOSTILE = "x'); DROP TABLE documents; --"
CALLS = [
    lambda c: queries.volume_sentiment(c, topics=[HOSTILE]),
    lambda c: queries.window_vs_baseline(c),
    lambda c: queries.topic_heatmap(c),
    lambda c: queries.ticker_shift(c),
    lambda c: queries.drilldown(c, start=0, end=60, topics=[HOSTILE], tickers=[HOSTILE], sources=[HOSTILE]),
    lambda c: queries.latest_documents(c, langs=[HOSTILE], sentiments=[HOSTILE], min_confidence=0.5),
    lambda c: queries.filter_options(c),
    lambda c: queries.throughput(c),
    lambda c: queries.confidence_over_time(c),
    lambda c: queries.model_versions(c),
]


@pytest.mark.parametrize("call", CALLS)
def test_every_parameter_is_bound_and_no_user_text_reaches_sql(call: Any) -> None:
    client = Recorder()
    call(client)
    (sql, params), *_ = client.calls
    used = {name for name, _ in PARAM.findall(sql)}
    assert used, "a query without parameters"
    assert used <= set(params), f"unbound: {used - set(params)}"
    assert HOSTILE not in sql
    assert "{{" not in sql and "}}" not in sql  # f-string escapes all resolved


def test_filters_upper_case_tickers_and_windows_are_epoch_seconds() -> None:
    client = Recorder()
    queries.drilldown(client, start=1_700_000_000.9, end=1_700_000_060, tickers=["tsla"])
    _, params = client.calls[0]
    assert params["tickers"] == ["TSLA"] and params["start"] == 1_700_000_000 and params["end"] == 1_700_000_060
    window = trends.Window.last(60, end=1_700_003_600)
    assert window.params() == {"start": 1_700_000_000, "end": 1_700_003_600}
    assert trends.Window.last(1).end % 60 == 0  # the next whole minute: the current minute's rollup rows count


def test_compare_shares_ratios_and_no_unsigned_wraparound() -> None:
    raw = pd.DataFrame(
        {
            "ticker": ["AAA", "BBB"],
            "window_docs": pd.array([10, 4], dtype="uint64"),
            "window_negative": pd.array([8, 0], dtype="uint64"),
            "window_positive": pd.array([1, 4], dtype="uint64"),
            "baseline_docs": pd.array([240, 0], dtype="uint64"),
            "baseline_negative": pd.array([24, 0], dtype="uint64"),
            "baseline_positive": pd.array([120, 0], dtype="uint64"),
        }
    )
    out = trends._compare(raw, scale=1 / 24, key="ticker").set_index("ticker")
    assert out.loc["AAA", "baseline_docs_per_window"] == pytest.approx(10)
    assert out.loc["AAA", "volume_ratio"] == pytest.approx(1.0)
    assert out.loc["AAA", "window_negative_share"] == pytest.approx(0.8)
    assert out.loc["AAA", "negative_share_change"] == pytest.approx(0.7)
    assert out.loc["AAA", "window_index"] == pytest.approx(-0.7)  # (1 - 8) / 10, not a wrapped uint64
    assert pd.isna(out.loc["BBB", "baseline_negative_share"]) and pd.isna(out.loc["BBB", "volume_ratio"])


def test_ticker_shift_ranks_by_rise_then_by_share_without_baseline() -> None:
    raw = pd.DataFrame(
        {
            "ticker": ["FLAT", "NEW", "UP"],
            "window_docs": [10, 5, 10],
            "window_negative": [2, 3, 9],
            "window_positive": [2, 0, 0],
            "baseline_docs": [100, 0, 100],
            "baseline_negative": [20, 0, 10],
            "baseline_positive": [20, 0, 10],
            "window_entity": [10, 0, 4],  # documents counted by their sentiment toward the ticker
        }
    )
    ranked = queries.ticker_shift(Recorder(raw), limit=2)
    assert list(ranked["ticker"]) == ["UP", "NEW"]  # +0.8, then 0.6 (no baseline), FLAT (0.0) cut by the limit
    assert list(ranked["basis"]) == ["mixed", "document"] and list(ranked["entity_docs"]) == [4, 0]
    assert queries.ticker_shift(Recorder(raw), limit=3)["basis"].iloc[2] == "entity"
    assert queries.ticker_shift(Recorder()).empty


def test_filter_options_orders_by_frequency_and_freshness_handles_no_rows() -> None:
    frame = pd.DataFrame(
        {
            "field": ["topic", "topic", "ticker", "lang"],
            "value": ["macro", "earnings", "TSLA", "en"],
            "docs": [3, 9, 4, 7],
        }
    )
    options = queries.filter_options(Recorder(frame))
    assert options == {"topic": ["earnings", "macro"], "source": [], "ticker": ["TSLA"], "lang": ["en"]}
    empty = pd.DataFrame(
        {
            "stored_rows": [0],
            "docs_last_hour": [0],
            "last_classified_at": [pd.Timestamp(0)],
            "last_published_at": [pd.Timestamp(0)],
        }
    )
    assert queries.freshness(Recorder(empty)) == {
        "docs_last_hour": 0,
        "last_classified_at": None,
        "last_published_at": None,
    }
