"""Webhook and Kafka delivery through the outbox: retries with backoff, one logical delivery per alert event
(same idempotency key, valid HMAC), every attempt logged; a receiver that is down gets the alert once it is back,
even across a restart of the dispatcher."""

from __future__ import annotations

import json
import time
import uuid
from contextlib import closing
from datetime import timedelta

import pytest
from kafka import KafkaConsumer, TopicPartition

from alerts import store
from alerts.dispatcher import Dispatcher
from alerts.engine import Engine
from alerts.rules import Rule
from alerts.targets import WebhookTarget
from tests.integration.alerts.conftest import T0, Warehouse, start_receiver
from tests.stack import free_ports

pytestmark = pytest.mark.integration

SECRET = "test-secret-not-in-any-repo"
RULE = Rule(name="acme share", kind="negative_share", scope={"ticker": "ACME"}, window_s=300, threshold=0.5,
            min_volume=5, pending_s=0, cooldown_s=0)  # fmt: skip


def _fire(w: Warehouse) -> str:
    # A rule id of its own: the alerts topic is shared by every test, and alert ids derive from rule + time.
    store.save_rule(w.settings, RULE.model_copy(update={"id": f"acme-{uuid.uuid4().hex[:8]}"}), client=w.client)
    w.docs(T0, 10, sentiment="negative", ticker="ACME")
    events = Engine(w.settings, w.client).tick(T0 + timedelta(minutes=1))
    assert [e.kind for e in events] == ["firing"]
    return events[0].alert.id


def _drain(dispatcher: Dispatcher, w: Warehouse, channel: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dispatcher.run_once()
        pending = store.pending_deliveries(w.settings, client=w.client)
        if not (pending["channel"] == channel).any():
            return
        time.sleep(0.05)
    raise AssertionError(f"{channel} deliveries still pending after {timeout}s")


def test_receiver_failing_twice_gets_exactly_one_signed_delivery(warehouse: Warehouse) -> None:
    w = warehouse
    receiver = start_receiver(SECRET, fail_first=2)
    try:
        store.save_target(w.settings, WebhookTarget(name="risk-team", url=receiver.url, secret=SECRET), client=w.client)
        alert_id = _fire(w)
        dispatcher = Dispatcher(w.settings, w.client)
        try:
            _drain(dispatcher, w, "webhook")
        finally:
            dispatcher.close()
    finally:
        receiver.stop()

    state = receiver.state
    assert state.requests == 3 and state.rejected == []
    assert len(state.received) == 1, "one logical delivery"
    got = state.received[0]
    assert not got.duplicate and got.event == "firing" and got.path == "/hooks/finpulse"
    assert got.body["schema"] == "finpulse.alert.v1" and got.body["alert"]["id"] == alert_id
    assert got.body["delivery_id"] == got.delivery_id

    log = store.list_deliveries(w.settings, client=w.client)
    hooks = log[log["channel"] == "webhook"].sort_values("attempt")
    assert list(hooks["attempt"]) == [1, 2, 3]
    assert list(hooks["status"]) == ["failed", "failed", "delivered"]
    assert [int(s) for s in hooks["http_status"]] == [500, 500, 200]
    assert set(hooks["delivery_id"]) == {got.delivery_id}, "every retry carries the same idempotency key"
    assert (hooks["latency_ms"] >= 0).all()


def test_receiver_down_gets_the_alert_after_it_is_back_across_restart(warehouse: Warehouse) -> None:
    w = warehouse
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}/alerts"
    store.save_target(
        w.settings, WebhookTarget(name="am", url=url, format="alertmanager", secret=SECRET), client=w.client
    )
    _fire(w)

    first = Dispatcher(w.settings, w.client)  # nothing listens yet: connection refused, retried later
    for _ in range(3):
        first.run_once()
        time.sleep(0.25)
    first.close()
    pending = store.pending_deliveries(w.settings, client=w.client)
    waiting = pending[pending["channel"] == "webhook"]
    assert len(waiting) == 1 and waiting["attempts"].iloc[0] >= 2 and "ConnectError" in waiting["last_error"].iloc[0]

    receiver = start_receiver(SECRET, port=port)
    try:
        restarted = Dispatcher(w.settings, w.client)  # a new engine process finds the outbox in ClickHouse
        try:
            _drain(restarted, w, "webhook")
        finally:
            restarted.close()
    finally:
        receiver.stop()
    assert len(receiver.state.received) == 1
    body = receiver.state.received[0].body
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "am"
    assert body["alerts"][0]["labels"]["alertname"] == RULE.name and body["alerts"][0]["endsAt"].startswith("0001")


def test_alerts_are_published_to_kafka(warehouse: Warehouse) -> None:
    w = warehouse
    alert_id = _fire(w)
    dispatcher = Dispatcher(w.settings, w.client)
    try:
        _drain(dispatcher, w, "kafka", timeout=40)
    finally:
        dispatcher.close()
    topic = w.settings.topic_alerts
    with closing(KafkaConsumer(bootstrap_servers=w.settings.kafka_servers, group_id=None)) as consumer:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        found = []
        deadline = time.monotonic() + 20
        while not found and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                found += [r for r in records if json.loads(r.value)["alert"]["id"] == alert_id]
    assert len(found) == 1
    message = json.loads(found[0].value)
    assert message["event"] == "firing" and found[0].key.decode() == message["alert"]["fingerprint"]


def test_signature_verifies_and_test_send_logs(warehouse: Warehouse) -> None:
    w = warehouse
    receiver = start_receiver(SECRET)
    try:
        store.save_target(w.settings, WebhookTarget(name="slack", url=receiver.url, format="slack", secret=SECRET),
                          client=w.client)  # fmt: skip
        result = store.test_send(w.settings, "slack", client=w.client)
    finally:
        receiver.stop()
    assert result.ok and result.http_status == 200
    assert (
        receiver.state.received[0].event == "test" and "FinPulse test alert" in receiver.state.received[0].body["text"]
    )
    log = store.list_deliveries(w.settings, client=w.client)
    assert list(log["event"]) == ["test"] and list(log["status"]) == ["delivered"]
    with pytest.raises(store.NotFoundError):
        store.test_send(w.settings, "nope", client=w.client)
