"""Prometheus metrics of the alert engine, in their own registry (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class AlertMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.evaluations = Counter(
            "finpulse_alert_evaluations", "Rule evaluations, by rule kind.", ["kind"], registry=r
        )
        self.evaluation_errors = Counter(
            "finpulse_alert_evaluation_errors", "Rule evaluations that raised, by rule kind.", ["kind"], registry=r
        )
        self.tick_seconds = Histogram(
            "finpulse_alert_tick_seconds",
            "Time to evaluate every rule once.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.transitions = Counter(
            "finpulse_alert_transitions",
            "State changes of alert series (pending, firing, resolved...).",
            ["to"],
            registry=r,
        )
        self.firing = Gauge("finpulse_alerts_firing", "Alert series firing now.", registry=r)
        self.rules = Gauge("finpulse_alert_rules", "Enabled rules.", registry=r)
        self.deliveries = Counter(
            "finpulse_alert_delivery_attempts",
            "Delivery attempts, by channel and outcome.",
            ["channel", "status"],
            registry=r,
        )
        self.gave_up = Counter(
            "finpulse_alert_deliveries_gave_up", "Deliveries abandoned after the last attempt.", ["channel"], registry=r
        )
        self.delivery_latency = Histogram(
            "finpulse_alert_delivery_seconds",
            "Latency of one delivery attempt.",
            ["channel"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.outbox_pending = Gauge("finpulse_alert_outbox_pending", "Deliveries waiting in the outbox.", registry=r)
        self.last_tick = Gauge("finpulse_alert_last_tick_timestamp", "Unix time of the last complete tick.", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
