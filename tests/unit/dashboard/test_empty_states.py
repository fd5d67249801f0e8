"""Every page on an empty store renders and says what to do next (Streamlit's AppTest, data layer stubbed)."""

from __future__ import annotations

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import data, pipeline
from dashboard.explorer import ExplorerResult

EMPTY = pd.DataFrame()


@pytest.fixture(autouse=True)
def empty_store(monkeypatch: pytest.MonkeyPatch) -> None:
    nothing = {"topic": [], "source": [], "ticker": [], "lang": []}
    for name in (
        "volume_sentiment",
        "window_vs_baseline",
        "topic_heatmap",
        "ticker_shift",
        "drilldown",
        "latest_documents",
        "throughput",
        "confidence_over_time",
        "model_versions",
        "list_alerts",
        "list_deliveries",
        "list_silences",
    ):
        monkeypatch.setattr(data, name, lambda *a, **k: EMPTY)
    monkeypatch.setattr(data, "filter_options", lambda: nothing)
    monkeypatch.setattr(data, "list_rules", lambda: [])
    monkeypatch.setattr(data, "list_targets", lambda: [])
    monkeypatch.setattr(data, "freshness", lambda: {"docs_last_hour": 0, "last_classified_at": None})
    monkeypatch.setattr(data, "kafka_health", lambda: pipeline.KafkaHealth(note="Kafka at x is not reachable"))
    monkeypatch.setattr(data, "stream_metrics", lambda: (EMPTY, "not reachable"))
    monkeypatch.setattr(data, "run_sql", lambda sql, limit: ExplorerResult(error="Refused by the database"))


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("dashboard.views.overview", "finpulse up"),
        ("dashboard.views.topics", "finpulse up"),
        ("dashboard.views.feed", "Clear a filter"),
        ("dashboard.views.health", "No sentiment probabilities"),
        ("dashboard.views.alerts", "No alerts yet"),
        ("dashboard.views.sql_explorer", "press Run"),
    ],
)
def test_empty_pages_say_what_to_do(module: str, expected: str) -> None:
    app = AppTest.from_string(f"import importlib\nimportlib.import_module({module!r}).render()", default_timeout=20)
    app.run()
    assert not app.exception, app.exception
    messages = [m.value for m in (*app.info, *app.success, *app.caption)]
    assert any(expected in m for m in messages), messages
