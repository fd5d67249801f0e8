"""The delivery outbox: every notification (alert event x channel x target) is written to ``alert_outbox`` before
anything is sent, and stays ``pending`` until delivered or given up, so deliveries survive restarts and a
receiver that is down gets its alerts once it is back.

This module is the entry and its idempotency key; the rows are read and written by ``alerts.repository``
(``write_outbox``, ``pending_outbox``), the one module with SQL on the alert tables."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

OutboxStatus = Literal["pending", "delivered", "gave_up"]
_EPOCH = datetime.fromtimestamp(0, UTC)


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
