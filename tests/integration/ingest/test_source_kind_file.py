"""A source kind added as one new file (the toy kind of tests/unit/ingest/test_source_kinds.py, written into a folder
of the ingest.sources package) runs from a sources.toml table through the real worker onto the real Kafka topic."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.config import build_config
from ingest.worker import Worker
from tests.integration.ingest.conftest import read_topic, wait_for
from tests.stack import Stack, free_ports
from tests.unit.ingest.test_source_kinds import toy_kind  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


def test_a_kind_in_one_new_file_lands_on_kafka(toy_kind: Path, stack: Stack, topic: str, tmp_path: Path) -> None:  # noqa: F811
    sources = tmp_path / "sources.toml"
    sources.write_text('[[toy]]\nname = "toy-kafka"\ncount = 4\nword = "beta"\n\n[push]\nenabled = false\n')
    cfg = build_config(stack.settings, sources, topic=topic, state_dir=tmp_path / "state", port=free_ports(1)[0])
    worker = Worker(cfg)
    worker.start(spool=False)
    try:
        worker.wait_sources(60)
        docs = wait_for(lambda: len(read_topic(stack.settings, topic)) >= 4 and read_topic(stack.settings, topic))
    finally:
        worker.stop()
    assert sorted(d["title"] for _, d in docs) == [f"beta number {i} moves $AAPL" for i in range(4)]
    assert {d["source"] for _, d in docs} == {"toy-kafka"}
    assert {key for key, _ in docs} == {b"AAPL"}  # keyed by primary ticker, like every other kind
