"""The delivery outbox in ClickHouse: every notification (alert event x channel x target) is written here before
anything is sent, and stays ``pending`` until delivered or given up, so deliveries survive restarts and a
receiver that is down gets its alerts once it is back."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from alerts.db import next_version

OutboxStatus = Literal["pending", "delivered", "gave_up"]
_EPOCH = datetime.fromtimestamp(0, UTC)
_COLUMNS = [
    "delivery_id", "alert_id", "event", "channel", "target", "payload", "status", "attempts", "next_attempt_at",
    "last_error", "created_at", "version",
]  # fmt: skip
_PENDING_SQL = (
    "SELECT delivery_id, alert_id, event, channel, target, payload, status, attempts, next_attempt_at, last_error, "
    "created_at FROM alert_outbox FINAL WHERE status = 'pending' ORDER BY created_at, delivery_id "
    "LIMIT {limit:UInt32}"
)


def delivery_id(alert_id: str, event: str, channel: str, target: str) -> str:
    """The idempotency key: one per alert event and destination, the same on every retry."""
    return hashlib.sha256(f"{alert_id}\x1f{event}\x1f{channel}\x1f{target}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class OutboxEntry:
    delivery_id: str
    alert_id: str
    event: str
    channel: Literal["webhook", "kafka"]
    target: str
    payload: str  # the Alert as JSON
    status: OutboxStatus = "pending"
    attempts: int = 0
    next_attempt_at: datetime = _EPOCH
    last_error: str = ""
    created_at: datetime = _EPOCH

    @classmethod
    def new(
        cls, *, alert_id: str, event: str, channel: Literal["webhook", "kafka"], target: str, payload: str
    ) -> OutboxEntry:
        now = datetime.now(UTC)
        return cls(
            delivery_id=delivery_id(alert_id, event, channel, target),
            alert_id=alert_id,
            event=event,
            channel=channel,
            target=target,
            payload=payload,
            next_attempt_at=now,
            created_at=now,
        )

    @property
    def stream(self) -> tuple[str, str, str]:
        """Deliveries of one alert to one destination go out in order (a resolve never overtakes its firing)."""
        return self.alert_id, self.channel, self.target

    def updated(self, **changes: Any) -> OutboxEntry:
        return replace(self, **changes)


def write(client: Any, entries: list[OutboxEntry]) -> None:
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
    client.insert("alert_outbox", rows, column_names=_COLUMNS)


def pending(client: Any, limit: int = 1_000) -> list[OutboxEntry]:
    """Pending entries, oldest first (due or not: the dispatcher keeps each stream in order)."""
    rows = client.query(_PENDING_SQL, parameters={"limit": limit}).result_rows
    return [
        OutboxEntry(
            delivery_id=r[0], alert_id=r[1], event=r[2], channel=r[3], target=r[4], payload=r[5], status=r[6],
            attempts=int(r[7]), next_attempt_at=_utc(r[8]), last_error=r[9], created_at=_utc(r[10]),
        )
        for r in rows
    ]  # fmt: skip


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
