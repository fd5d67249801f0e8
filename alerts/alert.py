"""An alert: one firing of one fingerprint (rule + group value), from firing to resolved, with why it fired: its
numbers (the window's measured figure against the baseline and threshold, the volume), the stories that
contributed most, and a link to its drill-down on the dashboard."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from finpulse.timeutil import as_utc

utc = as_utc  # the name the alert modules know it by

AlertStatus = Literal["firing", "resolved"]
# The alerts table's columns this model writes (the table is migrations 0003 + 0010 + 0031; 0050 gave group_by and
# group_value the model's names, they were scope_kind and scope_value).
ALERT_COLUMNS = (
    "id", "fingerprint", "rule_id", "rule_name", "kind", "severity", "group_by", "group_value", "metric",
    "window_start", "window_end", "value", "threshold", "baseline", "doc_count", "sample_doc_ids", "message",
    "created_at", "status", "started_at", "resolved_at", "silenced", "scope",
    "window_value", "window_measure", "count", "window_s", "baseline_s", "story_count", "top_stories", "dashboard_url",
    "entity", "entity_relevance", "entity_basis",  # migration 0040
)  # fmt: skip
_BASIS_TEXT = {
    "entity": "entity-level sentiment",
    "document": "document-level sentiment",
    "mixed": "entity-level sentiment where scored, document-level otherwise",
}
# Metrics whose figures are shares (shown as percentages).
_SHARE_METRICS = frozenset({"negative_share", "negative_share_z"})


def alert_id(fingerprint: str, started_at: datetime) -> str:
    """Deterministic: the same firing written twice (a retried tick) stays one alert."""
    return hashlib.sha256(f"{fingerprint}\x1f{started_at.isoformat()}".encode()).hexdigest()[:24]


class StoryRef(BaseModel):
    """One story behind an alert: its first report in the alert's window, and how many copies the window holds."""

    model_config = ConfigDict(frozen=True)

    story_id: str
    title: str
    source: str
    url: str | None = None
    published_at: datetime
    sentiment: str | None = None
    sentiment_score: float | None = Field(None, description="mean over the story's copies in the window")
    copies: int = Field(1, ge=1, description="documents of this story in the window (syndicated copies)")
    # A ticker-scoped alert: the sentiment toward its entity in this story (entity model, issue 14); null where the
    # story's documents were only labelled as a whole.
    entity_sentiment: str | None = Field(None, description="sentiment toward the alert's entity (first report)")
    entity_sentiment_score: float | None = Field(None, description="mean P(pos) - P(neg) toward the entity")
    entity_relevance: float | None = Field(None, description="mean relevance of the entity in the story, 0..1")


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
    # Why it fired (migration 0031; rows written before it load with these defaults).
    window_value: float | None = Field(
        None, description="the window's own measured figure (e.g. 12 negative stories) where value is a z-score/drop"
    )
    window_measure: str = Field("", description="what window_value and baseline count, e.g. 'negative stories'")
    count: str = Field("documents", description="the rule's unit: stories or documents (every row before 0031)")
    window_s: int = Field(0, ge=0, description="the window's length; 0 = window_end - window_start")
    baseline_s: int | None = Field(None, description="the trailing baseline's length (baseline rules only)")
    story_count: int = Field(0, ge=0, description="distinct stories among the documents behind the alert")
    top_stories: list[StoryRef] = Field(default_factory=list, description="the stories that contributed most")
    dashboard_url: str = Field("", description="the alert's drill-down on the dashboard")
    # Ticker-scoped alerts (grouped by ticker, scoped to one, or a watched ticker; migration 0040).
    entity: str = Field("", description="the ticker the alert is about ('' when not ticker-scoped)")
    entity_relevance: float | None = Field(
        None, description="mean relevance (0..1) of the entity in the documents behind the alert that it was scored in"
    )
    entity_basis: str = Field(
        "", description="which sentiment was counted: entity | document | mixed ('' when not ticker-scoped)"
    )

    @property
    def window_seconds(self) -> int:
        return self.window_s or int((self.window_end - self.window_start).total_seconds())

    def numbers(self) -> str:
        """The numbers in one line: the window's figure against the baseline and threshold, and the volume, e.g.
        '12 negative stories in 15 min vs baseline mean 2.1 (6 h); negative_count_z = 4.2, threshold 3; ...'."""
        share = self.metric in _SHARE_METRICS

        def fig(x: float) -> str:
            return f"{x:.0%}" if share else f"{x:.3g}"

        minutes = self.window_seconds // 60
        mean = " mean" if self.metric.endswith("_z") else ""
        baseline = ""
        if self.baseline is not None:
            span = f" ({_span(self.baseline_s)})" if self.baseline_s else ""
            baseline = f"baseline{mean} {fig(self.baseline)}{span}"
        if self.window_value is not None:  # value is derived from it (z-score, drop): both, and the threshold
            line = f"{self.window_measure or 'window'}: {fig(self.window_value)} in {minutes} min"
            line += f" vs {baseline}" if baseline else ""
            line += f"; {self.metric} = {self.value:.3g}, threshold {self.threshold:g}"
        elif self.metric.endswith(("_z", "_drop")):  # stored before window_value: only the derived value is known
            line = f"{self.metric} = {self.value:.3g} in {minutes} min (threshold {self.threshold:g})"
            line += f", {baseline}" if baseline else ""
        else:
            line = f"{self.window_measure or self.metric}: {fig(self.value)} in {minutes} min"
            line += f" vs {baseline}" if baseline else ""
            line += f" (threshold {fig(self.threshold)})"
        line += f"; volume {self.doc_count} {self.count}"
        if self.story_count:
            line += f", {self.story_count} contributing {'story' if self.story_count == 1 else 'stories'}"
        if self.entity:
            line += f"; {self.entity_line()}"
        return line

    def entity_line(self) -> str:
        """Who the alert is about, e.g. 'entity GLOBEX, relevance 0.62 (entity-level sentiment)'."""
        if not self.entity:
            return ""
        relevance = f", relevance {self.entity_relevance:.2f}" if self.entity_relevance is not None else ""
        basis = _BASIS_TEXT.get(self.entity_basis, "")
        return f"entity {self.entity}{relevance}" + (f" ({basis})" if basis else "")

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
            self.window_value, self.window_measure, self.count, self.window_seconds, self.baseline_s, self.story_count,
            json.dumps([story.model_dump(mode="json") for story in self.top_stories], ensure_ascii=False),
            self.dashboard_url, self.entity, self.entity_relevance, self.entity_basis,
        ]  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Alert:
        """The alert of an alerts-table row (column name -> value). Columns a row predates get their defaults."""

        def opt_utc(value: datetime | None) -> datetime | None:
            return utc(value) if value is not None else None

        return cls(
            id=row["id"],
            fingerprint=row["fingerprint"],
            rule_id=row["rule_id"],
            rule_name=row["rule_name"],
            kind=row["kind"],
            severity=row["severity"],
            status=row["status"],
            group_by=row["group_by"],
            group_value=row["group_value"],
            scope=json.loads(row["scope"] or "{}"),
            metric=row["metric"],
            value=row["value"],
            threshold=row["threshold"],
            baseline=row["baseline"],
            doc_count=row["doc_count"],
            window_start=utc(row["window_start"]),
            window_end=utc(row["window_end"]),
            started_at=utc(row["started_at"]),
            resolved_at=opt_utc(row["resolved_at"]),
            silenced=bool(row["silenced"]),
            message=row["message"],
            sample_doc_ids=list(row["sample_doc_ids"]),
            window_value=row.get("window_value"),
            window_measure=row.get("window_measure") or "",
            count=row.get("count") or "documents",
            window_s=row.get("window_s") or 0,
            baseline_s=row.get("baseline_s"),
            story_count=row.get("story_count") or 0,
            top_stories=[StoryRef.model_validate(item) for item in json.loads(row.get("top_stories") or "[]")],
            dashboard_url=row.get("dashboard_url") or "",
            entity=row.get("entity") or "",
            entity_relevance=row.get("entity_relevance"),
            entity_basis=row.get("entity_basis") or "",
        )

    def summary(self) -> str:
        """One line for chat messages and logs."""
        what = f"{self.group_by}={self.group_value}" if self.group_value else "all"
        state = "RESOLVED" if self.status == "resolved" else self.severity.upper()
        return f"[{state}] {self.rule_name} ({what}): {self.message}"


def drilldown_url(public_url: str, alert_id: str) -> str:
    """The dashboard's Alerts page opened on one alert (the page reads the ``alert`` query parameter)."""
    return f"{public_url.rstrip('/')}/alerts?alert={quote(alert_id, safe='')}"


def _span(seconds: int) -> str:
    return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds // 60} min"
