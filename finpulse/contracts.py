"""Message contracts: the raw and classified documents that flow through Kafka and land in ClickHouse.

Versioned with ``schema_version``; a reader rejects versions it does not know with a message that says so, so a
producer upgraded ahead of its consumers fails loudly instead of being misread. JSON in and out.

Versions: 1 = the original fields; 2 adds the optional ``story_id`` and ``novelty`` (issue 12). A reader of 2 reads 1
(a version-1 document is its own story: the stream stores story_id = id, novelty = 1); a version-1 reader refuses 2.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from finpulse.timeutil import as_utc, utcnow

SCHEMA_VERSION = 2
SUPPORTED_VERSIONS = frozenset({1, 2})
STORY_VERSION = 2  # the first version with story_id / novelty

Kind = Literal["news", "comment"]
Sentiment = Literal["negative", "neutral", "positive"]
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")

MAX_TITLE_CHARS = 1_000
MAX_BODY_CHARS = 100_000

_WS = re.compile(r"\s+")
_URL = re.compile(r"https?://\S+")


def document_text(title: str | None, body: str | None) -> str:
    """What the classifier reads of a document: title, then body. Every reader of stored rows (relabel, the entity
    stage, corrections) builds the text with this, so that each scores exactly what the stream classified."""
    if title and body:
        return f"{title}\n{body}"
    return title or body or ""


class ContractError(ValueError):
    """A document does not match the contract; ``field`` names the offending field ('' for the whole document)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


def normalise_text(text: str) -> str:
    """Text as dedupe and ids see it: NFKC, links dropped, case folded, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = _URL.sub(" ", text)
    return _WS.sub(" ", text).strip().casefold()


def document_id(source: str, source_id: str | None = None, text: str | None = None) -> str:
    """Stable id: hash of source + the source's own id, else of source + normalised text."""
    if not source:
        raise ContractError("source", "must not be empty")
    if source_id:
        key = f"{source}\x1fid\x1f{source_id}"
    elif text is not None and normalise_text(text):
        key = f"{source}\x1ftext\x1f{normalise_text(text)}"
    else:
        raise ContractError("id", "needs a source id or a non-empty text to derive a stable id")
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def hash_author(author: str | None) -> str | None:
    """Authors are stored hashed: enough to group by, nothing to identify a person with."""
    if not author:
        return None
    return "h:" + hashlib.sha256(author.strip().encode("utf-8")).hexdigest()[:16]


UtcDatetime = Annotated[datetime, Field(description="timezone-aware; naive values are taken as UTC")]


class RawDocument(BaseModel):
    """A document as ingest workers publish it to ``finpulse.raw``."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    schema_version: int = SCHEMA_VERSION
    id: str = Field(min_length=8, max_length=64, pattern=r"^[0-9a-zA-Z_\-:.]+$")
    source: str = Field(min_length=1, max_length=200)
    kind: Kind
    lang: str = Field("und", min_length=2, max_length=8, description="ISO 639-1 code, 'und' when unknown")
    title: str = Field("", max_length=MAX_TITLE_CHARS)
    body: str = Field("", max_length=MAX_BODY_CHARS)
    url: str | None = Field(None, max_length=4_000)
    author: str | None = Field(None, max_length=64, description="hashed author (see hash_author)")
    published_at: UtcDatetime
    ingested_at: UtcDatetime = Field(default_factory=utcnow)
    tickers: list[str] = Field(default_factory=list, max_length=64)
    entities: list[str] = Field(default_factory=list, max_length=256)
    meta: dict[str, Any] = Field(default_factory=dict)
    story_id: str | None = Field(
        None,
        min_length=8,
        max_length=64,
        pattern=r"^[0-9a-zA-Z_\-:.]+$",
        description="id of the first document of this story (ingest/stories.py); None = its own story",
    )
    novelty: float | None = Field(None, ge=0.0, le=1.0, description="1 = first report of its story, copies decay")

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in SUPPORTED_VERSIONS:
            raise ValueError(
                f"unsupported schema_version {value}; this FinPulse reads {sorted(SUPPORTED_VERSIONS)} "
                "- upgrade the consumer before the producer"
            )
        return value

    @field_validator("published_at", "ingested_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @field_validator("tickers")
    @classmethod
    def _tickers(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for ticker in value:
            ticker = ticker.strip().upper()
            if not ticker or len(ticker) > 20:
                raise ValueError(f"ticker {ticker!r} must be 1-20 characters")
            if ticker not in out:
                out.append(ticker)
        return out

    @model_validator(mode="after")
    def _has_text(self) -> RawDocument:
        if not (self.title.strip() or self.body.strip()):
            raise ValueError("title and body are both empty")
        if self.schema_version < STORY_VERSION and (self.story_id is not None or self.novelty is not None):
            raise ValueError(f"story_id and novelty need schema_version >= {STORY_VERSION}")
        return self

    @property
    def text(self) -> str:
        """What the classifier reads: title, then body."""
        return document_text(self.title, self.body)

    @property
    def key(self) -> bytes:
        """Kafka key: the primary ticker, else the source, so one company's stream stays ordered."""
        return (self.tickers[0] if self.tickers else self.source).encode("utf-8")

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class ClassifiedDocument(RawDocument):
    """A raw document with the model's labels; ``topic``/``sentiment`` are None for unsupported languages."""

    topic: str | None = None
    topic_score: float | None = Field(None, ge=0.0, le=1.0)
    sentiment: Sentiment | None = None
    sentiment_score: float | None = Field(None, ge=-1.0, le=1.0, description="P(positive) - P(negative)")
    topic_probs: dict[str, float] = Field(default_factory=dict)
    sentiment_probs: dict[str, float] = Field(default_factory=dict)
    model_version: str = Field(min_length=1, max_length=200)
    classified_at: UtcDatetime = Field(default_factory=utcnow)

    @field_validator("classified_at")
    @classmethod
    def _utc_classified(cls, value: datetime) -> datetime:
        return as_utc(value)


_Doc = TypeVar("_Doc", bound=RawDocument)


def _first_error(exc: ValidationError) -> ContractError:
    err = exc.errors()[0]
    field = ".".join(str(part) for part in err.get("loc", ()))
    message = err.get("msg", "invalid")
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return ContractError(field, message)


def _load(payload: bytes | str | dict[str, Any], model: type[_Doc]) -> _Doc:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ContractError("", f"not UTF-8 at byte {exc.start}") from exc
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise ContractError("", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
        except RecursionError as exc:  # json.loads recurses per nesting level
            raise ContractError("", "JSON nested too deeply") from exc
    if not isinstance(payload, dict):
        raise ContractError("", f"expected a JSON object, got {type(payload).__name__}")
    version = payload.get("schema_version", SCHEMA_VERSION)
    # A list or dict here is unhashable: test the type before the set lookup, so it is a ContractError, not TypeError.
    if not isinstance(version, int) or isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
        raise ContractError(
            "schema_version",
            f"unsupported schema_version {version!r}; this FinPulse reads {sorted(SUPPORTED_VERSIONS)}",
        )
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise _first_error(exc) from exc


def parse_raw(payload: bytes | str | dict[str, Any]) -> RawDocument:
    """Parse and validate a raw document; raises ContractError naming the bad field."""
    return _load(payload, RawDocument)


def parse_classified(payload: bytes | str | dict[str, Any]) -> ClassifiedDocument:
    return _load(payload, ClassifiedDocument)


def make_raw(
    *,
    source: str,
    kind: Kind,
    title: str = "",
    body: str = "",
    published_at: datetime | None = None,
    source_id: str | None = None,
    **fields: Any,
) -> RawDocument:
    """Build a raw document with its stable id derived from source + source id (or text)."""
    doc_id = document_id(source, source_id, f"{title}\n{body}")
    try:
        return RawDocument(
            id=doc_id,
            source=source,
            kind=kind,
            title=title,
            body=body,
            published_at=published_at or utcnow(),
            **fields,
        )
    except ValidationError as exc:
        raise _first_error(exc) from exc
