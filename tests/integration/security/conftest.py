"""The attack suite's targets: a real local ClickHouse endpoint (``python -m finpulse.stack.clickhouse.server``) on a
free port over a fresh data dir, with the passwords it generates itself, and small limits so that floods are quick
to provoke.

Tests of the stream, push endpoint and webhooks use the session-wide ``stack`` fixture (tests/conftest.py), which
starts the real Kafka + ClickHouse stack.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from finpulse.settings import Settings, load_settings
from finpulse.stack.clickhouse.launch import free_port, start_local_endpoint
from warehouse.client import wait_until_ready

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


@dataclass
class Endpoint:
    settings: Settings
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.clickhouse_port}"

    @property
    def admin(self) -> tuple[str, str]:
        return (self.settings.clickhouse_user, self.settings.clickhouse_password)

    @property
    def analyst(self) -> tuple[str, str]:
        return (self.settings.clickhouse_analyst_user, self.settings.clickhouse_analyst_password)

    @property
    def user_files(self) -> Path:
        return self.settings.data_dir / "clickhouse" / "user_files"


def start_endpoint(data_dir: Path, **overrides: object) -> Endpoint:
    # No passwords given: the settings generate them into <data_dir>/secrets.json, as on a fresh install.
    options = {**LIMITS, **overrides}
    settings = load_settings(data_dir=data_dir, clickhouse_port=free_port(), log_level="INFO", **options)
    log = data_dir / f"endpoint-{settings.clickhouse_port}.log"
    with log.open("ab") as out:
        process = start_local_endpoint(settings, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(settings, timeout=60)
    except Exception:
        process.kill()
        raise RuntimeError(f"endpoint did not start:\n{log.read_text()}") from None
    return Endpoint(settings, process, log)


@pytest.fixture(scope="package")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    ep = start_endpoint(tmp_path_factory.mktemp("security"))
    yield ep
    if ep.process.poll() is None:
        ep.process.terminate()
        ep.process.wait(timeout=60)
