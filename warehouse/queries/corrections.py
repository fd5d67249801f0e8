"""Analyst corrections (issue 14): record them, read them back, and keep them winning over model labels.

An analyst overrides a document's ``topic`` or ``sentiment``, or its sentiment toward one entity
(``entity_sentiment``). ``record_correction`` validates the input against the product's label sets and the stored
document, writes one row into ``corrections`` (migration 0041: who, when, the label replaced and the model version
that produced it), then applies it the way ``finpulse relabel`` applies a new model: a newer row of the document goes
into ``documents`` (``label_source = 'analyst'``, ``corrected_fields``, ``corrected_by``), so documents FINAL,
documents_latest and documents_minutely_latest - every count the dashboard and the alerts read - see the corrected
label, once. An entity correction rewrites that entity's ``document_entities`` row (``label_source = 'analyst'``).

Later writers keep the analyst's label: ``finpulse relabel`` (stream/relabel.py) and the stream's ClickHouse sink (a
redelivered document) pass their rows through ``overlay_document_rows`` / ``overlay_columns``, and the entity writer
through ``overlay_entity_rows``; the ``corrections`` table is the source of truth for all three.

The training side reads corrections only through ``latest_corrections`` / ``count_corrections`` (the latest
correction per (document, field, entity), with the document's text and language).

Constant SQL with server-side parameters, like every query in warehouse.queries.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from classifier.specs import SENTIMENT_ALIASES, TOPICS
from finpulse.contracts import SENTIMENTS, document_text

FIELDS: tuple[str, ...] = ("topic", "sentiment", "entity_sentiment")
DOCUMENT_FIELDS: tuple[str, ...] = ("topic", "sentiment")  # the fields a correction rewrites on the documents row
ANALYST = "analyst"  # label_source of a row an analyst corrected
MODEL = "model"
MAX_ANALYST_CHARS = 100
MAX_ENTITY_CHARS = 200

_DOC_ID = re.compile(r"^[0-9a-zA-Z_\-:.]{1,64}$")  # finpulse.contracts.RawDocument.id
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An analyst's label is certain: the scores a corrected row carries say so (P(pos) - P(neg) of a one-hot label).
_SENTIMENT_SCORE = {"negative": -1.0, "neutral": 0.0, "positive": 1.0}
# Ids per lookup: a stream batch in one query (7.6 ms for 500 ids against 43 ms in URL-sized chunks of 80, local
# endpoint). Over 4 KB clickhouse-connect sends them as a form field; 1,000 ids of at most 64 characters stay under a
# real server's 128 KiB per field (http_max_field_value_size).
_IDS_PER_LOOKUP = 1000


class CorrectionError(ValueError):
    """A correction the warehouse refuses; ``field`` names the offending input, the message says why (UI shows it)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True)
class Correction:
    """The latest correction of one (document, field, entity), with the corrected document's text and language."""

    id: str
    document_id: str
    field: str
    entity: str
    label: str
    previous_label: str
    model_version: str
    analyst: str
    corrected_at: datetime
    text: str = ""
    lang: str = ""


# --- validation -------------------------------------------------------------------------------------------------


def labels_for(field_name: str) -> tuple[str, ...]:
    """The labels an analyst may choose for ``field_name`` (the product's label sets)."""
    if field_name == "topic":
        return TOPICS
    if field_name in ("sentiment", "entity_sentiment"):
        return SENTIMENTS
    raise CorrectionError("field", f"unknown field {field_name!r}; one of {', '.join(FIELDS)}")


def normalise_label(field_name: str, label: str) -> str:
    """The label in the product's spelling (topics case-insensitively, sentiment aliases such as bearish), or
    CorrectionError naming the allowed labels."""
    allowed = labels_for(field_name)
    text = (label or "").strip()
    if not text:
        raise CorrectionError("label", "must not be empty")
    if field_name == "topic":
        by_fold = {t.casefold(): t for t in allowed}
        if text.casefold() in by_fold:
            return by_fold[text.casefold()]
        raise CorrectionError("label", f"unknown topic {text!r}; one of: {'; '.join(allowed)}")
    folded = SENTIMENT_ALIASES.get(text.casefold())
    if folded is None:
        raise CorrectionError("label", f"unknown sentiment {text!r}; one of {', '.join(allowed)}")
    return folded


def _analyst(analyst: str) -> str:
    name = (analyst or "").strip()
    if not name:
        raise CorrectionError("analyst", "who corrects must be named (sign in, or enter your name)")
    if len(name) > MAX_ANALYST_CHARS:
        raise CorrectionError("analyst", f"at most {MAX_ANALYST_CHARS} characters, got {len(name)}")
    if _CONTROL.search(name):
        raise CorrectionError("analyst", "must not contain control characters")
    return name


def _document_id(document_id: str) -> str:
    doc_id = (document_id or "").strip()
    if not _DOC_ID.match(doc_id):
        raise CorrectionError("document_id", f"not a document id: {document_id!r}")
    return doc_id


def _entity(field_name: str, entity: str) -> str:
    name = (entity or "").strip()
    if field_name != "entity_sentiment":
        if name:
            raise CorrectionError("entity", f"only an entity_sentiment correction names an entity, not {field_name}")
        return ""
    if not name:
        raise CorrectionError("entity", "an entity_sentiment correction must name the entity")
    if len(name) > MAX_ENTITY_CHARS or _CONTROL.search(name):
        raise CorrectionError("entity", f"not an entity name: {name[:50]!r}")
    return name


# --- SQL --------------------------------------------------------------------------------------------------------

DOCUMENT_SQL = "SELECT * FROM documents FINAL WHERE id = {id:String}"
# document_entities is ordered by (minute, document_id, entity): the document's minute prunes the read to its granules.
_ENTITY_MINUTE = (
    "toStartOfMinute(published_at) = toStartOfMinute(fromUnixTimestamp64Milli({published_ms:Int64}, 'UTC'))"
)
_ENTITY_KEY = f"{_ENTITY_MINUTE} AND document_id = {{id:String}}"
ENTITY_SQL = f"SELECT * FROM document_entities FINAL WHERE {_ENTITY_KEY} AND entity = {{entity:String}}"
ENTITIES_OF_SQL = f"SELECT entity FROM document_entities FINAL WHERE {_ENTITY_KEY} ORDER BY rank"

# The table's columns: a Correction less the document's text and language, which the read joins in.
_CORRECTION_COLUMNS = tuple(f.name for f in fields(Correction) if f.name not in ("text", "lang"))
_SINCE = "({since_ms:Int64} < 0 OR corrected_at >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC'))"

# The documents are looked up by id (the table's key) through the IN subquery, not by a FINAL over the whole table.
# A correction whose document expired (TTL) has no text to train on: not returned; count_corrections still counts it.
LATEST_SQL = f"""
SELECT c.id, c.document_id, c.field, c.entity, c.label, c.previous_label, c.model_version, c.analyst,
       c.corrected_at, d.title, d.body, d.lang
FROM (SELECT * FROM corrections FINAL WHERE {_SINCE}) AS c
INNER JOIN (
    SELECT id, title, body, lang FROM documents FINAL
    WHERE id IN (SELECT document_id FROM corrections WHERE {_SINCE})
) AS d ON d.id = c.document_id
ORDER BY c.corrected_at, c.id
"""
COUNT_SQL = f"SELECT count() FROM corrections FINAL WHERE {_SINCE}"
FOR_DOCUMENTS_SQL = f"""
SELECT {", ".join(_CORRECTION_COLUMNS)}
FROM corrections FINAL
WHERE document_id IN {{ids:Array(String)}}
ORDER BY corrected_at, id
"""
BY_MODEL_SQL = f"""
SELECT model_version, count() AS corrections, countIf(label != previous_label) AS disagreed
FROM corrections FINAL
WHERE {_SINCE}
GROUP BY model_version
ORDER BY disagreed DESC, model_version
"""


def _since_ms(since: datetime | None) -> int:
    if since is None:
        return -1
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    return int(since.timestamp() * 1000)


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    raise TypeError(f"expected a datetime, got {type(value).__name__}")


def _rows(result: Any) -> list[dict[str, Any]]:
    columns = list(result.column_names)
    return [dict(zip(columns, r, strict=True)) for r in result.result_rows]


def _correction(row: dict[str, Any], text: str = "", lang: str = "") -> Correction:
    return Correction(
        id=str(row["id"]),
        document_id=str(row["document_id"]),
        field=str(row["field"]),
        entity=str(row["entity"]),
        label=str(row["label"]),
        previous_label=str(row["previous_label"]),
        model_version=str(row["model_version"]),
        analyst=str(row["analyst"]),
        corrected_at=_utc(row["corrected_at"]),
        text=text,
        lang=lang,
    )


# --- reading ----------------------------------------------------------------------------------------------------


def latest_corrections(client: Any, *, since: datetime | None = None) -> list[Correction]:
    """The latest correction per (document, field, entity) made at or after ``since`` (None: all), oldest first,
    with the document's text (title, then body) and language. Corrections of expired documents are left out."""
    result = client.query(LATEST_SQL, parameters={"since_ms": _since_ms(since)})
    return [
        _correction(r, document_text(r.get("title"), r.get("body")), str(r.get("lang") or "")) for r in _rows(result)
    ]


def count_corrections(client: Any, *, since: datetime | None = None) -> int:
    """How many (document, field, entity) were corrected at or after ``since`` (None: ever); one per key however
    often it was corrected."""
    return int(client.query(COUNT_SQL, parameters={"since_ms": _since_ms(since)}).result_rows[0][0])


def corrections_by_model(client: Any, *, since: datetime | None = None) -> list[dict[str, Any]]:
    """Per overridden model version: corrections, and how many of them disagreed with the model's label."""
    result = client.query(BY_MODEL_SQL, parameters={"since_ms": _since_ms(since)})
    return [
        {
            "model_version": str(r["model_version"]),
            "corrections": int(r["corrections"]),
            "disagreed": int(r["disagreed"]),
        }
        for r in _rows(result)
    ]


def corrections_for(client: Any, document_ids: Iterable[str]) -> dict[str, list[Correction]]:
    """The latest corrections of these documents, per document id (documents without any are absent)."""
    return _lookup(client, document_ids)


ENTITY_LABELS_SQL = f"""
SELECT entity, sentiment, label_source FROM document_entities FINAL
WHERE ({{published_ms:Int64}} < 0 OR {_ENTITY_MINUTE}) AND document_id = {{id:String}}
ORDER BY rank, entity
"""


def entity_labels(client: Any, document_id: str, *, published_at: datetime | None = None) -> list[tuple[str, str, str]]:
    """(entity, sentiment, label_source) of a document's entity rows, most relevant first; ``published_at`` (the
    document's) narrows the read to its minute."""
    ms = -1 if published_at is None else int(_utc(published_at).timestamp() * 1000)
    result = client.query(ENTITY_LABELS_SQL, parameters={"id": document_id, "published_ms": ms})
    return [(str(e), str(s), str(src)) for e, s, src in result.result_rows]


def _lookup(client: Any, document_ids: Iterable[str]) -> dict[str, list[Correction]]:
    ids = sorted({str(i) for i in document_ids if i})
    found: dict[str, list[Correction]] = {}
    for start in range(0, len(ids), _IDS_PER_LOOKUP):
        result = client.query(FOR_DOCUMENTS_SQL, parameters={"ids": ids[start : start + _IDS_PER_LOOKUP]})
        for r in _rows(result):
            c = _correction(r)
            found.setdefault(c.document_id, []).append(c)
    return found


# --- applying a correction to a row -----------------------------------------------------------------------------


def label_fields(field_name: str, label: str) -> dict[str, Any]:
    """The documents columns a corrected ``topic`` / ``sentiment`` sets (the scores of a certain label)."""
    if field_name == "topic":
        return {"topic": label, "topic_score": 1.0, "topic_probs": {label: 1.0}}
    if field_name == "sentiment":
        return {
            "sentiment": label,
            "sentiment_score": _SENTIMENT_SCORE[label],
            "sentiment_probs": {s: 1.0 if s == label else 0.0 for s in SENTIMENTS},
        }
    raise ValueError(f"{field_name} is not a documents field")


def corrected_document_row(row: dict[str, Any], corrections: Sequence[Correction]) -> dict[str, Any]:
    """``row`` (a documents row as a dict) with the analyst's topic/sentiment of ``corrections`` and the marks
    (label_source, corrected_fields, corrected_by); other columns unchanged. The latest correction per field wins."""
    new = dict(row)
    fields = set(new.get("corrected_fields") or [])
    analyst = str(new.get("corrected_by") or "")
    for c in sorted(corrections, key=lambda c: c.corrected_at):
        if c.field not in DOCUMENT_FIELDS:
            continue
        new.update(label_fields(c.field, c.label))
        fields.add(c.field)
        analyst = c.analyst
    if fields:
        new["label_source"] = ANALYST
        new["corrected_fields"] = sorted(fields)
        new["corrected_by"] = analyst
    return new


def _newer(old: Any, now: datetime) -> datetime:
    """A version stamp later than ``old``, so the rewritten row wins the ReplacingMergeTree merge."""
    if isinstance(old, datetime):
        previous: datetime = old if old.tzinfo else old.replace(tzinfo=UTC)
        return max(now, previous + timedelta(milliseconds=1))
    return now


def overlay_document_rows(client: Any, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Documents rows (dicts keyed by column, ``id`` among them) with the analysts' corrections applied: what
    ``finpulse relabel`` inserts, so a new model's label never replaces an analyst's. One lookup per 1,000 ids."""
    found = _lookup(client, (str(r["id"]) for r in rows))
    if not found:
        return list(rows)
    return [corrected_document_row(r, found[str(r["id"])]) if str(r["id"]) in found else r for r in rows]


MARK_COLUMNS: tuple[str, ...] = ("label_source", "corrected_fields", "corrected_by")


def overlay_columns(
    client: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> tuple[list[str], list[Sequence[Any]]]:
    """The stream sink's rows (sequences in ``columns`` order) with the analysts' corrections applied, and the
    column list to insert them with: a redelivered document keeps its corrected labels. Without any correction of
    the batch's documents the rows come back as they are (one lookup per 1,000 ids, nothing else)."""
    names = list(columns)
    at = names.index("id")
    found = _lookup(client, (str(r[at]) for r in rows))
    if not found:
        return names, list(rows)
    out_names = names + [m for m in MARK_COLUMNS if m not in names]
    out: list[Sequence[Any]] = []
    for r in rows:
        row = dict(zip(names, r, strict=True))
        row.setdefault("label_source", MODEL)
        row.setdefault("corrected_fields", [])
        row.setdefault("corrected_by", "")
        if str(row["id"]) in found:
            row = corrected_document_row(row, found[str(row["id"])])
        out.append([row[n] for n in out_names])
    return out_names, out


def overlay_entity_rows(client: Any, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """document_entities rows (dicts with document_id, entity, sentiment, ...) with the analysts' entity
    sentiments applied (``label_source = 'analyst'``): what the stream's entity writer inserts."""
    found = _lookup(client, (str(r["document_id"]) for r in rows))
    if not found:
        return list(rows)
    out = []
    for r in rows:
        latest = {c.entity: c for c in found.get(str(r["document_id"]), []) if c.field == "entity_sentiment"}
        c = latest.get(str(r["entity"]))
        out.append(_corrected_entity_row(r, c.label) if c else r)
    return out


def overlay_entity_columns(
    client: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> tuple[list[str], list[Sequence[Any]]]:
    """The stream's document_entities rows (sequences in ``columns`` order: document_id, entity, sentiment, ...) with
    the analysts' entity sentiments applied, and the columns to insert them with (label_source added when one was):
    a redelivered document keeps its corrected entity sentiment. Unchanged without any correction of the batch."""
    names = list(columns)
    dicts = [dict(zip(names, r, strict=True)) for r in rows]
    out = overlay_entity_rows(client, dicts)
    if all(a is b for a, b in zip(out, dicts, strict=True)):
        return names, list(rows)
    out_names = names if "label_source" in names else [*names, "label_source"]
    return out_names, [[r.get(n, MODEL) if n == "label_source" else r[n] for n in out_names] for r in out]


def _corrected_entity_row(row: dict[str, Any], label: str) -> dict[str, Any]:
    new = dict(row)
    new["sentiment"] = label
    new["sentiment_score"] = _SENTIMENT_SCORE[label]
    new["label_source"] = ANALYST
    return new


# --- recording --------------------------------------------------------------------------------------------------


def _insert(client: Any, table: str, rows: Sequence[dict[str, Any]]) -> None:
    names = list(rows[0])
    client.insert(table, [[r[n] for n in names] for r in rows], column_names=names)


def _one(client: Any, sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
    rows = _rows(client.query(sql, parameters=params))
    return rows[0] if rows else None


def _entity_row(client: Any, doc: dict[str, Any], entity: str) -> dict[str, Any]:
    doc_id = str(doc["id"])
    key = {"id": doc_id, "published_ms": int(_utc(doc["published_at"]).timestamp() * 1000)}
    try:
        row = _one(client, ENTITY_SQL, key | {"entity": entity})
    except Exception as exc:
        if "UNKNOWN_TABLE" in str(exc):
            raise CorrectionError(
                "field", "entity-level sentiment is not stored here (no document_entities table)"
            ) from exc
        raise
    if row is None:
        known = [str(r[0]) for r in client.query(ENTITIES_OF_SQL, parameters=key).result_rows]
        listed = ", ".join(known) if known else "none"
        raise CorrectionError(
            "entity", f"document {doc_id} has no entity-level sentiment for {entity!r}; its entities: {listed}"
        )
    return row


def record_correction(
    client: Any,
    *,
    document_id: str,
    field: str,
    label: str,
    analyst: str,
    entity: str = "",
    now: datetime | None = None,
) -> Correction:
    """Validate, store and apply one correction; returns it as stored (with the document's text and language).

    ``field``: topic | sentiment | entity_sentiment (then ``entity`` names it). ``label`` is checked against the
    product's label sets (topics, sentiments; aliases such as 'bearish' accepted), ``document_id`` against the stored
    documents, ``entity`` against the document's entity rows. Bad input raises CorrectionError (field + reason),
    before anything is written. ``previous_label`` / ``model_version`` are the overridden label and its model's
    version (a document the model did not label, e.g. an unsupported language, has previous_label '')."""
    if field not in FIELDS:
        raise CorrectionError("field", f"unknown field {field!r}; one of {', '.join(FIELDS)}")
    doc_id = _document_id(document_id)
    who = _analyst(analyst)
    name = _entity(field, entity)
    value = normalise_label(field, label)
    doc = _one(client, DOCUMENT_SQL, {"id": doc_id})
    if doc is None:
        raise CorrectionError("document_id", f"no stored document with id {doc_id!r} (expired, or never stored)")
    stamp = now or datetime.now(UTC)
    if field == "entity_sentiment":
        target = _entity_row(client, doc, name)
        previous, version = str(target.get("sentiment") or ""), str(target.get("model_version") or "")
    else:
        previous, version = str(doc.get(field) or ""), str(doc.get("model_version") or "")
    correction = Correction(
        id=str(uuid.uuid4()),
        document_id=doc_id,
        field=field,
        entity=name,
        label=value,
        previous_label=previous,
        model_version=version,
        analyst=who,
        corrected_at=stamp,
        text=document_text(doc.get("title"), doc.get("body")),
        lang=str(doc.get("lang") or ""),
    )
    _insert(client, "corrections", [{c: getattr(correction, c) for c in _CORRECTION_COLUMNS}])
    if field == "entity_sentiment":
        new = _corrected_entity_row(target, value)
        new["classified_at"] = _newer(target.get("classified_at"), stamp)
        _insert(client, "document_entities", [new])
    else:
        new = corrected_document_row(doc, [correction])
        new["classified_at"] = _newer(doc.get("classified_at"), stamp)
        if "relabeled" in new:  # not a stream row: pipeline-health figures (throughput, latency) skip it
            new["relabeled"] = 1
        _insert(client, "documents", [new])
    return correction
