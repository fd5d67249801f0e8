"""Shared fixtures. `stack` is one real local stack (Kafka + ClickHouse) for the whole integration session, or the
external servers named by FINPULSE_KAFKA_BOOTSTRAP and FINPULSE_CLICKHOUSE_URL when both are set."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.stack import EXTERNAL_ENV, Stack

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download from a hub
# A developer's own FINPULSE_* settings must not leak into tests (except the external servers to test against).
for _key in [k for k in os.environ if k.startswith("FINPULSE_") and k not in EXTERNAL_ENV]:
    del os.environ[_key]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack.new(tmp_path_factory.mktemp("finpulse-stack"))
    s.up()
    try:
        yield s
    finally:
        s.down()
