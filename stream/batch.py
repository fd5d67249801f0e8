"""One micro-batch, kept free of Kafka and ClickHouse so it can be tested alone: decode and validate the messages,
classify the valid documents, and shape the rows the sinks write."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from finpulse.contracts import ClassifiedDocument, ContractError, RawDocument, parse_raw, utcnow
from warehouse.schema import DOCUMENT_COLUMNS

COLUMNS = DOCUMENT_COLUMNS


class Incoming(NamedTuple):
    """A consumed message as the batch sees it (the agent builds these from faust events)."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Reject:
    """A message that is not a valid raw document: it goes to the DLQ with its original bytes and the reason."""

    message: Incoming
    field: str
    reason: str

    def headers(self) -> list[tuple[str, bytes]]:
        m = self.message
        return [
            ("finpulse-dlq-reason", self.reason.encode("utf-8")[:4000]),
            ("finpulse-dlq-field", self.field.encode("utf-8")),
            ("finpulse-source-topic", m.topic.encode("utf-8")),
            ("finpulse-source-partition", str(m.partition).encode()),
            ("finpulse-source-offset", str(m.offset).encode()),
        ]


@dataclass
class Decoded:
    docs: list[RawDocument] = field(default_factory=list)
    sources: list[Incoming] = field(default_factory=list)  # the message each doc came from
    rejects: list[Reject] = field(default_factory=list)


def decode(messages: Iterable[Incoming]) -> Decoded:
    """Validate every message against the contract; nothing is dropped: invalid ones become rejects."""
    out = Decoded()
    for message in messages:
        if not message.value:
            out.rejects.append(Reject(message, "", "empty message (no value)"))
            continue
        try:
            doc = parse_raw(message.value)
        except ContractError as exc:
            out.rejects.append(Reject(message, exc.field, str(exc)))
            continue
        out.docs.append(doc)
        out.sources.append(message)
    return out


class Engine(Protocol):
    """What the stream needs from classifier.engine.ClassifierEngine."""

    model_version: str

    def supports_language(self, lang: str | None) -> bool: ...

    def predict(self, texts: Sequence[str]) -> list[Any]: ...


def classify(engine: Engine, docs: Sequence[RawDocument], now: datetime | None = None) -> list[ClassifiedDocument]:
    """Label the documents in one engine call. A language the model was not trained for is kept with its language,
    no labels and the model version that declined it: stored and counted, never mislabeled."""
    now = now or utcnow()
    supported = [i for i, doc in enumerate(docs) if engine.supports_language(doc.lang)]
    predictions = engine.predict([docs[i].text for i in supported]) if supported else []
    labels: dict[int, dict[str, Any]] = {i: p.as_fields() for i, p in zip(supported, predictions, strict=True)}
    out = []
    for i, doc in enumerate(docs):
        # model_construct: every raw field was validated by decode() and the engine's outputs are in range;
        # validating the whole document again would double the per-document CPU cost.
        out.append(
            ClassifiedDocument.model_construct(
                **dict(doc), **labels.get(i, {}), model_version=engine.model_version, classified_at=now
            )
        )
    return out


def row(doc: ClassifiedDocument) -> list[Any]:
    """The ClickHouse row of a classified document, in COLUMNS order."""
    return [
        doc.id,
        doc.source,
        doc.kind,
        doc.lang,
        doc.title,
        doc.body,
        doc.url,
        doc.author,
        doc.published_at,
        doc.ingested_at,
        doc.tickers,
        doc.entities,
        json.dumps(doc.meta, ensure_ascii=False, default=str),
        doc.topic,
        doc.topic_score,
        doc.sentiment,
        doc.sentiment_score,
        doc.topic_probs,
        doc.sentiment_probs,
        doc.model_version,
        doc.classified_at,
        doc.schema_version,
    ]
