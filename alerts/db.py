"""ClickHouse access for the alert part: one client per unit of work, and row versions that never go backwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from finpulse.settings import Settings

_lock = threading.Lock()
_last_version = 0


def next_version() -> int:
    """Nanoseconds since the epoch, strictly increasing in this process: the ReplacingMergeTree version, so two
    updates of one row in the same clock tick still keep the later one."""
    global _last_version
    with _lock:
        _last_version = max(time.time_ns(), _last_version + 1)
        return _last_version


def version_time() -> datetime:
    """A strictly increasing wall-clock time (ms resolution) for tables versioned by a DateTime64(3) column."""
    global _last_version
    with _lock:
        _last_version = max(time.time_ns(), _last_version + 1_000_000)
        _last_version -= _last_version % 1_000_000
        return datetime.fromtimestamp(_last_version / 1e9, UTC)


@contextmanager
def connect(settings: Settings, client: Any | None = None) -> Iterator[Any]:
    """The given client, or a fresh full-access client closed afterwards."""
    if client is not None:
        yield client
        return
    from warehouse.client import create_client

    own = create_client(settings)
    try:
        yield own
    finally:
        own.close()
