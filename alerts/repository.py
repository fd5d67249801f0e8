"""The alert tables' repository: the one module with SQL on the tables of migrations 0003, 0010 and 0031
(``alerts``, ``alert_acks``, ``alert_silences``, ``alert_rules``, ``alert_targets``, ``alert_state``,
``alert_outbox``, ``alert_deliveries``).

A repository in the usual sense: it turns the alert part's models (Rule, WebhookTarget, Alert, SeriesState,
OutboxEntry, DeliveryResult) into rows and back, and nothing else. Validation, "not found" answers, the engine's
state machine and delivery policy stay with their owners (store, engine, dispatcher), which call these functions
with an open client. Secrets are part of how a target is stored: only ``secret_store`` references reach
``alert_targets``, so writing and reading targets resolves them here.

Not here: the document counts the evaluator, the evidence and the backtest read (window_counts, watchlist_hits,
sample_document_ids, top_stories). Those are queries over the classified stream (documents, rollups), shared with
the dashboard, and live in ``warehouse/queries/alerts.py``.

Every table but ``alert_deliveries`` (an append-only log) and ``alerts`` (versioned by created_at) is a
ReplacingMergeTree versioned by :func:`next_version`; reads use FINAL. Statements are constant SQL with bound
parameters (``{name:Type}``); alert bookkeeping times are bound as Unix milliseconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from alerts import secret_store
from alerts.alert import ALERT_COLUMNS, Alert, utc
from alerts.outbox import OutboxEntry
from alerts.rules import Rule
from alerts.targets import DeliveryResult, WebhookTarget
from finpulse.settings import Settings

log = logging.getLogger(__name__)

# --- clients and row versions -------------------------------------------------------------------------------------

_lock = threading.Lock()
_last_version = 0


def next_version() -> int:
    """Nanoseconds since the epoch, strictly increasing in this process: the ReplacingMergeTree version, so two
    updates of one row in the same clock tick still keep the later one."""
    global _last_version
    with _lock:
        _last_version = max(time.time_ns(), _last_version + 1)
        return _last_version


def version_time() -> datetime:
    """A strictly increasing wall-clock time (ms resolution) for tables versioned by a DateTime64(3) column."""
    global _last_version
    with _lock:
        _last_version = max(time.time_ns(), _last_version + 1_000_000)
        _last_version -= _last_version % 1_000_000
        return datetime.fromtimestamp(_last_version / 1e9, UTC)


@contextmanager
def connect(settings: Settings, client: Any | None = None) -> Iterator[Any]:
    """The given client, or a fresh full-access client closed afterwards."""
    if client is not None:
        yield client
        return
    from warehouse.client import create_client

    own = create_client(settings)
    try:
        yield own
    finally:
        own.close()


def _frame(client: Any, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    df = client.query_df(sql, parameters=params)
    if len(df.columns) == 0:  # some backends return no columns for no rows; pages expect the columns
        names = [row[0] for row in client.query(f"DESCRIBE ({sql})", parameters=params).result_rows]
        df = pd.DataFrame(columns=names)
    return df


def _epoch_ms(moment: datetime) -> int:
    return int(utc(moment).timestamp() * 1000)


def _opt_utc(value: datetime | None) -> datetime | None:
    return utc(value) if value is not None else None


# --- alert_rules ---------------------------------------------------------------------------------------------------

RULES_SQL = "SELECT definition FROM alert_rules FINAL WHERE deleted = 0 ORDER BY id"
RULE_SQL = "SELECT definition, deleted FROM alert_rules FINAL WHERE id = {id:String}"
# Without FINAL and deleted = 0 on purpose: a deleted rule's id counts as stored (defaults never come back).
EXISTING_RULE_IDS_SQL = "SELECT DISTINCT id FROM alert_rules WHERE id IN {ids:Array(String)}"
_RULE_COLUMNS = ["id", "name", "kind", "enabled", "origin", "definition", "deleted", "updated_at", "version"]


def rules(client: Any) -> list[Rule]:
    """Every live rule (enabled or not), by id."""
    return [Rule.model_validate_json(row[0]) for row in client.query(RULES_SQL).result_rows]


def rule(client: Any, rule_id: str) -> Rule | None:
    """The rule's latest version; None when it was never stored or is deleted."""
    rows = client.query(RULE_SQL, parameters={"id": rule_id}).result_rows
    if not rows or rows[0][1]:
        return None
    return Rule.model_validate_json(rows[0][0])


def stored_rule_ids(client: Any, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` have any row at all, deleted ones included."""
    return {row[0] for row in client.query(EXISTING_RULE_IDS_SQL, parameters={"ids": list(ids)}).result_rows}


def write_rule(client: Any, rule: Rule, *, deleted: bool = False) -> None:
    """A new version of the rule (``deleted`` marks it gone)."""
    row = [rule.id, rule.name, rule.kind, int(rule.enabled), rule.origin, rule.model_dump_json(), int(deleted),
           datetime.now(UTC), next_version()]  # fmt: skip
    client.insert("alert_rules", [row], column_names=_RULE_COLUMNS)


# --- alert_targets -------------------------------------------------------------------------------------------------

TARGETS_SQL = (
    "SELECT name, url, format, secret, enabled, origin FROM alert_targets FINAL WHERE deleted = 0 ORDER BY name"
)
_TARGET_COLUMNS = ["name", "url", "format", "secret", "enabled", "origin", "deleted", "updated_at", "version"]


def targets(client: Any, *, data_dir: Path, skip_invalid: bool = True) -> list[WebhookTarget]:
    """The live targets by name, secrets and Slack URLs resolved from the secrets file. ``skip_invalid``: a row
    that no longer validates (saved before URLs were checked) is left out with a warning instead of failing every
    target."""
    out = []
    for name, url, fmt, secret, enabled, origin in client.query(TARGETS_SQL).result_rows:
        try:
            out.append(
                WebhookTarget(
                    name=name,
                    url=secret_store.resolve(data_dir, url),
                    format=fmt,
                    secret=secret_store.resolve(data_dir, secret) or None,
                    enabled=bool(enabled),
                    origin=origin,
                )
            )
        except ValueError as exc:
            if not skip_invalid:
                raise
            log.warning("webhook target %s is invalid and skipped: %s", name, exc)
    return out


def write_target(client: Any, target: WebhookTarget, *, data_dir: Path, deleted: bool = False) -> None:
    """A new version of the target. Only references reach ClickHouse: the secret, and a Slack URL (its path is the
    credential), stay in a 0600 file of the data dir that the analyst user cannot read."""
    secret = ""
    if target.secret is not None:
        secret = secret_store.put(data_dir, f"target:{target.name}:secret", target.secret.get_secret_value())
    url = target.url
    if target.format == "slack":
        url = secret_store.put(data_dir, f"target:{target.name}:url", target.url)
    row = [target.name, url, target.format, secret, int(target.enabled), target.origin, int(deleted),
           datetime.now(UTC), next_version()]  # fmt: skip
    client.insert("alert_targets", [row], column_names=_TARGET_COLUMNS)


# --- alerts and alert_acks -----------------------------------------------------------------------------------------

# One alert, every column (Alert.from_row reads it), for the drill-down of ``?alert=<id>``.
ALERT_SQL = "SELECT * FROM alerts FINAL WHERE id = {id:String}"
ALERT_EXISTS_SQL = "SELECT count() FROM alerts FINAL WHERE id = {id:String}"
FIRING_ALERTS_SQL = "SELECT * FROM alerts FINAL WHERE status = 'firing' AND id IN {ids:Array(String)}"
LIST_ALERTS_SQL = """
SELECT a.id AS id, a.fingerprint AS fingerprint, a.rule_id AS rule_id, a.rule_name AS rule_name, a.kind AS kind,
       a.severity AS severity,
       multiIf(a.status = 'resolved', 'resolved', k.alert_id != '', 'acknowledged', 'firing') AS state,
       a.group_by AS group_by, a.group_value AS group_value, a.scope AS scope, a.metric AS metric,
       a.value AS value, a.threshold AS threshold, a.baseline AS baseline, a.doc_count AS doc_count,
       a.window_start AS window_start, a.window_end AS window_end, a.started_at AS started_at,
       a.resolved_at AS resolved_at, a.silenced AS silenced, a.message AS message, a.sample_doc_ids AS sample_doc_ids,
       a.window_value AS window_value, a.window_measure AS window_measure, a.count AS count, a.window_s AS window_s,
       a.baseline_s AS baseline_s, a.story_count AS story_count, a.top_stories AS top_stories,
       a.dashboard_url AS dashboard_url,
       if(k.alert_id = '', NULL, k.acknowledged_by) AS acknowledged_by,
       if(k.alert_id = '', NULL, k.acknowledged_at) AS acknowledged_at
FROM (SELECT * FROM alerts FINAL) AS a
LEFT JOIN (SELECT alert_id, acknowledged_by, acknowledged_at FROM alert_acks FINAL) AS k ON k.alert_id = a.id
WHERE {state:String} = '' OR state = {state:String}
ORDER BY started_at DESC, id
LIMIT {limit:UInt32}
"""


def _alerts(result: Any) -> list[Alert]:
    return [Alert.from_row(dict(zip(result.column_names, values, strict=True))) for values in result.result_rows]


def alert(client: Any, alert_id: str) -> Alert | None:
    """One alert's latest version (firing or resolved); None when there is none."""
    found = _alerts(client.query(ALERT_SQL, parameters={"id": alert_id}))
    return found[0] if found else None


def alert_exists(client: Any, alert_id: str) -> bool:
    return bool(client.query(ALERT_EXISTS_SQL, parameters={"id": alert_id}).result_rows[0][0])


def firing_alerts(client: Any, alert_ids: Sequence[str]) -> list[Alert]:
    """The alerts among ``alert_ids`` whose latest version is still firing."""
    if not alert_ids:
        return []
    return _alerts(client.query(FIRING_ALERTS_SQL, parameters={"ids": list(alert_ids)}))


def list_alerts(client: Any, *, state: str | None = None, limit: int = 200) -> pd.DataFrame:
    """Alerts newest first with their acknowledgement; ``state`` firing | acknowledged | resolved (None = all)."""
    return _frame(client, LIST_ALERTS_SQL, {"state": state or "", "limit": limit})


def write_alerts(client: Any, alerts: Iterable[Alert]) -> None:
    """New versions of alerts (a firing, a resolution), each versioned by a fresh :func:`version_time`."""
    rows = [a.to_row(version_time()) for a in alerts]
    if rows:
        client.insert("alerts", rows, column_names=list(ALERT_COLUMNS))


def write_ack(client: Any, alert_id: str, by: str) -> None:
    client.insert(
        "alert_acks",
        [[alert_id, by, datetime.now(UTC)]],
        column_names=["alert_id", "acknowledged_by", "acknowledged_at"],
    )


# --- alert_silences ------------------------------------------------------------------------------------------------

ACTIVE_SILENCES_SQL = (
    "SELECT target, until FROM alert_silences FINAL WHERE until > fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC')"
)


def active_silences(client: Any, now: datetime) -> pd.DataFrame:
    """Silences in force at ``now``: target (a fingerprint or a rule id) and until."""
    return _frame(client, ACTIVE_SILENCES_SQL, {"now_ms": _epoch_ms(now)})


def silenced(client: Any, now: datetime) -> set[str]:
    """The fingerprints and rule ids silenced at ``now``."""
    rows = client.query(ACTIVE_SILENCES_SQL, parameters={"now_ms": _epoch_ms(now)}).result_rows
    return {row[0] for row in rows}


def write_silence(client: Any, target: str, until: datetime, by: str) -> None:
    """Silence ``target`` until ``until`` (a time in the past lifts it)."""
    client.insert(
        "alert_silences",
        [[target, utc(until), by, datetime.now(UTC), next_version()]],
        column_names=["target", "until", "created_by", "created_at", "version"],
    )


# --- alert_state: the engine's series --------------------------------------------------------------------------

SeriesPhase = Literal["inactive", "pending", "firing"]
STATE_SQL = (
    "SELECT fingerprint, rule_id, group_value, state, pending_since, alert_id, fired_at, resolved_at "
    "FROM alert_state FINAL"
)
_STATE_COLUMNS = [
    "fingerprint", "rule_id", "group_value", "state", "pending_since", "alert_id", "fired_at", "resolved_at", "version",
]  # fmt: skip


@dataclass(frozen=True)
class SeriesState:
    """One alert series (fingerprint) as the engine tracks it: a row of alert_state."""

    fingerprint: str
    rule_id: str
    group_value: str
    state: SeriesPhase = "inactive"
    pending_since: datetime | None = None
    alert_id: str = ""
    fired_at: datetime | None = None
    resolved_at: datetime | None = None


def series_states(client: Any) -> list[SeriesState]:
    """Every series' latest state."""
    return [
        SeriesState(fp, rule_id, group, state, _opt_utc(pending), aid, _opt_utc(fired), _opt_utc(resolved))
        for fp, rule_id, group, state, pending, aid, fired, resolved in client.query(STATE_SQL).result_rows
    ]


def write_series_states(client: Any, states: Iterable[SeriesState]) -> None:
    rows = [
        [s.fingerprint, s.rule_id, s.group_value, s.state, s.pending_since, s.alert_id, s.fired_at, s.resolved_at,
         next_version()]
        for s in states
    ]  # fmt: skip
    if rows:
        client.insert("alert_state", rows, column_names=_STATE_COLUMNS)


# --- alert_outbox ----------------------------------------------------------------------------------------------

_OUTBOX_COLUMNS = [
    "delivery_id", "alert_id", "event", "channel", "target", "payload", "status", "attempts", "next_attempt_at",
    "last_error", "created_at", "version",
]  # fmt: skip
OUTBOX_PENDING_SQL = (
    "SELECT delivery_id, alert_id, event, channel, target, payload, status, attempts, next_attempt_at, last_error, "
    "created_at FROM alert_outbox FINAL WHERE status = 'pending' ORDER BY created_at, delivery_id "
    "LIMIT {limit:UInt32}"
)
PENDING_DELIVERIES_SQL = """
SELECT delivery_id, alert_id, event, channel, target, attempts, next_attempt_at, last_error, created_at
FROM alert_outbox FINAL
WHERE status = 'pending'
ORDER BY created_at
LIMIT {limit:UInt32}
"""


def write_outbox(client: Any, entries: Sequence[OutboxEntry]) -> None:
    """Insert new entries or new versions of existing ones (same delivery_id, newer version)."""
    if not entries:
        return
    rows = [
        [
            e.delivery_id, e.alert_id, e.event, e.channel, e.target, e.payload, e.status, e.attempts,
            e.next_attempt_at, e.last_error[:2_000], e.created_at, next_version(),
        ]
        for e in entries
    ]  # fmt: skip
    client.insert("alert_outbox", rows, column_names=_OUTBOX_COLUMNS)


def pending_outbox(client: Any, limit: int = 1_000) -> list[OutboxEntry]:
    """Pending entries, oldest first (due or not: the dispatcher keeps each stream in order)."""
    rows = client.query(OUTBOX_PENDING_SQL, parameters={"limit": limit}).result_rows
    return [
        OutboxEntry(
            delivery_id=r[0], alert_id=r[1], event=r[2], channel=r[3], target=r[4], payload=r[5], status=r[6],
            attempts=int(r[7]), next_attempt_at=utc(r[8]), last_error=r[9], created_at=utc(r[10]),
        )
        for r in rows
    ]  # fmt: skip


def pending_deliveries(client: Any, *, limit: int = 200) -> pd.DataFrame:
    """Deliveries still waiting in the outbox (a receiver down, Kafka unreachable), oldest first, for pages."""
    return _frame(client, PENDING_DELIVERIES_SQL, {"limit": limit})


# --- alert_deliveries: the delivery log ------------------------------------------------------------------------

DELIVERY_COLUMNS = [
    "alert_id", "channel", "target", "attempt", "status", "http_status", "error", "latency_ms", "delivered_at",
    "delivery_id", "event",
]  # fmt: skip
LIST_DELIVERIES_SQL = """
SELECT delivered_at, alert_id, event, channel, target, delivery_id, attempt, status, http_status, error, latency_ms
FROM alert_deliveries
ORDER BY delivered_at DESC
LIMIT {limit:UInt32}
"""


def log_delivery(client: Any, result: DeliveryResult) -> None:
    """Append one attempt to the delivery log."""
    row = [result.alert_id, result.channel, result.target, result.attempt, result.status, result.http_status,
           result.error[:2_000], result.latency_ms, datetime.now(UTC), result.delivery_id, result.event]  # fmt: skip
    client.insert("alert_deliveries", [row], column_names=DELIVERY_COLUMNS)


def list_deliveries(client: Any, *, limit: int = 200) -> pd.DataFrame:
    """Delivery attempts newest first (one row per attempt: status, HTTP status, latency)."""
    return _frame(client, LIST_DELIVERIES_SQL, {"limit": limit})
