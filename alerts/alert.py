"""An alert: one firing of one fingerprint (rule + group value), from firing to resolved."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AlertStatus = Literal["firing", "resolved"]
# The alerts table's columns this model writes (the table is migrations 0003 + 0010).
ALERT_COLUMNS = (
    "id", "fingerprint", "rule_id", "rule_name", "kind", "severity", "scope_kind", "scope_value", "metric",
    "window_start", "window_end", "value", "threshold", "baseline", "doc_count", "sample_doc_ids", "message",
    "created_at", "status", "started_at", "resolved_at", "silenced", "scope",
)  # fmt: skip


def alert_id(fingerprint: str, started_at: datetime) -> str:
    """Deterministic: the same firing written twice (a retried tick) stays one alert."""
    return hashlib.sha256(f"{fingerprint}\x1f{started_at.isoformat()}".encode()).hexdigest()[:24]


class Alert(BaseModel):
    """The alert as stored, published to Kafka and sent in the generic webhook format."""

    model_config = ConfigDict(frozen=True)

    id: str
    fingerprint: str
    rule_id: str
    rule_name: str
    kind: str
    severity: str
    status: AlertStatus = "firing"
    group_by: str = Field("none", description="the rule's group_by dimension (watch for watchlist terms)")
    group_value: str = ""
    scope: dict[str, str | None] = Field(default_factory=dict)
    metric: str
    value: float
    threshold: float
    baseline: float | None = None
    doc_count: int = 0
    window_start: datetime
    window_end: datetime
    started_at: datetime
    resolved_at: datetime | None = None
    silenced: bool = False
    message: str = ""
    sample_doc_ids: list[str] = Field(default_factory=list)

    @property
    def labels(self) -> dict[str, str]:
        """Alertmanager-style labels: what identifies the series (used by the alertmanager format)."""
        labels = {"alertname": self.rule_name, "rule_id": self.rule_id, "kind": self.kind, "severity": self.severity}
        labels.update({k: v for k, v in self.scope.items() if v})
        if self.group_value:
            labels[self.group_by] = self.group_value
        return labels

    def to_row(self, version_time: datetime) -> list[Any]:
        """A row of the alerts table; ``version_time`` (created_at) orders the versions of one alert."""
        return [
            self.id, self.fingerprint, self.rule_id, self.rule_name, self.kind, self.severity, self.group_by,
            self.group_value, self.metric, self.window_start, self.window_end, float(self.value),
            float(self.threshold), self.baseline, self.doc_count, list(self.sample_doc_ids), self.message,
            version_time, self.status, self.started_at, self.resolved_at, int(self.silenced),
            json.dumps(self.scope, sort_keys=True),
        ]  # fmt: skip

    def summary(self) -> str:
        """One line for chat messages and logs."""
        what = f"{self.group_by}={self.group_value}" if self.group_value else "all"
        state = "RESOLVED" if self.status == "resolved" else self.severity.upper()
        return f"[{state}] {self.rule_name} ({what}): {self.message}"


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
