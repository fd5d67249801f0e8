"""Publishes alert events to Kafka ``settings.topic_alerts`` (key = fingerprint, value = the generic JSON)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from alerts import formats
from alerts.alert import Alert
from alerts.targets import DeliveryResult
from finpulse.settings import Settings

log = logging.getLogger(__name__)


class KafkaPublisher:
    """One lazily created producer; a failed send closes it so the next attempt reconnects."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Any | None = None

    def _get(self) -> Any:
        if self._producer is None:
            from finpulse import kafka_clients

            self._producer = kafka_clients.producer(
                self.settings,
                acks="all",
                retries=0,  # the outbox retries, with its log line and backoff
                request_timeout_ms=10_000,
                max_block_ms=10_000,
                client_id="finpulse-alerts",
            )
        return self._producer

    def publish(self, alert: Alert, *, event: str, delivery_id: str, attempt: int) -> DeliveryResult:
        topic = self.settings.topic_alerts
        value = json.dumps(
            formats.generic(alert, event=event, delivery_id=delivery_id, sent_at=datetime.now(UTC)),
            ensure_ascii=False,
        ).encode("utf-8")
        started = time.perf_counter()
        error = ""
        try:
            future = self._get().send(
                topic,
                key=alert.fingerprint.encode(),
                value=value,
                headers=[("event", event.encode()), ("delivery_id", delivery_id.encode())],
            )
            future.get(timeout=15)
        except Exception as exc:  # kafka-python raises KafkaError subclasses and socket errors alike
            error = f"{type(exc).__name__}: {exc}"
            self.close()
        return DeliveryResult(
            target=topic,
            delivery_id=delivery_id,
            alert_id=alert.id,
            event=event,
            channel="kafka",
            attempt=attempt,
            status="failed" if error else "delivered",
            error=error,
            latency_ms=round((time.perf_counter() - started) * 1000),
            retryable=bool(error),  # idempotent for consumers that dedupe on delivery_id
        )

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=5)
            except Exception:  # closing a broken producer must not hide the send error
                log.debug("kafka producer close failed", exc_info=True)
            self._producer = None
