"""One micro-batch, kept free of Kafka and ClickHouse so it can be tested alone: decode and validate the messages,
and classify the valid documents (warehouse.schema.document_row shapes the rows the ClickHouse sink writes)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from finpulse.contracts import ClassifiedDocument, ContractError, RawDocument, parse_raw
from finpulse.timeutil import utcnow


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


MAX_MESSAGE_BYTES = 2 * 1024 * 1024  # settings.stream_max_message_bytes
MAX_JSON_DEPTH = 32  # settings.stream_max_json_depth


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a decoded JSON value, iteratively (no recursion) and stopping once past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_one(message: Incoming, max_bytes: int = MAX_MESSAGE_BYTES, max_depth: int = MAX_JSON_DEPTH) -> RawDocument:
    """One message as a raw document; raises ContractError (with the field and reason) for ANY bad input - size,
    encoding, nesting, JSON, shape, types - so no input can crash or wedge the agent."""
    value = message.value
    if not value:
        raise ContractError("", "empty message (no value)")
    if len(value) > max_bytes:
        raise ContractError("size", f"too large: {len(value)} bytes, the limit is {max_bytes}")
    try:
        text = bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError("", f"not UTF-8 at byte {exc.start}") from exc
    try:
        payload = json.loads(text, parse_constant=_no_constant)
    except RecursionError as exc:
        raise ContractError("depth", f"too deeply nested (more than {max_depth} levels)") from exc
    except ValueError as exc:
        raise ContractError("", f"not JSON: {exc}"[:500]) from exc
    if json_depth(payload, max_depth) > max_depth:
        raise ContractError("depth", f"too deeply nested (more than {max_depth} levels)")
    if isinstance(payload, dict) and not isinstance(payload.get("schema_version", 1), int):
        raise ContractError("schema_version", f"must be an integer, got {type(payload['schema_version']).__name__}")
    try:
        return parse_raw(payload)
    except ContractError:
        raise
    except Exception as exc:  # a validator tripped on an input shape it did not expect: still a bad document
        raise ContractError("", f"invalid document ({type(exc).__name__}: {exc})"[:500]) from exc


def decode(
    messages: Iterable[Incoming], max_bytes: int = MAX_MESSAGE_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> Decoded:
    """Validate every message against the contract; nothing is dropped: invalid ones become rejects."""
    out = Decoded()
    for message in messages:
        try:
            doc = decode_one(message, max_bytes, max_depth)
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


@dataclass
class Classified:
    docs: list[ClassifiedDocument] = field(default_factory=list)
    sources: list[Incoming] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)  # documents the model raised on


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


def classify_safely(engine: Engine, decoded: Decoded, now: datetime | None = None) -> Classified:
    """``classify`` the batch; if the engine raises, classify document by document so only the documents the
    model raises on are dead-lettered (field 'model') and the rest of the batch is stored."""
    now = now or utcnow()
    try:
        return Classified(classify(engine, decoded.docs, now), list(decoded.sources))
    except Exception as exc:
        if len(decoded.docs) <= 1:
            failures = [(0, exc)] if decoded.docs else []
            return Classified(rejects=[_model_reject(decoded.sources[i], e) for i, e in failures])
    out = Classified()
    for doc, source in zip(decoded.docs, decoded.sources, strict=True):
        try:
            out.docs.extend(classify(engine, [doc], now))
            out.sources.append(source)
        except Exception as exc:
            out.rejects.append(_model_reject(source, exc))
    return out


def _model_reject(message: Incoming, exc: BaseException) -> Reject:
    return Reject(message, "model", f"the model raised {type(exc).__name__}: {exc}"[:1000])
