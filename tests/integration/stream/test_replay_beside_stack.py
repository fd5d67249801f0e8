"""The README's replay command on a running stack: `finpulse ingest replay FILE` next to `finpulse up` is handed to
the running ingest worker (through its spool), so it shares that worker's dedupe memory. The first replay adds the
file's rows to ClickHouse; the same file again adds nothing, neither to Kafka nor to ClickHouse. The file's rows are
from 2020, like the README's sample: --shift-to-now brings them inside the documents' retention."""

from __future__ import annotations

import csv
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from finpulse.settings import Settings
from tests.stack import Stack, external_servers

pytestmark = pytest.mark.integration

PARTS = "kafka,clickhouse,model,ingest,stream"
ROWS = 24
WORDS = ["bank", "chip", "oil", "auto", "retail", "bond", "yield", "merger", "probe", "tariff", "loan", "strike"]


def write_ratings(path: Path, n: int, tag: str) -> Path:
    """The sample file's layout (title,date,ticker), headlines that differ in every word (no near duplicates)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["title", "date", "ticker"])
        writer.writeheader()
        for i in range(n):
            title = f"{tag} " + " ".join(f"{WORDS[(i + j) % len(WORDS)]}{i * 37 + j * 11}" for j in range(7))
            writer.writerow({"title": title, "date": f"2020-06-05 10:{i:02d}:00-04:00", "ticker": "AAPL"})
    return path


def raw_end_offsets(settings: Settings) -> int:
    with closing(KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=None)) as consumer:
        tps = [TopicPartition(settings.topic_raw, p) for p in consumer.partitions_for_topic(settings.topic_raw) or ()]
        return sum(consumer.end_offsets(tps).values())


def stored(client: Any, source: str) -> tuple[int, int]:
    """(rows, distinct ids) of a source in `documents`, read without FINAL: a redelivery would show as a row."""
    count, distinct = client.query(
        "SELECT count(), uniqExact(id) FROM finpulse.documents WHERE source = {s:String}", parameters={"s": source}
    ).result_rows[0]
    return int(count), int(distinct)


def wait_stored(client: Any, source: str, expected: int, timeout: float = 120.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    seen = (0, 0)
    while time.monotonic() < deadline:
        seen = stored(client, source)
        if seen[1] >= expected:
            return seen
        time.sleep(1)
    raise AssertionError(f"{seen[1]} of {expected} documents of {source} in ClickHouse after {timeout} s")


@pytest.mark.skipif(external_servers(), reason="starts its own local stack")
def test_replaying_a_file_twice_beside_a_running_stack_adds_nothing_the_second_time(
    tmp_path: Path, stream_model: dict[str, Any]
) -> None:
    from warehouse.client import create_client

    # The worker runs no generator here (a sources file with push only), so the raw topic moves only by replays.
    sources = tmp_path / "sources.toml"
    sources.write_text("[push]\nenabled = true\n", encoding="utf-8")
    stack = Stack.new(
        tmp_path / "data",
        FINPULSE_STACK_SERVICES=PARTS,
        FINPULSE_MODEL_DIR=str(stream_model["registry"]),
        FINPULSE_INGEST_SOURCES_FILE=str(sources),
        FINPULSE_MODEL_THREADS="1",
    )
    ratings = write_ratings(tmp_path / "ratings.csv", ROWS, "replayed")
    stack.finpulse("up", "--detach", timeout=600)
    try:
        settings = stack.settings
        client = create_client(settings)

        first = stack.finpulse("ingest", "replay", str(ratings), "--shift-to-now", timeout=120)
        assert "replay handed to it as job" in first.stderr, first.stderr  # not a second worker on the state dir
        assert f"replay:ratings: {ROWS} read, {ROWS} accepted, 0 duplicates, 0 rejected" in first.stdout, first.stdout
        assert "via the running ingest worker" in first.stdout
        assert wait_stored(client, "replay:ratings", ROWS) == (ROWS, ROWS)
        # shifted: the newest row is "now", the file's 1-minute gaps kept
        span, age = client.query(
            "SELECT dateDiff('second', min(published_at), max(published_at)), "
            "dateDiff('second', max(published_at), now64()) FROM finpulse.documents WHERE source = 'replay:ratings'"
        ).result_rows[0]
        assert span == (ROWS - 1) * 60 and 0 <= age < 600, (span, age)
        offsets = raw_end_offsets(settings)

        second = stack.finpulse("ingest", "replay", str(ratings), "--shift-to-now", timeout=120)
        assert f"replay:ratings: {ROWS} read, 0 accepted, {ROWS} duplicates, 0 rejected" in second.stdout, (
            second.stdout + second.stderr
        )
        assert raw_end_offsets(settings) == offsets, "the second replay produced to Kafka"

        # A later file reaches ClickHouse through the same stream: by then the second replay had its chance too.
        marker = write_ratings(tmp_path / "marker.csv", 3, "marker")
        stack.finpulse("ingest", "replay", str(marker), "--shift-to-now", timeout=120)
        wait_stored(client, "replay:marker", 3)
        assert stored(client, "replay:ratings") == (ROWS, ROWS), "the second replay added rows to ClickHouse"

        # The worker's /status lists its counters for the replayed source, as `finpulse ingest status` shows them.
        status = stack.finpulse("ingest", "status").stdout
        assert "replay:ratings" in status, status
    finally:
        stack.finpulse("down", check=False)
