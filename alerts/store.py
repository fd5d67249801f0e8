"""The alert part's Python API for the dashboard and the CLI: rules, targets, alerts, silences, deliveries.

Everything is stored in ClickHouse (tables of migrations 0003, 0010 and 0031), so the engine, the dashboard and the
CLI share one truth. This is a thin layer over ``alerts.repository``, which owns the SQL: here are the checks
(validation, "not found" messages with the command that lists what exists) and one client per call. Every function
takes the settings (and optionally an open client, for callers that batch).

    list_rules(settings) -> list[Rule]              save_rule(settings, rule) -> Rule
    delete_rule(settings, rule_id)                  list_alerts(settings, state=None, limit=200) -> DataFrame
    get_alert(settings, alert_id) -> Alert          (numbers, top stories, drill-down link: why it fired)
    acknowledge(settings, alert_id, by)             silence(settings, fingerprint_or_rule_id, until, by)
    list_targets(settings) -> list[WebhookTarget]   save_target(settings, target) -> WebhookTarget
    delete_target(settings, name)                   test_send(settings, target_name) -> DeliveryResult
    list_deliveries(settings, limit=200) -> DataFrame  pending_deliveries(settings, limit=200) -> DataFrame
    list_silences(settings) -> DataFrame
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from alerts import repository as repo
from alerts.alert import Alert
from alerts.repository import DELIVERY_COLUMNS, connect, log_delivery, next_version
from alerts.rules import Rule
from alerts.targets import DeliveryResult, WebhookTarget
from finpulse.settings import Settings

log = logging.getLogger(__name__)

ALERT_STATES = ("firing", "acknowledged", "resolved")
__all__ = [
    "ALERT_STATES", "DELIVERY_COLUMNS", "NotFoundError", "acknowledge", "delete_rule", "delete_target", "get_alert",
    "get_rule", "get_target", "list_alerts", "list_deliveries", "list_rules", "list_silences", "list_targets",
    "log_delivery", "pending_deliveries", "save_rule", "save_target", "silence", "test_send",
]  # fmt: skip


class NotFoundError(LookupError):
    """The rule, target or alert named does not exist; the message says which."""


# --- rules -----------------------------------------------------------------------------------------------------


def list_rules(settings: Settings, *, client: Any | None = None) -> list[Rule]:
    """Every rule (enabled or not), by id."""
    with connect(settings, client) as c:
        return repo.rules(c)


def get_rule(settings: Settings, rule_id: str, *, client: Any | None = None) -> Rule:
    with connect(settings, client) as c:
        rule = repo.rule(c, rule_id)
    if rule is None:
        raise NotFoundError(f"no alert rule {rule_id!r}; `finpulse alerts rules` lists them")
    return rule


def save_rule(settings: Settings, rule: Rule, *, client: Any | None = None) -> Rule:
    """Create or replace a rule (by id); it is validated again, so a dict-built rule gets the same checks."""
    rule = Rule.model_validate(rule.model_dump())
    with connect(settings, client) as c:
        repo.write_rule(c, rule, deleted=False)
    return rule


def delete_rule(settings: Settings, rule_id: str, *, client: Any | None = None) -> None:
    """Delete a rule; its firing alerts resolve at the engine's next evaluation."""
    with connect(settings, client) as c:
        repo.write_rule(c, get_rule(settings, rule_id, client=c), deleted=True)


# --- targets ---------------------------------------------------------------------------------------------------


def list_targets(settings: Settings, *, client: Any | None = None, skip_invalid: bool = True) -> list[WebhookTarget]:
    """The targets, secrets and Slack URLs resolved from the secrets file. ``skip_invalid``: a row that no longer
    validates (saved before URLs were checked) is left out with a warning instead of failing every target."""
    with connect(settings, client) as c:
        return repo.targets(c, data_dir=settings.data_dir, skip_invalid=skip_invalid)


def get_target(settings: Settings, name: str, *, client: Any | None = None) -> WebhookTarget:
    for target in list_targets(settings, client=client):
        if target.name == name:
            return target
    raise NotFoundError(f"no webhook target {name!r}; `finpulse alerts targets` lists them")


def save_target(settings: Settings, target: WebhookTarget, *, client: Any | None = None) -> WebhookTarget:
    """Create or replace a target (by name). A target saved without a secret keeps the one stored before, so a
    form need not show the secret to edit the URL."""
    target = WebhookTarget.model_validate(target.model_dump())
    with connect(settings, client) as c:
        if target.secret is None:
            previous = {t.name: t for t in list_targets(settings, client=c)}.get(target.name)
            if previous is not None and previous.secret is not None:
                target = target.model_copy(update={"secret": previous.secret})
        repo.write_target(c, target, data_dir=settings.data_dir, deleted=False)
    return target


def delete_target(settings: Settings, name: str, *, client: Any | None = None) -> None:
    with connect(settings, client) as c:
        repo.write_target(c, get_target(settings, name, client=c), data_dir=settings.data_dir, deleted=True)


def _write_target(client: Any, target: WebhookTarget, *, deleted: bool, data_dir: Path) -> None:
    """Kept for alerts.config's rules-file sync (a file target is written as it is, without save_target's
    secret carry-over)."""
    repo.write_target(client, target, data_dir=data_dir, deleted=deleted)


def test_send(settings: Settings, target_name: str, *, client: Any | None = None) -> DeliveryResult:
    """POST a clearly marked test alert to one target, once (no retries), and log the attempt."""
    from alerts.webhooks import post_once, test_alert

    with connect(settings, client) as c:
        target = get_target(settings, target_name, client=c)
        alert = test_alert()
        result = post_once(settings, target, alert, event="test", delivery_id=f"test-{next_version()}")
        log_delivery(c, result)
    return result


# --- alerts, silences, deliveries --------------------------------------------------------------------------------


def list_alerts(
    settings: Settings, *, state: str | None = None, limit: int = 200, client: Any | None = None
) -> pd.DataFrame:
    """Alerts newest first: firing, acknowledged (firing, someone is on it) and resolved; ``state`` filters."""
    if state is not None and state not in ALERT_STATES:
        raise ValueError(f"state must be one of {ALERT_STATES} or None, not {state!r}")
    with connect(settings, client) as c:
        return repo.list_alerts(c, state=state, limit=limit)


def get_alert(settings: Settings, alert_id: str, *, client: Any | None = None) -> Alert:
    """One alert, latest version (firing or resolved), with why it fired; NotFoundError when there is none."""
    with connect(settings, client) as c:
        alert = repo.alert(c, alert_id)
    if alert is None:
        raise NotFoundError(f"no alert {alert_id!r}; the Alerts page and `finpulse alerts list` show them")
    return alert


def acknowledge(settings: Settings, alert_id: str, by: str, *, client: Any | None = None) -> None:
    """Mark an alert as being handled (it keeps firing until its condition clears)."""
    if not by.strip():
        raise ValueError("acknowledge: say who acknowledges (by=...)")
    with connect(settings, client) as c:
        if not repo.alert_exists(c, alert_id):
            raise NotFoundError(f"no alert {alert_id!r}")
        repo.write_ack(c, alert_id, by.strip())


def silence(
    settings: Settings, fingerprint_or_rule_id: str, until: datetime, by: str, *, client: Any | None = None
) -> None:
    """Stop webhook notifications of one alert series (fingerprint) or a whole rule (rule id) until ``until``
    (alerts are still evaluated, stored and published to Kafka). A time in the past lifts the silence."""
    if not fingerprint_or_rule_id.strip():
        raise ValueError("silence: name a fingerprint or a rule id")
    with connect(settings, client) as c:
        repo.write_silence(c, fingerprint_or_rule_id.strip(), until, by.strip())


def list_silences(settings: Settings, *, now: datetime | None = None, client: Any | None = None) -> pd.DataFrame:
    """Silences in force at ``now`` (default: the current time)."""
    with connect(settings, client) as c:
        return repo.active_silences(c, now or datetime.now(UTC))


def list_deliveries(settings: Settings, limit: int = 200, *, client: Any | None = None) -> pd.DataFrame:
    """The delivery log, newest first: one row per attempt (status, HTTP status, latency, idempotency key)."""
    with connect(settings, client) as c:
        return repo.list_deliveries(c, limit=limit)


def pending_deliveries(settings: Settings, limit: int = 200, *, client: Any | None = None) -> pd.DataFrame:
    """Deliveries the outbox still retries (a receiver down), oldest first."""
    with connect(settings, client) as c:
        return repo.pending_deliveries(c, limit=limit)
