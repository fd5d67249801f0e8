"""`finpulse alerts receiver`: a local webhook receiver for tests and demos. It verifies each request's HMAC
signature, remembers idempotency keys (a retried delivery is acknowledged but not shown twice) and prints what
arrives, one JSON line per delivery. ``fail_first`` answers 500 to the first N requests, to watch retries work."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alerts.signing import EVENT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, SignatureError, verify

log = logging.getLogger(__name__)


@dataclass
class Received:
    delivery_id: str
    event: str
    path: str
    body: dict[str, Any]
    duplicate: bool


@dataclass
class ReceiverState:
    secret: str
    tolerance_s: int = 300
    fail_first: int = 0
    requests: int = 0
    seen: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def build_app(state: ReceiverState, on_receive: Callable[[Received], None] | None = None) -> Starlette:
    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        with state.lock:
            state.requests += 1
            if state.requests <= state.fail_first:
                return JSONResponse({"error": "failing on purpose (fail_first)"}, status_code=500)
        try:
            verify(
                state.secret,
                body,
                request.headers.get(SIGNATURE_HEADER),
                idempotency_key=request.headers.get(IDEMPOTENCY_HEADER, ""),
                tolerance_s=state.tolerance_s,
            )
        except SignatureError as exc:
            with state.lock:
                state.rejected.append(str(exc))
            log.warning("rejected webhook: %s", exc)
            return JSONResponse({"error": str(exc)}, status_code=401)
        try:
            payload = json.loads(body)
        except json.JSONDecodeError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        with state.lock:
            duplicate = bool(key) and key in state.seen
            state.seen.add(key)
            item = Received(key, request.headers.get(EVENT_HEADER, ""), request.url.path, payload, duplicate)
            state.received.append(item)
        if on_receive is not None:
            on_receive(item)
        return JSONResponse({"ok": True, "duplicate": duplicate})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/healthz", healthz), Route("/{path:path}", receive, methods=["POST"])])


def print_received(item: Received) -> None:
    """One JSON line per delivery on stdout (duplicates marked)."""
    print(
        json.dumps(
            {"delivery_id": item.delivery_id, "event": item.event, "duplicate": item.duplicate, "body": item.body},
            ensure_ascii=False,
        ),
        flush=True,
    )
