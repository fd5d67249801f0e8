"""A private stack for the dashboard tests: Kafka, ClickHouse and the dashboard itself, started by `finpulse up`
(so the dashboard's service_spec and its /_stcore/health check are what brings it up), seeded with realistic
classified documents, an alert, a rule, a webhook target and some Kafka traffic for lag and DLQ figures."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dashboard import seed
from tests.stack import Stack, free_ports
from warehouse.client import create_client

pytestmark = pytest.mark.integration

USER, PASSWORD = "risk-desk", "test-only-password"
LAG_GROUP = "finpulse-dashboard-test"
ALERT_RULE = "Tesla negative surge"


@dataclass
class Receiver:
    """A webhook receiver on a free port that records what it was sent."""

    url: str
    bodies: list[dict[str, Any]]


@dataclass
class DashStack:
    stack: Stack
    url: str
    receiver: Receiver

    @property
    def settings(self) -> Any:
        return self.stack.settings


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            bodies.append(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", bodies)
    server.shutdown()


@pytest.fixture(scope="session")
def dash(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[DashStack]:
    (port,) = free_ports(1)
    stack = Stack.new(
        tmp_path_factory.mktemp("finpulse-dashboard"),
        FINPULSE_STACK_SERVICES="kafka,clickhouse,dashboard",
        FINPULSE_DASHBOARD_PORT=str(port),
        FINPULSE_DASHBOARD_USER=USER,
        FINPULSE_DASHBOARD_PASSWORD=PASSWORD,
        FINPULSE_DASHBOARD_REFRESH_S="3",
        FINPULSE_DASHBOARD_SQL_TIMEOUT_S="2",
    )
    stack.up()
    try:
        _seed(stack, receiver)
        yield DashStack(stack, f"http://127.0.0.1:{port}", receiver)
    finally:
        stack.down()


def _seed(stack: Stack, receiver: Receiver) -> None:
    settings = stack.settings
    client = create_client(settings)
    rows = seed.documents()
    seed.insert(client, rows)
    seed.insert(client, rows[-20:])  # a redelivery: every count must stay the same
    _seed_alerts(settings, client, receiver)
    _seed_kafka(settings)
    client.close()


def _seed_alerts(settings: Any, client: Any, receiver: Receiver) -> None:
    from alerts import store
    from alerts.rules import Rule
    from alerts.targets import WebhookTarget

    rule = store.save_rule(
        settings,
        Rule(name=ALERT_RULE, kind="negative_share", severity="critical", scope={"ticker": "TSLA"}, threshold=0.5),
    )
    store.save_target(settings, WebhookTarget(name="risk-desk-hook", url=receiver.url))
    now = datetime.now(UTC).replace(microsecond=0)
    client.insert(
        "alerts",
        [
            [
                "alert-tsla-1",
                rule.fingerprint("TSLA"),
                rule.id,
                rule.name,
                rule.kind,
                rule.severity,
                "ticker",
                "TSLA",
                "negative_share",
                now - timedelta(minutes=15),
                now,
                0.86,
                0.5,
                0.21,
                14,
                [],
                "TSLA negative share 86% > 50% over 15 min (14 documents)",
                now,
                "firing",
                now - timedelta(minutes=5),
                None,
                0,
                json.dumps({"ticker": "TSLA"}),
            ]
        ],
        column_names=[
            "id",
            "fingerprint",
            "rule_id",
            "rule_name",
            "kind",
            "severity",
            "group_by",
            "group_value",
            "metric",
            "window_start",
            "window_end",
            "value",
            "threshold",
            "baseline",
            "doc_count",
            "sample_doc_ids",
            "message",
            "created_at",
            "status",
            "started_at",
            "resolved_at",
            "silenced",
            "scope",
        ],
    )


def _seed_kafka(settings: Any) -> None:
    """Five raw messages on partition 0 with a group that committed two (lag 3), and two DLQ messages."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    producer = KafkaProducer(bootstrap_servers=settings.kafka_servers)
    for n in range(5):
        producer.send(settings.topic_raw, b"{}", partition=0, key=str(n).encode())
    for _ in range(2):
        producer.send(settings.topic_dlq, b'{"reason": "not JSON"}', partition=0)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=LAG_GROUP, enable_auto_commit=False)
    tp = TopicPartition(settings.topic_raw, 0)
    consumer.assign([tp])
    consumer.commit({tp: OffsetAndMetadata(2, "", -1)})
    consumer.close()


def chromium_path() -> str | None:
    path = os.environ.get("FINPULSE_TEST_CHROMIUM", "/usr/bin/chromium")
    return path if Path(path).exists() else None
