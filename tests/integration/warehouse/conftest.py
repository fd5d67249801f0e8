"""A real local endpoint (``python -m finpulse.stack.clickhouse.server``) on a free port over a temporary data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from finpulse.settings import load_settings
from finpulse.stack.clickhouse.launch import free_port
from tests.integration.endpoint import Endpoint, launch

__all__ = ["Endpoint", "endpoint", "start"]


def start(data_dir: Path, port: int | None = None) -> Endpoint:
    settings = load_settings(
        data_dir=data_dir,
        clickhouse_port=port or free_port(),
        clickhouse_password="full-secret",
        clickhouse_analyst_password="ro-secret",
        log_level="INFO",
    )
    return launch(settings)


@pytest.fixture(scope="package")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    ep = start(tmp_path_factory.mktemp("warehouse"))
    yield ep
    if ep.process.poll() is None:
        ep.stop()
