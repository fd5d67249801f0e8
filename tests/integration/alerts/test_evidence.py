"""Why it fired, on the real ClickHouse: migration 0031 on an existing data dir, the evidence columns round trip,
the top-stories query, and a fired alert whose stored row and webhooks (all three formats) name its top stories."""

from __future__ import annotations

import shutil
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts import store
from alerts.alert import ALERT_COLUMNS, Alert, StoryRef
from alerts.dispatcher import Dispatcher
from alerts.engine import Engine
from alerts.rules import Rule
from alerts.targets import WebhookTarget
from tests.integration.alerts.conftest import T0, Warehouse, settings_for, start_receiver
from tests.stack import Stack
from warehouse.client import create_client
from warehouse.migrate import MIGRATIONS_DIR, migrate
from warehouse.queries import alerts as q

pytestmark = pytest.mark.integration

SECRET = "evidence-test-secret"
MIN = timedelta(minutes=1)
_DOC_COLUMNS = [
    "id", "source", "kind", "lang", "title", "body", "published_at", "ingested_at", "tickers", "entities", "meta",
    "topic", "sentiment", "sentiment_score", "model_version", "classified_at", "story_id", "url",
]  # fmt: skip


def _story(w: Warehouse, story_id: str, copies: int, *, score: float = -0.8, offset_s: int = 0, **kw: Any) -> None:
    """``copies`` documents of one story, the first (at T0 + offset_s) from 'wire', then one outlet each."""
    rows = w.rows(T0 + timedelta(seconds=offset_s), copies, text=f"{story_id} headline", **kw)
    for i, row in enumerate(rows):
        row[0] = f"{story_id}-copy{i}-{uuid.uuid4().hex[:6]}"
        row[1] = "wire" if i == 0 else f"outlet{i}"
        row[13] = score + 0.01 * i  # sentiment_score
        row += [story_id, f"https://news.example/{story_id}/{i}"]
    w.client.insert("documents", rows, column_names=_DOC_COLUMNS)


def _burst(w: Warehouse) -> None:
    _story(w, "recall", 6, ticker="ACME", offset_s=5)
    _story(w, "probe", 3, ticker="ACME", score=-0.9, offset_s=10)
    _story(w, "lawsuit", 3, ticker="ACME", score=-0.5, offset_s=15)  # as many copies, less negative: after probe
    _story(w, "fine", 1, ticker="ACME", offset_s=20)
    _story(w, "beat", 8, ticker="ACME", sentiment="positive", score=0.9)  # not negative: not behind the alert
    _story(w, "other", 20, ticker="OTHER")  # outside the rule's scope


def test_migration_0031_upgrades_an_existing_data_dir(stack: Stack, tmp_path: Path) -> None:
    database = f"alerts_old_{uuid.uuid4().hex[:8]}"
    settings = settings_for(stack, clickhouse_database=database)
    before = tmp_path / "migrations"
    before.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if path.name < "0031":
            shutil.copy(path, before / path.name)
    migrate(settings, directory=before)
    client = create_client(settings)
    try:
        renamed = {"group_by": "scope_kind", "group_value": "scope_value"}  # their names before migration 0050
        old_columns = [renamed.get(c, c) for c in ALERT_COLUMNS[: ALERT_COLUMNS.index("window_value")]]
        old = Alert(id="old1", fingerprint="f", rule_id="r", rule_name="old rule", kind="surge", severity="warning",
                    metric="negative_count_z", value=4.0, threshold=3.0, baseline=2.0, doc_count=12,
                    window_start=T0, window_end=T0 + 10 * MIN, started_at=T0 + 10 * MIN,
                    message="from before")  # fmt: skip
        client.insert("alerts", [old.to_row(T0)[: len(old_columns)]], column_names=list(old_columns))

        applied = migrate(settings)
        assert applied[0] == "0031_alert_evidence" and all(m > "0031" for m in applied[1:])
        loaded = store.get_alert(settings, "old1", client=client)
        assert loaded.model_dump(exclude={"window_s"}) == old.model_dump(exclude={"window_s"})
        assert loaded.window_s == 600, "computed from the old row's window"
        assert loaded.top_stories == [] and loaded.dashboard_url == "" and loaded.count == "documents"
        listed = store.list_alerts(settings, client=client)
        assert list(listed["id"]) == ["old1"] and listed["top_stories"].iloc[0] == "[]"
        assert migrate(settings) == [], "applied once"
    finally:
        client.command(f"DROP DATABASE IF EXISTS {database}")
        client.close()


def test_evidence_columns_round_trip(warehouse: Warehouse) -> None:
    s, c = warehouse.settings, warehouse.client
    stories = [
        StoryRef(story_id="s1", title="Acme & Co <recall>", source="wire", url="https://n.example/1",
                 published_at=T0 + 5 * MIN, sentiment="negative", sentiment_score=-0.75, copies=4),
        StoryRef(story_id="s2", title="无 url 的中文标题", source="weibo", published_at=T0 + 6 * MIN, copies=1),
    ]  # fmt: skip
    alert = Alert(id="rt1", fingerprint="f", rule_id="r", rule_name="rt", kind="surge", severity="critical",
                  metric="negative_count_z", value=5.5, threshold=3.0, baseline=1.5, doc_count=20,
                  window_start=T0, window_end=T0 + 15 * MIN, started_at=T0 + 15 * MIN, window_value=12.0,
                  window_measure="negative stories", count="stories", window_s=900, baseline_s=7200, story_count=7,
                  top_stories=stories, dashboard_url="http://127.0.0.1:8501/alerts?alert=rt1")  # fmt: skip
    c.insert("alerts", [alert.to_row(T0)], column_names=list(ALERT_COLUMNS))
    assert store.get_alert(s, "rt1", client=c) == alert
    row = store.list_alerts(s, client=c).iloc[0]
    assert (row["story_count"], row["window_value"], row["dashboard_url"]) == (7, 12.0, alert.dashboard_url)
    with pytest.raises(store.NotFoundError, match="no alert 'missing'"):
        store.get_alert(s, "missing", client=c)


def test_top_stories_query_ranks_by_copies_then_negativity(warehouse: Warehouse) -> None:
    _burst(warehouse)
    start, end = int(T0.timestamp()), int((T0 + MIN).timestamp())
    found = q.top_stories(warehouse.client, start=start, end=end, group_by="ticker", group="ACME", limit=3)
    assert [(x.story_id, x.copies) for x in found.stories] == [("recall", 6), ("probe", 3), ("lawsuit", 3)]
    assert (found.story_count, found.doc_count) == (4, 13)
    first = found.stories[0]
    assert (first.title, first.source, first.url) == ("recall headline", "wire", "https://news.example/recall/0")
    assert first.sentiment == "negative" and first.sentiment_score == pytest.approx(-0.775, abs=1e-4)
    # Every document (volume rules): the positive story is there; the scope keeps OTHER out of an ungrouped rule.
    everything = q.top_stories(warehouse.client, start=start, end=end, group_by="none", group="",
                               scope={"ticker": "ACME"}, negative_only=False, limit=10)  # fmt: skip
    assert [x.story_id for x in everything.stories][:2] == ["beat", "recall"] and everything.story_count == 5
    # A watchlist keyword narrows to the documents that mention it; the window excludes the rest.
    kw = q.top_stories(warehouse.client, start=start, end=end, group_by="none", group="", keyword="PROBE")
    assert [x.story_id for x in kw.stories] == ["probe"]
    assert q.top_stories(warehouse.client, start=end, end=end + 60, group_by="none", group="").stories == []
    with pytest.raises(ValueError, match="group_by"):
        q.top_stories(warehouse.client, start=start, end=end, group_by="title", group="")


def test_fired_alert_stores_and_sends_its_top_stories(warehouse: Warehouse) -> None:
    w = warehouse
    s, c = w.settings, w.client
    receiver = start_receiver(SECRET)
    try:
        for name, fmt in (("gen", "generic"), ("chat", "slack"), ("am", "alertmanager")):
            target = WebhookTarget(name=name, url=f"{receiver.url}/{name}", format=fmt, secret=SECRET)
            store.save_target(s, target, client=c)
        rule = Rule(id="acme-neg", name="acme negative share", kind="negative_share", scope={"ticker": "ACME"},
                    window_s=300, threshold=0.5, min_volume=3, pending_s=0)  # fmt: skip
        store.save_rule(s, rule, client=c)
        _burst(w)
        fired = Engine(s, c).tick(T0 + MIN)
        assert [e.kind for e in fired] == ["firing"]
        alert = fired[0].alert
        assert [(x.story_id, x.copies) for x in alert.top_stories] == [
            ("recall", 6), ("probe", 3), ("lawsuit", 3), ("fine", 1),
        ]  # fmt: skip
        assert alert.story_count == 4 and alert.count == "stories" and alert.window_s == 300
        assert alert.dashboard_url == f"{s.dashboard_public_url}/alerts?alert={alert.id}"
        assert alert.value == pytest.approx(0.8) and alert.doc_count == 5  # 4 negative stories of 5
        assert "negative share of stories: 80% in 5 min (threshold 50%)" in alert.numbers()
        assert store.get_alert(s, alert.id, client=c) == alert, "the stored row names the same stories"

        dispatcher = Dispatcher(s, c)
        try:
            deadline = time.monotonic() + 30
            while len({r.path for r in receiver.state.received}) < 3 and time.monotonic() < deadline:
                dispatcher.run_once()
                time.sleep(0.05)
        finally:
            dispatcher.close()
    finally:
        receiver.stop()
    bodies = {r.path.rsplit("/", 1)[-1]: r.body for r in receiver.state.received}
    assert set(bodies) == {"gen", "chat", "am"} and receiver.state.rejected == []
    generic = bodies["gen"]["alert"]
    assert [x["story_id"] for x in generic["top_stories"]] == ["recall", "probe", "lawsuit", "fine"]
    assert generic["dashboard_url"] == alert.dashboard_url
    slack = [b["text"]["text"] for b in bodies["chat"]["blocks"] if b["type"] == "section"]
    assert slack[2].startswith("*<https://news.example/recall/0|recall headline>*") and "6 copies" in slack[2]
    assert any(b["type"] == "actions" and b["elements"][0]["url"] == alert.dashboard_url
               for b in bodies["chat"]["blocks"])  # fmt: skip
    am = bodies["am"]
    assert am["alerts"][0]["generatorURL"] == alert.dashboard_url and am["externalURL"] == s.dashboard_public_url
    assert am["alerts"][0]["annotations"]["top_stories"].splitlines()[0].startswith("1. recall headline (wire")
