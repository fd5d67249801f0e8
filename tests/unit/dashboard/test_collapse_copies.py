"""The Live feed and the Topics drill-downs collapse copies of a story by default; the toggle shows every copy
(Streamlit's AppTest, data layer stubbed and recording what the pages asked for)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import data

NOW = pd.Timestamp("2031-03-04 10:05", tz="UTC")
DOCS = pd.DataFrame(
    {
        "id": ["a1", "b1"],
        "published_at": [NOW, NOW],
        "title": ["Wire: ACME recalls cars", "ACME CFO resigns"],
        "sentiment": ["negative", "negative"],
        "topic": ["markets", "markets"],
        "tickers": [["ACME"], ["ACME"]],
    }
)
STORIES = DOCS.assign(copies=[20, 1], latest_published_at=[NOW, NOW], latest_classified_at=[NOW, NOW])
CALLS: list[tuple[str, bool]] = []


@pytest.fixture(autouse=True)
def stub_data(monkeypatch: pytest.MonkeyPatch) -> None:
    CALLS.clear()

    def latest_documents(*args: Any) -> pd.DataFrame:
        collapse = args[-1]
        CALLS.append(("feed", collapse))
        return STORIES if collapse else DOCS

    def drilldown(*args: Any, collapse: bool = False, **kw: Any) -> pd.DataFrame:
        CALLS.append(("drilldown", collapse))
        return STORIES if collapse else DOCS

    heat = pd.DataFrame(
        {"bucket": [NOW], "topic": ["markets"], "docs": [21], "negative": [21], "negative_share": [1.0]}
    )
    shift = pd.DataFrame(
        {
            "ticker": ["ACME"],
            "window_docs": [21],
            "baseline_docs_per_window": [2.0],
            "volume_ratio": [10.5],
            "window_negative_share": [1.0],
            "baseline_negative_share": [0.2],
            "negative_share_change": [0.8],
            "window_index": [-1.0],
            "baseline_index": [0.0],
        }
    )
    monkeypatch.setattr(data, "latest_documents", latest_documents)
    monkeypatch.setattr(data, "drilldown", drilldown)
    monkeypatch.setattr(data, "topic_heatmap", lambda *a, **k: heat)
    monkeypatch.setattr(data, "ticker_shift", lambda *a, **k: shift)
    monkeypatch.setattr(data, "filter_options", lambda: {"topic": [], "source": [], "ticker": [], "lang": []})


def _app(module: str) -> AppTest:
    app = AppTest.from_string(f"import importlib\nimportlib.import_module({module!r}).render()", default_timeout=20)
    app.run()
    assert not app.exception, app.exception
    return app


def test_feed_collapses_copies_until_the_toggle_is_off() -> None:
    app = _app("dashboard.views.feed")
    assert app.toggle(key="feed_collapse").value is True
    assert CALLS == [("feed", True)]
    text = " ".join(m.value for m in app.markdown)
    assert "2 newest stories" in text and "21 documents" in text

    CALLS.clear()
    app.toggle(key="feed_collapse").set_value(False).run()
    assert not app.exception, app.exception
    assert CALLS == [("feed", False)]
    assert "2 newest items" in " ".join(m.value for m in app.markdown)


def test_topic_drilldowns_collapse_copies_until_the_toggle_is_off() -> None:
    app = _app("dashboard.views.topics")
    assert app.toggle(key="topics_collapse").value is True
    assert CALLS == [("drilldown", True), ("drilldown", True)]  # the cell's documents and the ticker's
    CALLS.clear()
    app.toggle(key="topics_collapse").set_value(False).run()
    assert not app.exception, app.exception
    assert CALLS == [("drilldown", False), ("drilldown", False)]
