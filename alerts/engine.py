"""The alert engine: evaluates every enabled rule, moves each alert series (fingerprint) through
inactive -> pending -> firing -> resolved, and writes alerts and their notifications.

Per fingerprint:
  * condition true while inactive: pending (or firing at once when ``pending_s`` is 0) - unless the series resolved
    less than ``cooldown_s`` ago, which keeps a flapping condition quiet;
  * pending for ``pending_s``: fires - a new alert, stored, queued for Kafka and the rule's webhook targets
    (webhooks skipped while a silence covers the fingerprint or rule);
  * condition false: a pending series goes back to inactive silently; a firing one resolves (stored, notified).
A rule that fails to evaluate keeps its series as they are (no resolution on an error); a deleted or disabled
rule resolves its firing alerts. The state is persisted (alert_state), so a restart neither re-fires nor forgets.

``tick(now)`` takes the clock as an argument: tests drive hours of alert history in milliseconds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from alerts import repository as repo
from alerts.alert import Alert, alert_id, drilldown_url, utc
from alerts.evaluator import Observation, evaluate, sample_ids
from alerts.evidence import stories_behind
from alerts.metrics import AlertMetrics
from alerts.outbox import OutboxEntry
from alerts.repository import SeriesPhase, SeriesState
from alerts.rules import Rule
from finpulse.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["Engine", "Event", "SeriesPhase", "SeriesState"]


@dataclass(frozen=True)
class Event:
    """A notification the tick produced: an alert that fired or resolved."""

    kind: Literal["firing", "resolved"]
    alert: Alert


class Engine:
    def __init__(self, settings: Settings, client: Any, *, metrics: AlertMetrics | None = None) -> None:
        self.settings = settings
        self.client = client
        self.metrics = metrics or AlertMetrics()
        self.states: dict[str, SeriesState] = {}
        self.alerts: dict[str, Alert] = {}  # firing alerts by fingerprint
        self.last_tick_ok: float | None = None
        self.last_error: str = ""
        self._load()

    # --- persistence ---------------------------------------------------------------------------------------------
    def _load(self) -> None:
        self.states = {s.fingerprint: s for s in repo.series_states(self.client)}
        firing_ids = [s.alert_id for s in self.states.values() if s.state == "firing"]
        self.alerts = {a.fingerprint: a for a in repo.firing_alerts(self.client, firing_ids)}
        # A firing state whose alert row is missing cannot resolve with a payload; start that series afresh.
        for fp, state in list(self.states.items()):
            if state.state == "firing" and fp not in self.alerts:
                log.warning("firing alert not found; series reset", extra={"fingerprint": fp})
                self.states[fp] = replace(state, state="inactive", alert_id="")
        self.metrics.firing.set(len(self.alerts))

    # --- one evaluation round ------------------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> list[Event]:
        """Evaluate every enabled rule at ``now`` (default: the current time); returns the notifications made."""
        now = utc(now or datetime.now(UTC))
        started = time.perf_counter()
        rules = [r for r in repo.rules(self.client) if r.enabled]
        self.metrics.rules.set(len(rules))
        silenced = repo.silenced(self.client, now)
        changed: dict[str, SeriesState] = {}
        events: list[Event] = []
        failed = 0
        for rule in rules:
            try:
                observations = evaluate(self.client, rule, now)
                self.metrics.evaluations.labels(kind=rule.kind).inc()
            except Exception as exc:  # one broken rule (or a query timeout) must not stop the others
                failed += 1
                self.metrics.evaluation_errors.labels(kind=rule.kind).inc()
                self.last_error = f"rule {rule.id}: {type(exc).__name__}: {exc}"
                log.exception("rule evaluation failed", extra={"rule_id": rule.id, "kind": rule.kind})
                continue
            self._step_rule(rule, observations, now, silenced, changed, events)
        live = {r.id for r in rules}
        for fp, state in list(self.states.items()):
            if state.rule_id not in live and state.state != "inactive":
                self._clear(fp, state, None, now, changed, events, reason="rule deleted or disabled")
        self._persist(changed, events, {r.id: r for r in rules})
        self.metrics.firing.set(len(self.alerts))
        self.metrics.tick_seconds.observe(time.perf_counter() - started)
        if not failed:
            self.last_tick_ok = time.time()
            self.last_error = ""
            self.metrics.last_tick.set(self.last_tick_ok)
        return events

    def _step_rule(
        self,
        rule: Rule,
        observations: dict[str, Observation],
        now: datetime,
        silenced: set[str],
        changed: dict[str, SeriesState],
        events: list[Event],
    ) -> None:
        active = {s.group_value for s in self.states.values() if s.rule_id == rule.id and s.state != "inactive"}
        for group in sorted(set(observations) | active):
            obs = observations.get(group)
            fp = rule.fingerprint(group)
            state = self.states.get(fp) or SeriesState(fp, rule.id, group)
            if obs is None or not obs.fires:
                self._clear(fp, state, obs, now, changed, events)
                continue
            if state.state == "inactive":
                if state.resolved_at is not None and now - state.resolved_at < timedelta(seconds=rule.cooldown_s):
                    continue  # cooldown: the series resolved too recently to fire again
                state = replace(state, state="pending", pending_since=now)
                self._set(state, changed, "pending")
            pending_for = now - state.pending_since if state.pending_since is not None else None
            if (
                state.state == "pending"
                and pending_for is not None
                and pending_for >= timedelta(seconds=rule.pending_s)
            ):
                self._fire(rule, state, obs, now, silenced, changed, events)

    def _fire(
        self,
        rule: Rule,
        state: SeriesState,
        obs: Observation,
        now: datetime,
        silenced: set[str],
        changed: dict[str, SeriesState],
        events: list[Event],
    ) -> None:
        fp = state.fingerprint
        aid = alert_id(fp, now)
        evidence = stories_behind(self.client, rule, obs, limit=self.settings.alerts_top_stories)
        alert = Alert(
            id=aid,
            fingerprint=fp,
            rule_id=rule.id,
            rule_name=rule.name,
            kind=rule.kind,
            severity=rule.severity,
            group_by="watch" if rule.kind == "watchlist" else rule.group_by,
            group_value=obs.group,
            scope=rule.scope.model_dump(),
            metric=obs.metric,
            value=obs.value,
            threshold=obs.threshold,
            baseline=obs.baseline,
            doc_count=obs.doc_count,
            window_start=obs.window_start,
            window_end=obs.window_end,
            started_at=now,
            silenced=fp in silenced or rule.id in silenced,
            message=obs.message,
            sample_doc_ids=sample_ids(self.client, rule, obs),
            window_value=obs.window_value,
            window_measure=obs.measure,
            count=rule.count,
            window_s=rule.window_s,
            baseline_s=rule.baseline_s if rule.kind in ("surge", "volume_spike", "sentiment_drop") else None,
            story_count=evidence.story_count,
            top_stories=evidence.top_stories,
            dashboard_url=drilldown_url(self.settings.dashboard_public_url, aid),
            entity=evidence.entity,
            entity_relevance=evidence.entity_relevance,
            entity_basis=evidence.entity_basis,
        )
        self.alerts[fp] = alert
        self._set(
            replace(state, state="firing", alert_id=alert.id, fired_at=now, pending_since=None), changed, "firing"
        )
        events.append(Event("firing", alert))
        log.warning(
            "alert firing",
            extra={"rule_id": rule.id, "fingerprint": fp, "group": obs.group, "value": obs.value, "alert_id": alert.id},
        )

    def _clear(
        self,
        fp: str,
        state: SeriesState,
        obs: Observation | None,
        now: datetime,
        changed: dict[str, SeriesState],
        events: list[Event],
        reason: str = "",
    ) -> None:
        if state.state == "pending":
            self._set(replace(state, state="inactive", pending_since=None), changed, "inactive")
        elif state.state == "firing":
            alert = self.alerts.pop(fp, None)
            self._set(replace(state, state="inactive", resolved_at=now), changed, "resolved")
            if alert is not None:
                detail = reason or (obs.message if obs is not None else "no matching documents in the window")
                resolved = alert.model_copy(
                    update={"status": "resolved", "resolved_at": now, "message": f"resolved: {detail}"}
                )
                events.append(Event("resolved", resolved))
                log.info("alert resolved", extra={"rule_id": state.rule_id, "fingerprint": fp, "alert_id": alert.id})

    def _set(self, state: SeriesState, changed: dict[str, SeriesState], transition: str) -> None:
        self.states[state.fingerprint] = state
        changed[state.fingerprint] = state
        self.metrics.transitions.labels(to=transition).inc()

    def _persist(self, changed: dict[str, SeriesState], events: list[Event], rules: dict[str, Rule]) -> None:
        """Alerts and their outbox entries first, then the state: a crash in between re-evaluates, never loses."""
        if events:
            repo.write_alerts(self.client, [e.alert for e in events])
            repo.write_outbox(self.client, self._notifications(events, rules))
        repo.write_series_states(self.client, changed.values())

    def _notifications(self, events: list[Event], rules: dict[str, Rule]) -> list[OutboxEntry]:
        targets = [t for t in repo.targets(self.client, data_dir=self.settings.data_dir) if t.enabled]
        entries: list[OutboxEntry] = []
        for event in events:
            alert = event.alert
            payload = alert.model_dump_json()
            entries.append(
                OutboxEntry.new(
                    alert_id=alert.id,
                    event=event.kind,
                    channel="kafka",
                    target=self.settings.topic_alerts,
                    payload=payload,
                )
            )
            if alert.silenced:
                continue  # silenced at firing: neither the firing nor its resolution go to webhooks
            rule = rules.get(alert.rule_id)
            wanted = set(rule.targets) if rule is not None and rule.targets else None
            for target in targets:
                if wanted is None or target.name in wanted:
                    entries.append(
                        OutboxEntry.new(
                            alert_id=alert.id, event=event.kind, channel="webhook", target=target.name, payload=payload
                        )
                    )
        return entries
