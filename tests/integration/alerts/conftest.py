"""Alert integration fixtures: a fresh, migrated ClickHouse database per test on the shared real stack, a
document writer with chosen times, and a webhook receiver on a free port."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.receiver import ReceiverState, build_app
from finpulse.settings import Settings, load_settings
from tests.stack import Stack, free_ports
from warehouse.client import create_client
from warehouse.migrate import migrate

pytestmark = pytest.mark.integration

# An hour boundary far from "now": the engine's clock is injected, so history can be anywhere.
T0 = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)
_ids = itertools.count()


def settings_for(stack: Stack, **overrides: Any) -> Settings:
    fields = {k[len("FINPULSE_") :].lower(): v for k, v in stack.env.items() if k.startswith("FINPULSE_")}
    fields.pop("config", None)
    return load_settings(**{**fields, **overrides})


@dataclass
class Warehouse:
    settings: Settings
    client: Any

    def docs(self, at: datetime, n: int, **kw: Any) -> list[str]:
        """Insert n classified documents published within the minute starting at ``at``; returns their ids."""
        rows = self.rows(at, n, **kw)
        self.insert(rows)
        return [row[0] for row in rows]

    def rows(
        self,
        at: datetime,
        n: int,
        *,
        sentiment: str = "negative",
        ticker: str | None = None,
        topic: str = "markets",
        source: str = "wire",
        lang: str = "en",
        text: str = "market update",
        ids: list[str] | None = None,
    ) -> list[list[Any]]:
        ids = ids or [f"doc-{next(_ids)}-{uuid.uuid4().hex[:8]}" for _ in range(n)]
        score = {"negative": -0.8, "neutral": 0.0, "positive": 0.8}[sentiment]
        rows = []
        for i, doc_id in enumerate(ids):
            published = at + timedelta(seconds=(i * 59) // max(n, 1))
            rows.append(
                [doc_id, source, "news", lang, text, f"{text} body {i}", published, published,
                 [ticker] if ticker else [], [], "{}", topic, sentiment, score, "test-model",
                 published + timedelta(seconds=1)]
            )  # fmt: skip
        return rows

    def insert(self, rows: list[list[Any]]) -> None:
        self.client.insert(
            "documents",
            rows,
            column_names=["id", "source", "kind", "lang", "title", "body", "published_at", "ingested_at", "tickers",
                          "entities", "meta", "topic", "sentiment", "sentiment_score", "model_version",
                          "classified_at"],
        )  # fmt: skip


@pytest.fixture()
def warehouse(stack: Stack) -> Iterator[Warehouse]:
    database = f"alerts_{uuid.uuid4().hex[:10]}"
    settings = settings_for(stack, clickhouse_database=database, alerts_retry_base_s="0.05", alerts_retry_max_s="0.2")
    migrate(settings)
    client = create_client(settings)
    try:
        yield Warehouse(settings, client)
    finally:
        client.command(f"DROP DATABASE IF EXISTS {database}")
        client.close()


@dataclass
class Receiver:
    state: ReceiverState
    url: str
    port: int
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_receiver(secret: str, *, fail_first: int = 0, port: int | None = None) -> Receiver:
    import uvicorn

    port = port or free_ports(1)[0]
    state = ReceiverState(secret=secret, fail_first=fail_first)
    server = uvicorn.Server(
        uvicorn.Config(build_app(state), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # not the main thread
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("receiver did not start")
        time.sleep(0.02)
    return Receiver(state, f"http://127.0.0.1:{port}/hooks/finpulse", port, server, thread)
