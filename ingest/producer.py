"""Producing raw documents to Kafka: acks=all, idempotent, batched and compressed; reports which records the
broker acknowledged (with their offsets) and which it did not, so the pipeline resends only the latter."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kafka import KafkaProducer
from kafka.errors import KafkaError

from finpulse import kafka_clients
from finpulse.contracts import RawDocument

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 40.0


class BrokerUnavailable(Exception):
    """Kafka did not acknowledge; the caller keeps the documents and tries again later."""


@dataclass
class SendResult:
    watermarks: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> next offset
    failed: list[RawDocument] = field(default_factory=list)
    error: str = ""


class RawProducer:
    def __init__(self, kafka: kafka_clients.Connection, topic: str, compression: str, client_id: str) -> None:
        self.kafka = kafka
        self.servers = kafka.bootstrap
        self.topic = topic
        self.compression = None if compression == "none" else compression
        self.client_id = client_id
        self._producer: KafkaProducer | None = None

    def _connect(self) -> KafkaProducer:
        if self._producer is None:
            try:
                self._producer = kafka_clients.producer(
                    self.kafka,
                    client_id=self.client_id,
                    acks="all",
                    enable_idempotence=True,  # broker-side retries never duplicate a record
                    compression_type=self.compression,
                    linger_ms=20,
                    batch_size=512 * 1024,
                    max_request_size=4 * 1024 * 1024,
                    request_timeout_ms=10_000,
                    delivery_timeout_ms=30_000,
                    max_block_ms=10_000,
                )
            except (KafkaError, OSError) as exc:
                raise BrokerUnavailable(f"cannot reach Kafka at {self.servers}: {exc}") from exc
        return self._producer

    def send(self, docs: list[RawDocument]) -> SendResult:
        """Send and wait for the acknowledgements; never raises for broker trouble, reports it instead."""
        result = SendResult()
        if not docs:
            return result
        try:
            producer = self._connect()
        except BrokerUnavailable as exc:
            return SendResult(failed=list(docs), error=str(exc))
        futures = []
        for i, doc in enumerate(docs):
            try:
                futures.append((doc, producer.send(self.topic, key=doc.key, value=doc.to_json())))
            except KafkaError as exc:  # metadata not available within max_block_ms: the broker is away
                result.failed.extend(docs[i:])
                result.error = f"{type(exc).__name__}: {exc}"
                break
        try:
            producer.flush(timeout=FLUSH_TIMEOUT_S)
        except KafkaError as exc:
            result.error = result.error or f"flush: {type(exc).__name__}: {exc}"
        for doc, future in futures:
            if future.is_done and future.succeeded():
                meta = future.value
                key = (meta.topic, meta.partition)
                result.watermarks[key] = max(result.watermarks.get(key, 0), meta.offset + 1)
            else:
                result.failed.append(doc)
                if future.is_done and not result.error:
                    result.error = f"{type(future.exception).__name__}: {future.exception}"
        return result

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=5)
            except KafkaError as exc:  # closing a producer whose broker is gone
                log.warning("closing the Kafka producer: %s", exc)
            self._producer = None
