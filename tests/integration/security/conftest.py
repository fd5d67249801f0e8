"""The attack suite's targets: a real local ClickHouse endpoint (``python -m finpulse.stack.clickhouse.server``) on a
free port over a fresh data dir, with the passwords it generates itself, and small limits so that floods are quick
to provoke.

Tests of the stream, push endpoint and webhooks use the session-wide ``stack`` fixture (tests/conftest.py), which
starts the real Kafka + ClickHouse stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from finpulse.settings import load_settings
from finpulse.stack.clickhouse.launch import free_port
from tests.integration.endpoint import Endpoint, launch

__all__ = ["LIMITS", "Endpoint", "endpoint", "start_endpoint"]

# Small on purpose: the flood and session tests reach them in seconds.
LIMITS = {
    "clickhouse_max_concurrent_queries": 4,
    "clickhouse_max_queued_queries": 8,
    "clickhouse_queue_timeout_s": 20.0,
    "clickhouse_max_sessions": 5,
    "clickhouse_max_query_bytes": 1 << 20,
    "clickhouse_analyst_max_result_rows": 1000,
    "clickhouse_analyst_max_execution_time_s": 5,
}


def start_endpoint(data_dir: Path, **overrides: object) -> Endpoint:
    # No passwords given: the settings generate them into <data_dir>/secrets.json, as on a fresh install.
    options = {**LIMITS, **overrides}
    return launch(load_settings(data_dir=data_dir, clickhouse_port=free_port(), log_level="INFO", **options))


@pytest.fixture(scope="package")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    ep = start_endpoint(tmp_path_factory.mktemp("security"))
    yield ep
    if ep.process.poll() is None:
        ep.stop()
