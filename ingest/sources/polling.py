"""The poll loop shared by the polling sources (RSS/Atom feeds, HTTP JSON APIs): poll, back off, honour Retry-After."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from ingest.pipeline import Stopped
from ingest.sources.base import SourceContext, backoff_s
from ingest.sources.fetch import FetchError


def poll_forever(
    ctx: SourceContext,
    name: str,
    poll_once: Callable[[SourceContext, httpx.Client], object],
    *,
    interval_s: float,
    backoff_max_s: float,
    fixed_cadence: bool,
) -> None:
    """Poll until the worker stops. After a success wait the interval (minus the poll's own time when
    ``fixed_cadence``); after failures back off exponentially, never sooner than the server's Retry-After."""
    failures = 0
    with httpx.Client(follow_redirects=True, headers={"User-Agent": "FinPulse-ingest/1"}) as client:
        while not ctx.stopping.is_set():
            started = time.monotonic()
            try:
                poll_once(ctx, client)
                failures = 0
                ctx.ok(name)
                wait = interval_s - (time.monotonic() - started) if fixed_cadence else interval_s
            except FetchError as exc:
                failures += 1
                wait = max(backoff_s(interval_s, failures, backoff_max_s), exc.retry_after or 0.0)
                ctx.error(name, exc.reason, exc.detail, retry_in=wait)
            except Stopped:
                return
            if not ctx.sleep(wait):
                return
