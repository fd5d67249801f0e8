"""Who may ask the local endpoint, and how many at once.

``HostGuard``: a browser page on another site can POST ``text/plain`` to 127.0.0.1 without a CORS preflight, and a
DNS-rebinding page reaches it under its own host name; both carry a foreign ``Origin`` or ``Host`` header, which
is refused with 403 (what a real server's ``http_allowed_origins``-style checks and a reverse proxy would do).

``Admission``: at most ``max_concurrent`` queries run; up to ``max_queued`` more wait (on the event loop, holding
no thread) for at most ``queue_timeout_s``; anything beyond gets 503 at once. Engine calls run on a thread pool
larger than ``max_concurrent``, so waiting queries can never starve the threads that running ones need, and
``/ping`` (pure event loop) always answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import anyio

from finpulse.stack.clickhouse.errors import ACCESS_DENIED, TOO_MANY_SIMULTANEOUS_QUERIES, ClickHouseError

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def _host_name(value: str) -> str:
    """``host``, ``host:port``, ``[::1]:port`` -> the bare lower-case host name."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


class HostGuard:
    def __init__(self, hosts: Iterable[str] = (), origins: Iterable[str] = ()) -> None:
        self.hosts = {_host_name(h) for h in (*LOCAL_HOSTS, *hosts) if h.strip()}
        self.hosts.discard("0.0.0.0")  # a wildcard bind is not a name a page should use
        self.origins = {o.strip().rstrip("/").lower() for o in origins if o.strip()}

    @classmethod
    def from_settings(cls, settings: object) -> HostGuard:
        extra = [h for h in getattr(settings, "clickhouse_allowed_hosts", "").split(",") if h.strip()]
        origins = [o for o in getattr(settings, "clickhouse_allowed_origins", "").split(",") if o.strip()]
        return cls([getattr(settings, "clickhouse_host", ""), *extra], origins)

    def refusal(self, headers: Mapping[str, str]) -> ClickHouseError | None:
        host = headers.get("host")
        if host is not None and _host_name(host) not in self.hosts:
            return ClickHouseError(
                ACCESS_DENIED,
                f"Host {host!r} is not allowed: the local endpoint answers only {sorted(self.hosts)} "
                "(add a name to FINPULSE_CLICKHOUSE_ALLOWED_HOSTS)",
            )
        origin = headers.get("origin")
        if origin is not None and not self.origin_allowed(origin):
            return ClickHouseError(
                ACCESS_DENIED,
                f"Cross-site request from Origin {origin!r} refused (add it to FINPULSE_CLICKHOUSE_ALLOWED_ORIGINS)",
            )
        return None

    def origin_allowed(self, origin: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins:
            return True
        if origin == "null":  # sandboxed frames, file:// pages
            return False
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and (parts.hostname or "") in self.hosts


class Admission:
    def __init__(self, max_concurrent: int = 16, max_queued: int = 64, queue_timeout_s: float = 30.0) -> None:
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.queue_timeout_s = queue_timeout_s
        self._slots: anyio.Semaphore | None = None
        self.waiting = 0
        # Each admitted query uses at most one engine thread at a time; the margin serves release/cleanup calls.
        self.threads = anyio.CapacityLimiter(max_concurrent + 8)

    @property
    def slots(self) -> anyio.Semaphore:
        if self._slots is None:  # created inside the running event loop
            self._slots = anyio.Semaphore(self.max_concurrent)
        return self._slots

    @property
    def running(self) -> int:
        return self.max_concurrent - self.slots.value

    async def acquire(self) -> None:
        slots = self.slots
        if slots.value > 0 and not self.waiting:
            await slots.acquire()
            return
        if self.waiting >= self.max_queued:
            raise ClickHouseError(
                TOO_MANY_SIMULTANEOUS_QUERIES,
                f"Too many simultaneous queries: {self.max_concurrent} running and {self.waiting} queued; retry "
                "later (FINPULSE_CLICKHOUSE_MAX_CONCURRENT_QUERIES / _MAX_QUEUED_QUERIES)",
            )
        self.waiting += 1
        try:
            with anyio.fail_after(self.queue_timeout_s):
                await slots.acquire()
        except TimeoutError:
            raise ClickHouseError(
                TOO_MANY_SIMULTANEOUS_QUERIES,
                f"Too many simultaneous queries: no slot freed within {self.queue_timeout_s:g} s; retry later",
            ) from None
        finally:
            self.waiting -= 1

    def release(self) -> None:
        self.slots.release()
