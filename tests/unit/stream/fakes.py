"""Stand-ins for the engine, the sinks and faust events, so the batch logic runs without Kafka or ClickHouse."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faust.types.tuples import ConsumerMessage

from classifier.engine import Prediction
from finpulse.contracts import make_raw
from stream.sinks import RowsRejectedError, SinkUnavailableError
from warehouse.schema import DOCUMENT_COLUMNS


class FakeEngine:
    def __init__(self, version: str = "fake@1", languages: tuple[str, ...] = ("en",)) -> None:
        self.model_version = version
        self.languages = languages
        self.seen: list[str] = []

    def supports_language(self, lang: str | None) -> bool:
        return not lang or lang == "und" or lang.split("-")[0] in self.languages

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        self.seen.extend(texts)
        return [
            Prediction(
                topic="Earnings",
                topic_score=0.9,
                sentiment="positive",
                sentiment_score=0.8,
                topic_probs={"Earnings": 0.9, "IPO": 0.1},
                sentiment_probs={"negative": 0.05, "neutral": 0.1, "positive": 0.85},
            )
            for _ in texts
        ]


class FakeModels:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    async def current(self) -> FakeEngine:
        return self.engine


class FakeConsumer:
    def __init__(self) -> None:
        self.acked: list[tuple[int, int]] = []

    def ack(self, message: ConsumerMessage) -> bool:
        self.acked.append((message.partition, message.offset))
        return True


@dataclass
class FakeEvent:
    """What the runner reads of a faust Event: value, message, ack()."""

    message: ConsumerMessage
    consumer: FakeConsumer

    @property
    def value(self) -> bytes | None:
        return self.message.value

    def ack(self) -> bool:
        return self.message.ack(self.consumer)


def events(
    values: Sequence[bytes | None], consumer: FakeConsumer, partition: int = 0, first: int = 0
) -> list[FakeEvent]:
    out = []
    for i, value in enumerate(values):
        message = ConsumerMessage("raw", partition, first + i, 0.0, 0, None, b"k", value, None)
        message.refcount = 1  # faust counts one reference per stream that received the message
        out.append(FakeEvent(message, consumer))
    return out


def raw(i: int, lang: str = "en", source: str = "unit") -> bytes:
    return make_raw(
        source=source, kind="news", title=f"Acme beats estimates {i}", source_id=str(i), lang=lang
    ).to_json()


@dataclass
class FakeClickHouse:
    """Fails with SinkUnavailableError ``down`` times, then stores; refuses rows whose id is in ``poison``."""

    down: int = 0
    poison: set[str] = field(default_factory=set)
    rows: list[list[Any]] = field(default_factory=list)
    calls: int = 0
    gate: asyncio.Event | None = None

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        self.calls += 1
        if self.down > 0:
            self.down -= 1
            raise SinkUnavailableError("clickhouse", "connection refused")
        if any(r[DOCUMENT_COLUMNS.index("id")] in self.poison for r in rows):
            raise RowsRejectedError("bad row")
        self.rows.extend(list(r) for r in rows)

    def close(self) -> None:
        pass


@dataclass
class FakeTopicSink:
    sent: list[Any] = field(default_factory=list)

    async def write_docs(self, docs: Sequence[Any]) -> None:
        self.sent.extend(docs)

    async def write_rejects(self, rejects: Sequence[Any]) -> None:
        self.sent.extend(rejects)
