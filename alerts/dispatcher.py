"""Sends what the outbox holds: webhooks and Kafka, with capped exponential backoff and jitter, in order per
(alert, destination), logging every attempt in ``alert_deliveries``.

This is the one place that owns delivery retry policy: a failure the single attempt marks retryable (transport
errors, 408/425/429/5xx, Kafka errors) is retried after ``base * 2**(n-1)`` seconds (capped at
``alerts_retry_max_s``, half of it jittered) up to ``alerts_max_attempts``; anything else, and the last attempt,
is logged as ``gave_up`` with an ERROR line - never dropped silently.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from alerts import repository as repo
from alerts.alert import Alert
from alerts.metrics import AlertMetrics
from alerts.outbox import OutboxEntry
from alerts.publisher import KafkaPublisher
from alerts.targets import DeliveryResult
from alerts.webhooks import post_once
from finpulse.settings import Settings

log = logging.getLogger(__name__)


def backoff_s(settings: Settings, attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Delay after failed attempt ``attempt`` (1-based): exponential, capped, the upper half jittered."""
    delay = min(settings.alerts_retry_max_s, settings.alerts_retry_base_s * 2 ** (attempt - 1))
    return delay / 2 + rng() * delay / 2


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        client: Any,
        *,
        publisher: KafkaPublisher | None = None,
        metrics: AlertMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.client = client
        self.publisher = publisher or KafkaPublisher(settings)
        self.metrics = metrics or AlertMetrics()
        self.clock = clock  # wall clock: deliveries are real I/O, unlike rule evaluation
        self.http = httpx.Client(timeout=settings.alerts_webhook_timeout_s)

    def close(self) -> None:
        self.http.close()
        self.publisher.close()

    def run_once(self) -> int:
        """Attempt every due delivery once; returns how many attempts were made.

        Destinations are worked on side by side (up to ``alerts_webhook_parallel_targets`` threads), each one's
        deliveries in order, one at a time and under the per-request timeout: a slow or broken target delays only
        its own deliveries. The outbox and the delivery log are written from this thread afterwards."""
        entries = repo.pending_outbox(self.client)
        self.metrics.outbox_pending.set(len(entries))
        if not entries:
            return 0
        targets = {t.name: t for t in repo.targets(self.client, data_dir=self.settings.data_dir, skip_invalid=True)}
        groups: dict[tuple[str, str], list[OutboxEntry]] = {}
        for entry in entries:
            groups.setdefault((entry.channel, entry.target), []).append(entry)
        workers = max(1, min(len(groups), self.settings.alerts_webhook_parallel_targets))
        with ThreadPoolExecutor(workers, thread_name_prefix="deliver") as pool:
            done = list(pool.map(lambda group: self._deliver_group(group, targets), groups.values()))
        attempts = 0
        for outcomes in done:
            for updated, result in outcomes:
                attempts += 1
                repo.write_outbox(self.client, [updated])
                status = result if updated.status != "gave_up" else result.model_copy(update={"status": "gave_up"})
                repo.log_delivery(self.client, status)
        return attempts

    def _deliver_group(
        self, entries: list[OutboxEntry], targets: dict[str, Any]
    ) -> list[tuple[OutboxEntry, DeliveryResult]]:
        """One destination's due deliveries, in order; a stream stops at its first undelivered entry."""
        blocked: set[tuple[str, str, str]] = set()
        out = []
        for entry in entries:
            if entry.stream in blocked:
                continue
            if entry.next_attempt_at > self.clock():
                blocked.add(entry.stream)
                continue
            try:
                result = self._attempt(entry, targets)
            except Exception as exc:  # one target's failure never stops deliveries to the others
                log.warning("delivery attempt raised", exc_info=True, extra={"target": entry.target})
                result = DeliveryResult(
                    target=entry.target,
                    delivery_id=entry.delivery_id,
                    alert_id=entry.alert_id,
                    event=entry.event,
                    channel=entry.channel,
                    attempt=entry.attempts + 1,
                    status="failed",
                    error=f"{type(exc).__name__}: {exc}"[:500],
                    retryable=True,
                )
            updated = self._settle(entry, result)
            out.append((updated, result))
            if updated.status != "delivered":
                blocked.add(entry.stream)
        return out

    def _attempt(self, entry: OutboxEntry, targets: dict[str, Any]) -> DeliveryResult:
        alert = Alert.model_validate_json(entry.payload)
        attempt = entry.attempts + 1
        if entry.channel == "kafka":
            return self.publisher.publish(alert, event=entry.event, delivery_id=entry.delivery_id, attempt=attempt)
        target = targets.get(entry.target)
        if target is None or not target.enabled:
            return DeliveryResult(
                target=entry.target,
                delivery_id=entry.delivery_id,
                alert_id=entry.alert_id,
                event=entry.event,
                attempt=attempt,
                status="failed",
                error="target deleted or disabled",
            )
        return post_once(
            self.settings,
            target,
            alert,
            event=entry.event,
            delivery_id=entry.delivery_id,
            attempt=attempt,
            http=self.http,
        )

    def _settle(self, entry: OutboxEntry, result: DeliveryResult) -> OutboxEntry:
        attempt = entry.attempts + 1
        fields = {"delivery_id": entry.delivery_id, "channel": entry.channel, "target": entry.target,
                  "alert_id": entry.alert_id, "event": entry.event, "attempt": attempt}  # fmt: skip
        self.metrics.deliveries.labels(channel=entry.channel, status=result.status).inc()
        self.metrics.delivery_latency.labels(channel=entry.channel).observe(result.latency_ms / 1000)
        if result.ok:
            log.info("alert delivered", extra={**fields, "latency_ms": result.latency_ms})
            return entry.updated(status="delivered", attempts=attempt, last_error="")
        error = result.error or f"HTTP {result.http_status}"
        if result.retryable and attempt < self.settings.alerts_max_attempts:
            delay = backoff_s(self.settings, attempt)
            log.warning(
                "delivery failed; will retry",
                extra={
                    **fields,
                    "http_status": result.http_status,
                    "error": error[:300],
                    "retry_in_s": round(delay, 2),
                },
            )
            return entry.updated(
                attempts=attempt, last_error=error, next_attempt_at=self.clock() + timedelta(seconds=delay)
            )
        self.metrics.gave_up.labels(channel=entry.channel).inc()
        log.error(
            "delivery gave up",
            extra={**fields, "http_status": result.http_status, "error": error[:300], "retryable": result.retryable},
        )
        return entry.updated(status="gave_up", attempts=attempt, last_error=error)
