"""The push endpoint: HTTP POST of one JSON document, a JSON array, or an NDJSON batch, authenticated by API key,
so any crawler or comment system can feed FinPulse. The answer lists every item: accepted (acknowledged by
Kafka, with its id), duplicate, or rejected with the reason. Nothing is acknowledged before Kafka has it."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
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


class PushEndpoint:
    def __init__(self, pipeline: Pipeline, metrics: IngestMetrics, api_keys: frozenset[str], max_bytes: int) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.api_keys = api_keys
        self.max_bytes = max_bytes

    def _authorised(self, request: Request) -> bool:
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return bool(given) and any(hmac.compare_digest(given.encode(), key.encode()) for key in self.api_keys)

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
                value = json.loads(text)
            except json.JSONDecodeError:
                if "\n" not in text.strip():
                    raise
            else:
                return [(v, "") for v in value] if isinstance(value, list) else [(value, "")]
        out: list[tuple[Any, str]] = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append((json.loads(line), ""))
            except json.JSONDecodeError as exc:
                out.append((None, f"bad_json: line {n}: {exc.msg} at column {exc.colno}"))
        return out

    @staticmethod
    def _item(value: Any, default_source: str) -> tuple[str, Item]:
        if not isinstance(value, dict):
            raise ValueError(f"not_object: expected a JSON object, got {type(value).__name__}")
        unknown = sorted(set(value) - FIELDS)
        if unknown:
            raise ValueError(f"unknown_field: {', '.join(unknown)} (allowed: {', '.join(sorted(FIELDS))})")
        source = value.get("source") or default_source
        if not isinstance(source, str) or not _SOURCE_NAME.match(source):
            raise ValueError("bad_source: source must be 1-64 characters of letters, digits, _ . : -")
        meta = value.get("meta") or {}
        if not isinstance(meta, dict):
            raise ValueError("bad_field: meta must be an object")
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
        if not self._authorised(request):
            return self._error(401, "unauthorized", "missing or wrong API key (X-API-Key or Authorization: Bearer)")
        body = await self._body(request)
        if body is None:
            return self._error(413, "too_large", f"body larger than {self.max_bytes} bytes; split the batch")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return self._error(400, "bad_encoding", f"body is not UTF-8 (byte {exc.start}); send UTF-8 JSON")
        content_type = request.headers.get("content-type", "").lower()
        try:
            records = self._records(text, content_type)
        except json.JSONDecodeError as exc:
            return self._error(400, "bad_json", f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        if not records:
            return self._error(400, "empty", "no documents in the body")
        default_source = request.query_params.get("source", "push")
        results: list[ItemResult | None] = [None] * len(records)
        groups: dict[str, list[tuple[int, Item]]] = {}
        for i, (value, error) in enumerate(records):
            try:
                if error:
                    raise ValueError(error)
                source, item = self._item(value, default_source)
            except ValueError as exc:
                reason = str(exc).split(":", 1)[0]
                self.metrics.rejected.labels("push", reason).inc()
                results[i] = ItemResult("rejected", reason=str(exc))
                continue
            groups.setdefault(source, []).append((i, item))
        futures = {
            source: asyncio.wrap_future(self.pipeline.submit(source, "comment", [it for _, it in members]))
            for source, members in groups.items()
        }
        unavailable = False
        for source, future in futures.items():
            try:
                answers = await asyncio.wait_for(asyncio.shield(future), ACK_TIMEOUT_S)
            except (TimeoutError, Stopped):
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
