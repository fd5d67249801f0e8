"""Webhook attacks against the real stack's ClickHouse: a target row with port 99999 no longer takes the dispatcher
down for every target, and webhook secrets and Slack URLs are not in any ClickHouse row a SELECT can read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts import store
from alerts.dispatcher import Dispatcher
from alerts.repository import next_version
from alerts.targets import WebhookTarget
from tests.integration.alerts.conftest import Warehouse, start_receiver, warehouse  # noqa: F401 - fixture
from tests.integration.alerts.test_delivery import _drain, _fire

pytestmark = pytest.mark.integration

SECRET = "webhook-secret-never-in-clickhouse"
SLACK = "https://hooks.slack.com/services/T000/B000/slack-token-never-in-clickhouse"


def test_a_target_with_port_99999_does_not_stop_deliveries_to_the_others(warehouse: Warehouse) -> None:  # noqa: F811
    w = warehouse
    # A row written before URLs were validated (the API now refuses it when the target is created).
    w.client.insert(
        "alert_targets",
        [["broken", "http://x:99999/", "generic", "", 1, "ui", 0, datetime.now(UTC), next_version()]],
        column_names=["name", "url", "format", "secret", "enabled", "origin", "deleted", "updated_at", "version"],
    )
    with pytest.raises(ValueError, match=r"(?i)port"):
        WebhookTarget(name="broken2", url="http://x:99999/")
    receiver = start_receiver(SECRET)
    try:
        store.save_target(w.settings, WebhookTarget(name="risk-team", url=receiver.url, secret=SECRET), client=w.client)
        _fire(w)
        dispatcher = Dispatcher(w.settings, w.client)
        try:
            _drain(dispatcher, w, "webhook")
        finally:
            dispatcher.close()
    finally:
        receiver.stop()
    assert len(receiver.state.received) == 1 and receiver.state.rejected == []  # signed over body + key


def test_webhook_secrets_and_slack_urls_are_not_in_clickhouse(warehouse: Warehouse) -> None:  # noqa: F811
    w = warehouse
    store.save_target(
        w.settings, WebhookTarget(name="generic", url="https://example.com/h", secret=SECRET), client=w.client
    )
    store.save_target(w.settings, WebhookTarget(name="chat", url=SLACK, format="slack"), client=w.client)
    rows = w.client.query("SELECT * FROM alert_targets").result_rows
    dump = repr(rows)
    assert rows and SECRET not in dump and "slack-token" not in dump and "hooks.slack.com" not in dump
    targets = {t.name: t for t in store.list_targets(w.settings, client=w.client)}
    assert targets["generic"].secret is not None and targets["generic"].secret.get_secret_value() == SECRET
    assert targets["chat"].url == SLACK
