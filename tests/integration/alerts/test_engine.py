"""Each rule kind on documents the test writes, with an injected clock: it fires once, waits out its pending
duration, stays quiet through its cooldown, and resolves when the condition clears."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from alerts import store
from alerts.engine import Engine, Event
from alerts.rules import Rule
from tests.integration.alerts.conftest import T0, Warehouse

pytestmark = pytest.mark.integration

MIN = timedelta(minutes=1)


@dataclass
class Case:
    rule: Rule
    burst: Callable[[Warehouse, datetime, int], None]  # (warehouse, minute, scale): makes the condition true
    background: Callable[[Warehouse], None] = lambda w: None
    group: str = ""


def _baseline(w: Warehouse, *, negative: int, neutral: int, positive: int, **kw) -> None:
    # Two hours of ordinary traffic before T0, one minute in every five, in one insert.
    rows = []
    for k in range(1, 25):
        for sentiment, n in (("negative", negative), ("neutral", neutral), ("positive", positive)):
            if n:
                rows += w.rows(T0 - 5 * k * MIN, n, sentiment=sentiment, **kw)
    w.insert(rows)


def _negative_share_burst(w: Warehouse, at: datetime, scale: int) -> None:
    ids = w.docs(at, 16 * scale, sentiment="negative", ticker="ACME")
    w.docs(at, 4 * scale, sentiment="neutral", ticker="ACME")
    w.docs(at, 10, sentiment="negative", ticker="ACME", ids=ids[:10])  # redelivered: must not count twice
    w.docs(at, 60, sentiment="positive", ticker="OTHER")  # outside the scope


CASES = {
    "negative_share": Case(
        Rule(name="acme negative share", kind="negative_share", scope={"ticker": "ACME"}, window_s=300,
             threshold=0.6, min_volume=10, pending_s=120, cooldown_s=600),
        _negative_share_burst,
    ),
    "surge": Case(
        Rule(name="earnings surge", kind="surge", scope={"topic": "earnings"}, group_by="ticker", window_s=300,
             baseline_s=7200, threshold=3.0, min_volume=10, pending_s=120, cooldown_s=600),
        lambda w, at, s: w.docs(at, 40 * s, sentiment="negative", ticker="ACME", topic="earnings"),
        lambda w: _baseline(w, negative=2, neutral=8, positive=0, ticker="ACME", topic="earnings"),
        group="ACME",
    ),
    "volume_spike": Case(
        Rule(name="wire volume", kind="volume_spike", scope={"source": "wire"}, window_s=300, baseline_s=7200,
             threshold=3.0, min_volume=10, pending_s=120, cooldown_s=600),
        lambda w, at, s: w.docs(at, 60 * s, sentiment="neutral"),
        lambda w: _baseline(w, negative=2, neutral=6, positive=2),
    ),
    "sentiment_drop": Case(
        Rule(name="english index drop", kind="sentiment_drop", scope={"lang": "en"}, group_by="topic",
             window_s=300, baseline_s=7200, threshold=0.5, min_volume=10, pending_s=120, cooldown_s=600),
        lambda w, at, s: (w.docs(at, 30 * s, sentiment="negative", topic="banks"),
                          w.docs(at, 60, sentiment="positive", topic="banks", lang="de")),
        lambda w: _baseline(w, negative=2, neutral=2, positive=6, topic="banks"),
        group="banks",
    ),
    "watchlist": Case(
        Rule(name="watchlist", kind="watchlist", watch_tickers=["ACME"], watch_keywords=["default"], window_s=300,
             threshold=2, pending_s=120, cooldown_s=600),
        lambda w, at, s: (w.docs(at, 3 * s, sentiment="negative", ticker="ACME", text="ACME misses"),
                          w.docs(at, 5, sentiment="positive", ticker="ACME")),
        group="ticker:ACME",
    ),
}  # fmt: skip


def _tick(engine: Engine, at: datetime) -> list[Event]:
    return engine.tick(at)


@pytest.mark.parametrize("kind", list(CASES))
def test_rule_kind_fires_once_honours_pending_and_cooldown_and_resolves(warehouse: Warehouse, kind: str) -> None:
    case = CASES[kind]
    store.save_rule(warehouse.settings, case.rule, client=warehouse.client)
    case.background(warehouse)
    engine = Engine(warehouse.settings, warehouse.client)

    assert _tick(engine, T0) == [], "ordinary traffic must not fire"

    case.burst(warehouse, T0, 1)  # the burst lives in minute [T0, T0+1); 5-minute windows see it until T0+6
    assert _tick(engine, T0 + MIN) == [], "pending: the condition must hold 120 s first"
    assert _tick(engine, T0 + 2 * MIN) == []
    fired = _tick(engine, T0 + 3 * MIN)
    assert [e.kind for e in fired] == ["firing"]
    alert = fired[0].alert
    assert alert.rule_id == case.rule.id and alert.group_value == case.group and alert.kind == kind
    assert alert.value >= alert.threshold and alert.sample_doc_ids
    assert _tick(engine, T0 + 4 * MIN) == [], "a firing alert is not notified again"

    resolved = _tick(engine, T0 + 7 * MIN)  # the burst has left the window
    assert [(e.kind, e.alert.id) for e in resolved] == [("resolved", alert.id)]

    case.burst(warehouse, T0 + 8 * MIN, 1)  # true again, but within the 600 s cooldown
    assert _tick(engine, T0 + 9 * MIN) == []
    assert _tick(engine, T0 + 12 * MIN) == []

    case.burst(warehouse, T0 + 18 * MIN, 2)  # after the cooldown: pending again, then a new alert
    assert _tick(engine, T0 + 19 * MIN) == []
    again = _tick(engine, T0 + 21 * MIN)
    assert [e.kind for e in again] == ["firing"] and again[0].alert.id != alert.id

    alerts = store.list_alerts(warehouse.settings, client=warehouse.client)
    assert list(alerts["state"]) == ["firing", "resolved"]
    assert alerts["resolved_at"].iloc[1] is not None
    # Each event is queued for Kafka (no webhook targets here): firing, resolved, firing.
    pending = store.pending_deliveries(warehouse.settings, client=warehouse.client)
    assert sorted(pending["event"]) == ["firing", "firing", "resolved"]
    assert set(pending["channel"]) == {"kafka"}


def test_redelivered_documents_count_once(warehouse: Warehouse) -> None:
    rule = CASES["negative_share"].rule.model_copy(update={"pending_s": 0})
    store.save_rule(warehouse.settings, rule, client=warehouse.client)
    _negative_share_burst(warehouse, T0, 1)
    fired = Engine(warehouse.settings, warehouse.client).tick(T0 + MIN)
    assert len(fired) == 1
    assert fired[0].alert.doc_count == 20  # 16 negative + 4 neutral ACME documents; 10 redelivered, 60 out of scope
    assert fired[0].alert.value == pytest.approx(0.8)


def test_state_survives_a_restart_and_silences_hold_webhooks(warehouse: Warehouse) -> None:
    from alerts.targets import WebhookTarget

    s, c = warehouse.settings, warehouse.client
    store.save_target(s, WebhookTarget(name="ops", url="http://127.0.0.1:9/x"), client=c)
    rule = CASES["negative_share"].rule.model_copy(update={"pending_s": 0})
    store.save_rule(s, rule, client=c)
    store.silence(s, rule.id, T0 + 30 * MIN, "tester", client=c)
    _negative_share_burst(warehouse, T0, 1)
    fired = Engine(s, c).tick(T0 + MIN)
    assert len(fired) == 1 and fired[0].alert.silenced

    restarted = Engine(s, c)  # a new process: loads the firing series from alert_state
    assert restarted.tick(T0 + 2 * MIN) == []
    assert [e.kind for e in restarted.tick(T0 + 8 * MIN)] == ["resolved"]
    pending = store.pending_deliveries(s, client=c)
    assert set(pending["channel"]) == {"kafka"}, "a silenced alert goes to Kafka but to no webhook"

    store.acknowledge(s, fired[0].alert.id, "tester", client=c)
    assert list(store.list_alerts(s, state="resolved", client=c)["id"]) == [fired[0].alert.id]


def test_deleting_a_rule_resolves_its_alert(warehouse: Warehouse) -> None:
    s, c = warehouse.settings, warehouse.client
    rule = CASES["negative_share"].rule.model_copy(update={"pending_s": 0})
    store.save_rule(s, rule, client=c)
    _negative_share_burst(warehouse, T0, 1)
    engine = Engine(s, c)
    assert [e.kind for e in engine.tick(T0 + MIN)] == ["firing"]
    firing = store.list_alerts(s, state="firing", client=c)
    store.acknowledge(s, firing["id"].iloc[0], "oncall", client=c)
    assert list(store.list_alerts(s, client=c)["state"]) == ["acknowledged"]
    store.delete_rule(s, rule.id, client=c)
    resolved = engine.tick(T0 + 2 * MIN)
    assert [e.kind for e in resolved] == ["resolved"] and "rule deleted" in resolved[0].alert.message
