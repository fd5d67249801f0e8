"""The alert part's Python API for the dashboard and the CLI: rules, targets, alerts, silences, deliveries.

Everything is stored in ClickHouse (tables of migrations 0003 and 0010), so the engine, the dashboard and the CLI
share one truth. Every function takes the settings (and optionally an open client, for callers that batch).

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

from alerts import secret_store
from alerts.alert import Alert, utc
from alerts.db import connect, next_version
from alerts.rules import Rule
from alerts.targets import DeliveryResult, WebhookTarget
from finpulse.settings import Settings
from warehouse.queries import alerts as q

log = logging.getLogger(__name__)

ALERT_STATES = ("firing", "acknowledged", "resolved")


class NotFoundError(LookupError):
    """The rule, target or alert named does not exist; the message says which."""


# --- rules -----------------------------------------------------------------------------------------------------


def list_rules(settings: Settings, *, client: Any | None = None) -> list[Rule]:
    """Every rule (enabled or not), by id."""
    with connect(settings, client) as c:
        rows = c.query(q.RULES_SQL).result_rows
    return [Rule.model_validate_json(row[0]) for row in rows]


def get_rule(settings: Settings, rule_id: str, *, client: Any | None = None) -> Rule:
    with connect(settings, client) as c:
        rows = c.query(q.RULE_SQL, parameters={"id": rule_id}).result_rows
    if not rows or rows[0][1]:
        raise NotFoundError(f"no alert rule {rule_id!r}; `finpulse alerts rules` lists them")
    return Rule.model_validate_json(rows[0][0])


def save_rule(settings: Settings, rule: Rule, *, client: Any | None = None) -> Rule:
    """Create or replace a rule (by id); it is validated again, so a dict-built rule gets the same checks."""
    rule = Rule.model_validate(rule.model_dump())
    with connect(settings, client) as c:
        _write_rule(c, rule, deleted=False)
    return rule


def delete_rule(settings: Settings, rule_id: str, *, client: Any | None = None) -> None:
    """Delete a rule; its firing alerts resolve at the engine's next evaluation."""
    with connect(settings, client) as c:
        rule = get_rule(settings, rule_id, client=c)
        _write_rule(c, rule, deleted=True)


def _write_rule(client: Any, rule: Rule, *, deleted: bool) -> None:
    client.insert(
        "alert_rules",
        [
            [
                rule.id,
                rule.name,
                rule.kind,
                int(rule.enabled),
                rule.origin,
                rule.model_dump_json(),
                int(deleted),
                datetime.now(UTC),
                next_version(),
            ]
        ],
        column_names=["id", "name", "kind", "enabled", "origin", "definition", "deleted", "updated_at", "version"],
    )


# --- targets ---------------------------------------------------------------------------------------------------


def list_targets(settings: Settings, *, client: Any | None = None, skip_invalid: bool = True) -> list[WebhookTarget]:
    """The targets, secrets and Slack URLs resolved from the secrets file. ``skip_invalid``: a row that no longer
    validates (saved before URLs were checked) is left out with a warning instead of failing every target."""
    with connect(settings, client) as c:
        rows = c.query(q.TARGETS_SQL).result_rows
    out = []
    for name, url, fmt, secret, enabled, origin in rows:
        try:
            out.append(
                WebhookTarget(
                    name=name,
                    url=secret_store.resolve(settings.data_dir, url),
                    format=fmt,
                    secret=secret_store.resolve(settings.data_dir, secret) or None,
                    enabled=bool(enabled),
                    origin=origin,
                )
            )
        except ValueError as exc:
            if not skip_invalid:
                raise
            log.warning("webhook target %s is invalid and skipped: %s", name, exc)
    return out


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
        _write_target(c, target, deleted=False, data_dir=settings.data_dir)
    return target


def delete_target(settings: Settings, name: str, *, client: Any | None = None) -> None:
    with connect(settings, client) as c:
        _write_target(c, get_target(settings, name, client=c), deleted=True, data_dir=settings.data_dir)


def _write_target(client: Any, target: WebhookTarget, *, deleted: bool, data_dir: Path) -> None:
    # Only references reach ClickHouse: the secret, and a Slack URL (its path is the credential), stay in a 0600
    # file of the data dir that the analyst user cannot read.
    secret = ""
    if target.secret is not None:
        secret = secret_store.put(data_dir, f"target:{target.name}:secret", target.secret.get_secret_value())
    url = target.url
    if target.format == "slack":
        url = secret_store.put(data_dir, f"target:{target.name}:url", target.url)
    client.insert(
        "alert_targets",
        [
            [
                target.name,
                url,
                target.format,
                secret,
                int(target.enabled),
                target.origin,
                int(deleted),
                datetime.now(UTC),
                next_version(),
            ]
        ],
        column_names=["name", "url", "format", "secret", "enabled", "origin", "deleted", "updated_at", "version"],
    )


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
        return q.list_alerts(c, state=state, limit=limit)


def get_alert(settings: Settings, alert_id: str, *, client: Any | None = None) -> Alert:
    """One alert, latest version (firing or resolved), with why it fired; NotFoundError when there is none."""
    with connect(settings, client) as c:
        result = c.query(q.ALERT_SQL, parameters={"id": alert_id})
    if not result.result_rows:
        raise NotFoundError(f"no alert {alert_id!r}; the Alerts page and `finpulse alerts list` show them")
    return Alert.from_row(dict(zip(result.column_names, result.result_rows[0], strict=True)))


def acknowledge(settings: Settings, alert_id: str, by: str, *, client: Any | None = None) -> None:
    """Mark an alert as being handled (it keeps firing until its condition clears)."""
    if not by.strip():
        raise ValueError("acknowledge: say who acknowledges (by=...)")
    with connect(settings, client) as c:
        if not c.query(q.ALERT_EXISTS_SQL, parameters={"id": alert_id}).result_rows[0][0]:
            raise NotFoundError(f"no alert {alert_id!r}")
        c.insert(
            "alert_acks",
            [[alert_id, by.strip(), datetime.now(UTC)]],
            column_names=["alert_id", "acknowledged_by", "acknowledged_at"],
        )


def silence(
    settings: Settings, fingerprint_or_rule_id: str, until: datetime, by: str, *, client: Any | None = None
) -> None:
    """Stop webhook notifications of one alert series (fingerprint) or a whole rule (rule id) until ``until``
    (alerts are still evaluated, stored and published to Kafka). A time in the past lifts the silence."""
    if not fingerprint_or_rule_id.strip():
        raise ValueError("silence: name a fingerprint or a rule id")
    with connect(settings, client) as c:
        c.insert(
            "alert_silences",
            [[fingerprint_or_rule_id.strip(), utc(until), by.strip(), datetime.now(UTC), next_version()]],
            column_names=["target", "until", "created_by", "created_at", "version"],
        )


def list_silences(settings: Settings, *, now: datetime | None = None, client: Any | None = None) -> pd.DataFrame:
    """Silences in force at ``now`` (default: the current time)."""
    now_ms = int(utc(now or datetime.now(UTC)).timestamp() * 1000)
    with connect(settings, client) as c:
        return q.frame(c, q.ACTIVE_SILENCES_SQL, {"now_ms": now_ms})


def list_deliveries(settings: Settings, limit: int = 200, *, client: Any | None = None) -> pd.DataFrame:
    """The delivery log, newest first: one row per attempt (status, HTTP status, latency, idempotency key)."""
    with connect(settings, client) as c:
        return q.list_deliveries(c, limit=limit)


def pending_deliveries(settings: Settings, limit: int = 200, *, client: Any | None = None) -> pd.DataFrame:
    """Deliveries the outbox still retries (a receiver down), oldest first."""
    with connect(settings, client) as c:
        return q.pending_deliveries(c, limit=limit)


DELIVERY_COLUMNS = [
    "alert_id",
    "channel",
    "target",
    "attempt",
    "status",
    "http_status",
    "error",
    "latency_ms",
    "delivered_at",
    "delivery_id",
    "event",
]


def log_delivery(client: Any, result: DeliveryResult) -> None:
    """Append one attempt to the delivery log."""
    client.insert(
        "alert_deliveries",
        [
            [
                result.alert_id,
                result.channel,
                result.target,
                result.attempt,
                result.status,
                result.http_status,
                result.error[:2_000],
                result.latency_ms,
                datetime.now(UTC),
                result.delivery_id,
                result.event,
            ]
        ],
        column_names=DELIVERY_COLUMNS,
    )
