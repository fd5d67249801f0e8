"""The push endpoint: HTTP POST of one JSON document, a JSON array, or an NDJSON batch, authenticated by API key,
so any crawler or comment system can feed FinPulse. The answer lists every item: accepted (acknowledged by
Kafka, with its id), duplicate, or rejected with the reason. Nothing is acknowledged before Kafka has it."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import threading
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ingest.item import Item
from ingest.metrics import IngestMetrics
from ingest.pipeline import ItemResult, Pipeline, Stopped

log = logging.getLogger(__name__)

FIELDS = {
    "id",
    "source_id",
    "title",
    "body",
    "text",
    "url",
    "author",
    "published_at",
    "tickers",
    "kind",
    "meta",
    "source",
}
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
ACK_TIMEOUT_S = 30.0
MAX_DEPTH = 8  # a document is an object of scalars, a tickers list and a flat meta object
# Each raw field is cut to these lengths before anything else reads it (the normaliser cuts again, to its limits,
# after cleaning and masking): the work per request is bounded whatever a client sends.
FIELD_CHARS = {"title": 8_000, "body": 400_000, "text": 400_000, "url": 8_000, "author": 1_000, "id": 500}
FIELD_CHARS |= {"source_id": 500, "kind": 20, "published_at": 64, "source": 64}
MAX_TICKERS = 64
MAX_META_KEYS = 50
_EPOCH_LIMIT = 1e15  # epoch values beyond this (ms until year ~33658) are absurd


class _BadRequest(ValueError):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def _depth(value: Any, limit: int) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                break
            stack.extend((c, depth + 1) for c in (item.values() if isinstance(item, dict) else item))
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError as exc:
        raise _BadRequest("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        raise _BadRequest("bad_json", str(exc)) from exc
    return value


def _cut_fields(value: dict[str, Any]) -> dict[str, Any]:
    """Types checked and every text field cut to its limit, before any regex sees it."""
    out = dict(value)
    for name, limit in FIELD_CHARS.items():
        field = out.get(name)
        if field is None:
            continue
        if isinstance(field, bool) or not isinstance(field, str | int | float):
            raise ValueError(f"bad_field: {name} must be text, got {type(field).__name__}")
        if isinstance(field, str):
            out[name] = field[:limit]
    published = out.get("published_at")
    if isinstance(published, int | float) and not isinstance(published, bool) and not abs(published) < _EPOCH_LIMIT:
        raise ValueError(f"bad_timestamp: published_at {str(published)[:30]} is not a plausible epoch time")
    tickers = out.get("tickers")
    if isinstance(tickers, list):
        if len(tickers) > MAX_TICKERS:
            raise ValueError(f"bad_field: {len(tickers)} tickers, at most {MAX_TICKERS}")
        if not all(isinstance(t, str) for t in tickers):
            raise ValueError("bad_field: tickers must be strings")
        out["tickers"] = [t[:32] for t in tickers]
    elif isinstance(tickers, str):
        out["tickers"] = tickers[: 32 * MAX_TICKERS]
    elif tickers is not None:
        raise ValueError(f"bad_field: tickers must be a list or a string, got {type(tickers).__name__}")
    return out


class RateLimiter:
    """A token bucket per API key: ``rate`` requests per second sustained, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when allowed, else the seconds until the next request would be."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


class PushEndpoint:
    def __init__(
        self,
        pipeline: Pipeline,
        metrics: IngestMetrics,
        api_keys: frozenset[str],
        max_bytes: int,
        *,
        max_records: int = 1000,
        rate_per_s: float = 20.0,
        burst: int = 40,
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.api_keys = api_keys
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.limiter = RateLimiter(rate_per_s, burst)

    def _key(self, request: Request) -> str | None:
        """The API key the request authenticates with, or None."""
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not given:
            return None
        for key in self.api_keys:
            if hmac.compare_digest(given.encode(), key.encode()):
                return key
        return None

    def _error(self, status: int, reason: str, message: str, **headers: str) -> JSONResponse:
        self.metrics.errors.labels("push", reason).inc()
        log.info("push refused: %s", message, extra={"reason": reason, "status": status})
        return JSONResponse({"error": reason, "message": message}, status_code=status, headers=headers or None)

    async def _body(self, request: Request) -> bytes | None:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _records(text: str, content_type: str) -> list[tuple[Any, str]]:
        """(parsed value, error) per record: one object, an array, or NDJSON lines."""
        if "ndjson" not in content_type and "jsonl" not in content_type:
            try:
                value = _loads(text)
            except json.JSONDecodeError:
                if "\n" not in text.strip():
                    raise
            else:
                if _depth(value, MAX_DEPTH + 1) > MAX_DEPTH + 1:  # +1: the array around a batch
                    raise _BadRequest("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels")
                return [(v, "") for v in value] if isinstance(value, list) else [(value, "")]
        out: list[tuple[Any, str]] = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = _loads(line)
            except json.JSONDecodeError as exc:
                out.append((None, f"bad_json: line {n}: {exc.msg} at column {exc.colno}"))
                continue
            except _BadRequest as exc:
                out.append((None, f"{exc.reason}: line {n}: {exc}"))
                continue
            if _depth(value, MAX_DEPTH) > MAX_DEPTH:
                out.append((None, f"too_deep: line {n}: nested deeper than {MAX_DEPTH} levels"))
                continue
            out.append((value, ""))
        return out

    @staticmethod
    def _item(value: Any, default_source: str) -> tuple[str, Item]:
        if not isinstance(value, dict):
            raise ValueError(f"not_object: expected a JSON object, got {type(value).__name__}")
        unknown = sorted(set(value) - FIELDS)
        if unknown:
            raise ValueError(f"unknown_field: {', '.join(unknown)} (allowed: {', '.join(sorted(FIELDS))})")
        value = _cut_fields(value)
        source = value.get("source") or default_source
        if not isinstance(source, str) or not _SOURCE_NAME.match(source):
            raise ValueError("bad_source: source must be 1-64 characters of letters, digits, _ . : -")
        meta = value.get("meta") or {}
        if not isinstance(meta, dict):
            raise ValueError("bad_field: meta must be an object")
        if len(meta) > MAX_META_KEYS:
            raise ValueError(f"bad_field: meta has {len(meta)} keys, at most {MAX_META_KEYS}")
        for key, item in meta.items():
            if not isinstance(item, str | int | float | bool) and item is not None:
                raise ValueError(f"bad_field: meta.{str(key)[:40]} must be a scalar, got {type(item).__name__}")
        body = value.get("body") if value.get("body") is not None else value.get("text")
        item = Item(
            title=value.get("title"),
            body=body,
            source_id=value.get("id", value.get("source_id")),
            url=value.get("url"),
            author=value.get("author"),
            published_at=value.get("published_at"),
            tickers=value.get("tickers"),
            kind=value.get("kind"),
            meta=dict(meta),
        )
        return source if source.startswith("push") else f"push:{source}", item

    async def handle(self, request: Request) -> JSONResponse:
        if not self.api_keys:
            return self._error(
                401, "unauthorized", "push is disabled: no API keys configured (FINPULSE_INGEST_API_KEYS)"
            )
        key = self._key(request)
        if key is None:
            return self._error(401, "unauthorized", "missing or wrong API key (X-API-Key or Authorization: Bearer)")
        wait = self.limiter.take(key)
        if wait > 0:
            retry = str(max(1, int(wait + 0.999)))
            return self._error(429, "rate_limited", "too many push requests for this API key", **{"Retry-After": retry})
        if self.pipeline._queue.full():  # nothing may block the server: refuse instead of waiting for room
            return self._error(503, "busy", "the ingest pipeline is full; retry later", **{"Retry-After": "2"})
        body = await self._body(request)
        if body is None:
            return self._error(413, "too_large", f"body larger than {self.max_bytes} bytes; split the batch")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return self._error(400, "bad_encoding", f"body is not UTF-8 (byte {exc.start}); send UTF-8 JSON")
        content_type = request.headers.get("content-type", "").lower()
        try:
            # Off the event loop: parsing megabytes must not hold up /healthz, /metrics or other requests.
            records = await asyncio.to_thread(self._records, text, content_type)
        except json.JSONDecodeError as exc:
            return self._error(400, "bad_json", f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        except _BadRequest as exc:
            return self._error(400, exc.reason, str(exc))
        if not records:
            return self._error(400, "empty", "no documents in the body")
        if len(records) > self.max_records:
            return self._error(
                413, "too_many_records", f"{len(records)} documents, at most {self.max_records} per request"
            )
        default_source = request.query_params.get("source", "push")
        results: list[ItemResult | None] = [None] * len(records)
        groups: dict[str, list[tuple[int, Item]]] = {}
        for i, (value, error) in enumerate(records):
            try:
                if error:
                    raise ValueError(error)
                source, item = self._item(value, default_source)
            except Exception as exc:  # ValueError with "reason: detail"; anything else is still this item's fault
                if not isinstance(exc, ValueError):
                    exc = ValueError(f"bad_item: {type(exc).__name__}")
                reason = str(exc).split(":", 1)[0]
                self.metrics.rejected.labels("push", reason).inc()
                results[i] = ItemResult("rejected", reason=str(exc))
                continue
            groups.setdefault(source, []).append((i, item))
        futures = {}
        for source, members in groups.items():
            # submit waits while the queue is full: in a thread, so a race past the check above cannot block the loop
            submitted = await asyncio.to_thread(self.pipeline.submit, source, "comment", [it for _, it in members])
            futures[source] = asyncio.wrap_future(submitted)
        unavailable = False
        for source, future in futures.items():
            try:
                answers = await asyncio.wait_for(asyncio.shield(future), ACK_TIMEOUT_S)
            except (TimeoutError, Stopped):
                unavailable = True
                continue
            except Exception:  # the pipeline's batch failed (logged there): retryable, never a 500
                log.warning("push batch failed in the pipeline", exc_info=True)
                unavailable = True
                continue
            for (i, _), answer in zip(groups[source], answers, strict=True):
                results[i] = answer
        out = []
        for i, res in enumerate(results):
            if res is None:
                out.append({"index": i, "status": "pending", "reason": "not acknowledged by Kafka in time; retry"})
            else:
                out.append(
                    {
                        "index": i,
                        "status": res.status,
                        **({"id": res.id} if res.id else {}),
                        **({"reason": res.reason} if res.reason else {}),
                    }
                )
        counts = {s: sum(1 for o in out if o["status"] == s) for s in ("accepted", "duplicate", "rejected", "pending")}
        status = 503 if unavailable else 200
        headers = {"Retry-After": "5"} if unavailable else None
        return JSONResponse({**counts, "results": out}, status_code=status, headers=headers)
