"""The correction panel under the Live feed (Streamlit's AppTest; data layer stubbed, a fake ClickHouse client behind
the real warehouse.queries.corrections.record_correction): without a login the analyst must enter a name, bad input
is shown with the warehouse's reason and writes nothing, a saved correction says what changed."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import corrections, data

NOW = pd.Timestamp("2031-03-04 10:05", tz="UTC")
DOCS = pd.DataFrame(
    {
        "id": ["doc-acme-1", "doc-acme-2"],
        "published_at": [NOW, NOW],
        "title": ["ACME recalls cars", "ACME CFO resigns"],
        "sentiment": ["negative", "neutral"],
        "topic": ["Company | Product News", "Personnel Change"],
        "tickers": [["ACME"], ["ACME"]],
        # the feed collapses copies by default: one row per story
        "copies": [1, 1],
        "latest_published_at": [NOW, NOW],
        "latest_classified_at": [NOW, NOW],
    }
)


class FakeClient:
    """Answers the document look-up with a stored row and records inserts (what record_correction does)."""

    def __init__(self) -> None:
        self.inserts: list[tuple[str, list[dict[str, Any]]]] = []

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        params = parameters or {}
        if "FROM documents FINAL WHERE id" in sql and params.get("id") in set(DOCS["id"]):
            row = DOCS[DOCS["id"] == params["id"]].iloc[0]
            names = ["id", "title", "body", "lang", "topic", "sentiment", "model_version", "classified_at"]
            values = [row["id"], row["title"], "", "en", row["topic"], row["sentiment"], "m-1", datetime.now(UTC)]
            return SimpleNamespace(column_names=names, result_rows=[values])
        return SimpleNamespace(column_names=[], result_rows=[])

    def insert(self, table: str, rows: list[list[Any]], column_names: list[str]) -> None:
        self.inserts.append((table, [dict(zip(column_names, r, strict=True)) for r in rows]))


CLIENT = FakeClient()


@pytest.fixture(autouse=True)
def stub_data(monkeypatch: pytest.MonkeyPatch) -> None:
    CLIENT.inserts.clear()
    monkeypatch.setattr(data, "latest_documents", lambda *a: DOCS)
    monkeypatch.setattr(data, "filter_options", lambda: {"topic": [], "source": [], "ticker": [], "lang": []})
    monkeypatch.setattr(data, "client", lambda: CLIENT)
    monkeypatch.setattr(corrections, "_corrections", lambda ids: {})


def _label(app: AppTest) -> Any:
    return next(box for box in app.selectbox if box.label == "Correct label")


def _feed() -> AppTest:
    app = AppTest.from_string("from dashboard.views import feed\nfeed.render()", default_timeout=20)
    app.run()
    assert not app.exception, app.exception
    return app


def test_without_a_name_the_correction_is_refused_and_nothing_is_written() -> None:
    app = _feed()
    app.radio(key="feed_correct_field").set_value("sentiment").run()
    _label(app).set_value("positive").run()
    app.button(key="feed_correct_save").click().run()
    assert [e.value for e in app.error] == [
        "Not saved: analyst: who corrects must be named (sign in, or enter your name)"
    ]
    assert CLIENT.inserts == []


def test_a_saved_correction_names_who_and_what_changed() -> None:
    app = _feed()
    app.selectbox(key="feed_correct_doc").set_value("doc-acme-2").run()
    app.radio(key="feed_correct_field").set_value("topic").run()
    # the label offered first is the document's current one
    assert _label(app).value == "Personnel Change"
    _label(app).set_value("Earnings").run()
    app.text_input(key="correction_analyst").input("  Dana  ").run()
    app.button(key="feed_correct_save").click().run()
    assert not app.exception, app.exception
    assert [s.value for s in app.success] == ["Saved: topic is Earnings (was Personnel Change), corrected by Dana."]
    tables = [t for t, _ in CLIENT.inserts]
    assert tables == ["corrections", "documents"]
    stored = CLIENT.inserts[0][1][0]
    assert (stored["document_id"], stored["field"], stored["label"], stored["previous_label"]) == (
        "doc-acme-2",
        "topic",
        "Earnings",
        "Personnel Change",
    )
    assert (stored["analyst"], stored["model_version"]) == ("Dana", "m-1")
    row = CLIENT.inserts[1][1][0]
    assert (row["topic"], row["label_source"], row["corrected_by"]) == ("Earnings", "analyst", "Dana")
