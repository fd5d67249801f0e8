"""The rule editor's preview and the alert detail in Streamlit's AppTest: the preview replays the rule as edited
(alerts.backtest over a fake ClickHouse holding known per-minute counts) and its firing count follows the
threshold; ``?alert=<id>`` opens that alert's numbers and stories."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from alerts.rules import Rule
from dashboard import data
from dashboard.views import alert_detail

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
RULE = Rule(name="acme share", kind="negative_share", scope={"ticker": "ACME"}, window_s=300, threshold=0.5,
            min_volume=10, cooldown_s=0, count="documents")  # fmt: skip
# Two bursts of ACME documents in the last day: 9 of 12 negative (75%) three hours ago, 11 of 12 (92%) one hour ago.
BURSTS = {NOW - timedelta(hours=3): (12, 9), NOW - timedelta(hours=1): (12, 11)}


class _Result:
    def __init__(self, rows: list[Any], names: list[str] | None = None) -> None:
        self.result_rows, self.column_names = rows, names or []


class FakeClient:
    """Answers the backtest's prefetch (per-minute counts) and the alert lookup."""

    def __init__(self, alert_row: dict[str, Any] | None = None) -> None:
        self.alert_row = alert_row

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> _Result:
        p = parameters or {}
        if "FROM alerts FINAL" in sql:
            row = self.alert_row if self.alert_row and self.alert_row["id"] == p["id"] else None
            return _Result([list(row.values())] if row else [], list(row) if row else [])
        assert p["bucket"] == 60, sql
        rows = []
        for at, (total, negative) in BURSTS.items():
            epoch = int(at.timestamp())
            if p["start"] <= epoch < p["end"]:
                rows.append(("", (epoch - p["start"]) // 60, total, negative, 0, total))
        return _Result(rows)


@pytest.fixture()
def stubbed(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    client = FakeClient()
    monkeypatch.setattr(data, "client", lambda: client)
    monkeypatch.setattr(data, "list_rules", lambda: [RULE])
    monkeypatch.setattr(data, "list_targets", lambda: [])
    monkeypatch.setattr(data, "list_alerts", lambda *a, **k: pd.DataFrame())
    monkeypatch.setattr(data, "list_silences", lambda *a, **k: pd.DataFrame())
    monkeypatch.setattr(data, "list_deliveries", lambda *a, **k: pd.DataFrame())
    return client


def _app() -> AppTest:
    return AppTest.from_string("from dashboard.views import alerts\nalerts.render()", default_timeout=30)


def _fired(app: AppTest) -> str:
    return next(m.value for m in app.metric if m.label == "Would have fired")


def test_preview_follows_the_edited_threshold(stubbed: FakeClient) -> None:
    app = _app()
    app.run()
    app.selectbox(key="rule_pick").select(RULE.id).run()
    assert not app.exception, app.exception
    assert _fired(app) == "2 times"  # the stored rule: both bursts are above 50%
    assert app.get("vega_lite_chart"), "the metric chart is drawn"

    app.number_input[2].set_value(0.8)  # Threshold (Window, Baseline, Threshold, ...)
    next(b for b in app.button if b.label == "Preview on history").click().run()
    assert not app.exception, app.exception
    assert _fired(app) == "1 times"  # only the 92% burst; nothing was saved

    app.number_input[2].set_value(0.95)
    next(b for b in app.button if b.label == "Preview on history").click().run()
    assert _fired(app) == "0 times"


def test_alert_link_opens_its_detail(stubbed: FakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    started = NOW - timedelta(minutes=30)
    stubbed.alert_row = {
        "id": "alert-acme-1", "fingerprint": RULE.fingerprint(""), "rule_id": RULE.id, "rule_name": RULE.name,
        "kind": RULE.kind, "severity": "critical", "status": "firing", "group_by": "none", "group_value": "",
        "scope": json.dumps({"ticker": "ACME"}), "metric": "negative_share", "value": 0.92, "threshold": 0.5,
        "baseline": None, "doc_count": 12, "window_start": started - timedelta(minutes=5), "window_end": started,
        "started_at": started, "resolved_at": None, "silenced": 0, "message": "92% of 12 documents negative",
        "sample_doc_ids": [], "window_value": None, "window_measure": "negative share of documents",
        "count": "documents", "window_s": 300, "baseline_s": None, "story_count": 2,
        "top_stories": json.dumps([{"story_id": "s1", "title": "ACME recalls every widget", "source": "wire",
                                    "url": "https://example.com/acme", "published_at": started.isoformat(),
                                    "sentiment": "negative", "sentiment_score": -0.9, "copies": 7}]),
        "dashboard_url": "http://dash/alerts?alert=alert-acme-1",
    }  # fmt: skip
    docs = pd.DataFrame({"published_at": [started], "title": ["ACME recalls every widget"], "sentiment": ["negative"]})
    seen: dict[str, Any] = {}

    def drilldown(client: Any, **kw: Any) -> pd.DataFrame:
        seen.update(kw)
        return docs

    import warehouse.queries

    monkeypatch.setattr(warehouse.queries, "drilldown", drilldown)
    try:
        app = _app()
        app.query_params["alert"] = "alert-acme-1"
        app.run()
        assert not app.exception, app.exception
        assert any("Why it fired: acme share" in h.value for h in app.subheader)
        assert {m.label: m.value for m in app.metric}["negative_share"] == "0.92"
        assert any("ACME recalls every widget" in str(df.value) for df in app.dataframe)
        assert seen["tickers"] == ("ACME",) and seen["sentiments"] == ("negative",)
        assert seen["start"] == (started - timedelta(minutes=5)).timestamp() and seen["end"] == started.timestamp()

        app.query_params["alert"] = "no-such-alert"
        app.run()
        assert any("No alert with id 'no-such-alert'" in w.value for w in app.warning)
    finally:
        alert_detail.load_alert.clear()
