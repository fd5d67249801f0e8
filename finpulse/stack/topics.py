"""Kafka topics and broker health, for the local broker and for a production cluster alike."""

from __future__ import annotations

import logging
import socket
from contextlib import closing, suppress
from dataclasses import dataclass
from typing import Any

from kafka.admin import NewPartitions, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from finpulse import kafka_clients
from finpulse.settings import Settings
from finpulse.stack.kafka import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int
    created: bool = False
    grown_from: int | None = None


def admin(settings: Settings, timeout_ms: int = 5_000) -> Any:
    """A kafka-python KafkaAdminClient for the settings' cluster."""
    return kafka_clients.admin(settings, client_id="finpulse-admin", request_timeout_ms=timeout_ms)


def _port_open(servers: str, timeout_s: float) -> bool:
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def kafka_healthy(settings: Settings, timeout_s: float = 3.0) -> bool:
    """True when the cluster answers a metadata request."""
    # A plain TCP probe first: kafka-python logs every refused connection at ERROR level.
    if not _port_open(settings.kafka_servers, timeout_s):
        return False
    try:
        with closing(admin(settings, int(timeout_s * 1000))) as client:
            client.list_topics()
        return True
    except (KafkaError, OSError, ValueError):
        return False


def ensure_topics(settings: Settings) -> list[TopicState]:
    """Create the FinPulse topics with their configured partitions; grow, never shrink, existing ones."""
    wanted = settings.topic_partitions()
    states: list[TopicState] = []
    with closing(admin(settings, 30_000)) as client:
        existing = {
            t.get("name") or t.get("topic"): len(t["partitions"])
            for t in client.describe_topics()
            if t.get("partitions")
        }
        new = [
            NewTopic(
                name,
                num_partitions=parts,
                replication_factor=settings.kafka_replication_factor,
                topic_configs={
                    "max.message.bytes": str(MAX_MESSAGE_BYTES),
                    # A cluster with RF >= 3 keeps acks=all writes on two replicas before acknowledging.
                    "min.insync.replicas": str(min(2, settings.kafka_replication_factor)),
                },
            )
            for name, parts in wanted.items()
            if name not in existing
        ]
        if new:
            with suppress(TopicAlreadyExistsError):  # a concurrent `up` created it first
                client.create_topics(new, timeout_ms=30_000)
        grow = {name: NewPartitions(parts) for name, parts in wanted.items() if existing.get(name, parts) < parts}
        if grow:
            client.create_partitions(grow, timeout_ms=30_000)
    for name, parts in wanted.items():
        had = existing.get(name)
        if had is not None and had > parts:
            log.warning("topic %s has %d partitions, more than the configured %d; kept", name, had, parts)
        states.append(
            TopicState(
                name=name,
                partitions=max(parts, had or 0),
                created=had is None,
                grown_from=had if had is not None and had < parts else None,
            )
        )
    log.info("topics ready", extra={"topics": {s.name: s.partitions for s in states}})
    return states
