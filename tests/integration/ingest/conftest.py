"""Helpers for ingest integration tests: a per-test topic on the shared real Kafka, a worker config, a reader,
and a local HTTP server whose routes a test defines."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from finpulse.settings import Settings
from ingest.config import IngestConfig, build_config
from tests.stack import Stack, free_ports

pytestmark = pytest.mark.integration


def make_topic(settings: Settings, partitions: int = 3) -> str:
    name = f"test.ingest.{uuid.uuid4().hex[:10]}"
    with closing(KafkaAdminClient(bootstrap_servers=settings.kafka_servers, request_timeout_ms=20_000)) as admin:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)], timeout_ms=20_000)
    return name


def read_topic(settings: Settings, topic: str) -> list[tuple[bytes, dict[str, Any]]]:
    """Every message on the topic as (key, document)."""
    with closing(KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=None)) as consumer:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not tps:  # a topic created a moment ago may not be in this new client's metadata yet
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend((r.key, json.loads(r.value)) for r in records)
        return out


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def topic(stack: Stack) -> str:
    return make_topic(stack.settings)


@pytest.fixture()
def ingest_config(stack: Stack, topic: str, tmp_path: Path) -> Callable[..., IngestConfig]:
    def build(**overrides: Any) -> IngestConfig:
        base = dict(topic=topic, state_dir=tmp_path / "ingest-state", port=free_ports(1)[0], api_keys=frozenset({"k1"}))
        base.update(overrides)
        return build_config(stack.settings, **{"sources": (), **base})

    return build


Handler = Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes] | None]


class LocalServer:
    """127.0.0.1 HTTP server; ``routes[path](request) -> (status, headers, body)``; requests are recorded."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class _H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers)))
                route = server.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404)
                    return
                answer = route(self)
                if answer is None:
                    return
                status, headers, body = answer
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def http_server() -> Iterator[LocalServer]:
    server = LocalServer()
    yield server
    server.close()
