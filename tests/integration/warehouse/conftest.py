"""A real local endpoint (``python -m finpulse.stack.clickhouse.server``) on a free port over a temporary data dir."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from finpulse.settings import Settings, load_settings
from finpulse.stack.clickhouse.launch import free_port, start_local_endpoint
from warehouse.client import wait_until_ready


@dataclass
class Endpoint:
    settings: Settings
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.clickhouse_port}"

    def stop(self, timeout: float = 60) -> int:
        self.process.terminate()
        return self.process.wait(timeout=timeout)


def start(data_dir: Path, port: int | None = None) -> Endpoint:
    settings = load_settings(
        data_dir=data_dir,
        clickhouse_port=port or free_port(),
        clickhouse_password="full-secret",
        clickhouse_analyst_password="ro-secret",
        log_level="INFO",
    )
    log = data_dir / f"endpoint-{settings.clickhouse_port}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = start_local_endpoint(settings, stdout=out, stderr=subprocess.STDOUT)
    endpoint = Endpoint(settings, process, log)
    try:
        wait_until_ready(settings, timeout=60)
    except Exception:
        process.kill()
        raise RuntimeError(f"endpoint did not start:\n{log.read_text()}") from None
    return endpoint


@pytest.fixture(scope="package")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    ep = start(tmp_path_factory.mktemp("warehouse"))
    yield ep
    if ep.process.poll() is None:
        ep.stop()
