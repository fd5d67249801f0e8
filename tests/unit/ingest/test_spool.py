"""Replay handoff through the spool: finding the running worker by its lock, a job claimed once and run through
the worker's own pipeline (so its dedupe memory), resuming after the worker stopped, and the CLI's answers to a
file it cannot replay. The broker is a fake here; tests/integration/stream/test_replay_beside_stack.py runs it on
the real stack."""

from __future__ import annotations

import csv
import fcntl
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finpulse.contracts import RawDocument
from ingest import spool
from ingest.cli import ingest_app
from ingest.metrics import IngestMetrics
from ingest.normalise import Normaliser
from ingest.pipeline import Pipeline
from ingest.producer import SendResult
from ingest.sources.base import SourceContext
from ingest.sources.replay import Config as ReplayConfig
from ingest.store import StateStore
from ingest.tickers import DEFAULT_COMPANIES

WORDS = ["bank", "chip", "oil", "auto", "retail", "bond", "yield", "merger", "probe", "tariff", "loan", "strike"]


class FakeProducer:
    """Acknowledges every document (optionally slowly) and remembers what it was sent."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.sent: list[RawDocument] = []
        self.delay_s = delay_s

    def send(self, docs: list[RawDocument]) -> SendResult:
        time.sleep(self.delay_s)
        self.sent.extend(docs)
        return SendResult(watermarks={("t", 0): len(self.sent)})

    def close(self) -> None:
        pass


@dataclass
class FakeWorker:
    """What a running `ingest run` is to the spool: the lock on the state dir and a SpoolRunner on its pipeline."""

    state_dir: Path
    producer: FakeProducer
    batch_size: int = 500

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.lock_fd = os.open(self.state_dir / "worker.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(self.lock_fd, json.dumps({"pid": os.getpid(), "spool": True}).encode())
        self.store = StateStore(self.state_dir / "state.sqlite", window_s=3600)
        normaliser = Normaliser(
            companies=DEFAULT_COMPANIES, max_title_chars=200, max_body_chars=300, worker_id="w-test", author_key=b"k"
        )
        self.pipeline = Pipeline(
            store=self.store,
            producer=self.producer,  # type: ignore[arg-type]
            normaliser=normaliser,
            metrics=IngestMetrics(),
            batch_size=self.batch_size,
        )
        self.stopping = threading.Event()
        ctx = SourceContext(self.pipeline, self.store, self.pipeline.metrics, self.stopping, 1_000_000)
        self.runner = spool.SpoolRunner(self.state_dir, self.batch_size, "t", busy=("generator",), poll_s=0.05)
        self.pipeline.start()
        self.thread = threading.Thread(target=self.runner.run, args=(ctx,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)
        self.pipeline.stop(10)
        self.store.close()
        os.close(self.lock_fd)


def write_csv(path: Path, n: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["title", "date", "ticker"])
        writer.writeheader()
        for i in range(n):
            # Every headline differs in every word: similar ones would be dropped as near duplicates, by design.
            title = " ".join(f"{WORDS[(i + j) % len(WORDS)]}{i * 37 + j * 11}" for j in range(7))
            writer.writerow({"title": title, "date": f"2024-05-01T12:{i // 60:02d}:{i % 60:02d}Z", "ticker": "AAPL"})
    return path


@pytest.fixture()
def worker(tmp_path: Path) -> Iterator[FakeWorker]:
    w = FakeWorker(tmp_path / "state", FakeProducer())
    yield w
    w.stop()


def test_running_worker_is_found_by_its_lock(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert spool.running_worker(state) is None  # no state dir at all
    state.mkdir()
    (state / "worker.lock").write_text('{"pid": 1, "spool": true}')
    assert spool.running_worker(state) is None  # a lock file left behind, nobody holds it
    fd = os.open(state / "worker.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        assert spool.running_worker(state) == spool.RunningWorker(pid=1, spool=True)
    finally:
        os.close(fd)
    assert spool.running_worker(state) is None


def test_a_file_handed_over_twice_is_produced_once(worker: FakeWorker, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "news.csv", 30)
    cfg = ReplayConfig(name="replay:news", path=path)
    first = spool.wait(worker.state_dir, spool.submit(worker.state_dir, cfg))
    assert first.state == "done" and first.topic == "t"
    assert (first.counts["read"], first.counts["accepted"], first.counts["duplicates"]) == (30, 30, 0)
    assert len(worker.producer.sent) == 30 and {d.source for d in worker.producer.sent} == {"replay:news"}
    # The second replay reads the whole file again; the worker's dedupe memory drops every row.
    second = spool.wait(worker.state_dir, spool.submit(worker.state_dir, cfg))
    assert second.state == "done"
    assert (second.counts["read"], second.counts["accepted"], second.counts["duplicates"]) == (30, 0, 30)
    assert len(worker.producer.sent) == 30
    assert not list((worker.state_dir / "spool" / "incoming").iterdir())  # both claimed


def test_shift_to_now_travels_with_the_job(worker: FakeWorker, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "old.csv", 5)  # 2024-05-01 12:00:00 .. 12:00:04
    job_id = spool.submit(worker.state_dir, ReplayConfig(name="replay:old", path=path), shift_to_now=True)
    assert spool.wait(worker.state_dir, job_id).state == "done"
    docs = sorted(worker.producer.sent, key=lambda d: d.published_at)
    assert len(docs) == 5
    assert abs(docs[-1].published_at.timestamp() - time.time()) < 60  # the newest row is now
    assert [(b.published_at - a.published_at).total_seconds() for a, b in itertools.pairwise(docs)] == [1.0] * 4
    assert docs[0].meta["original_published_at"] == "2024-05-01T12:00:00+00:00"


def test_a_job_nobody_claims_is_withdrawn_with_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = ReplayConfig(name="replay:x", path=write_csv(tmp_path / "x.csv", 2))
    job_id = spool.submit(state, cfg)
    with pytest.raises(spool.SpoolError, match="did not take the replay"):
        spool.wait(state, job_id, claim_timeout_s=0.3, poll_s=0.05)
    assert not (state / "spool" / "incoming" / f"{job_id}.json").exists()


def test_bad_jobs_fail_with_a_reason(worker: FakeWorker, tmp_path: Path) -> None:
    busy = ReplayConfig(name="generator", path=write_csv(tmp_path / "g.csv", 2))
    state = spool.wait(worker.state_dir, spool.submit(worker.state_dir, busy))
    assert state.state == "failed" and "source generator is busy" in (state.error or "")
    gone = tmp_path / "gone.csv"
    write_csv(gone, 2)
    job_id = spool.submit(worker.state_dir, ReplayConfig(name="replay:gone", path=gone))
    gone.unlink()  # removed before the worker read it
    state = spool.wait(worker.state_dir, job_id)
    assert state.state == "failed" and "does not exist" in (state.error or "")
    assert worker.producer.sent == []


def test_a_job_interrupted_by_a_worker_stop_resumes_without_repeating(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "slow.csv", 40)
    state_dir = tmp_path / "state"
    first = FakeWorker(state_dir, FakeProducer(delay_s=0.05), batch_size=4)
    job_id = spool.submit(state_dir, ReplayConfig(name="replay:slow", path=path))
    deadline = time.monotonic() + 20
    while len(first.producer.sent) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.stop()
    interrupted = spool.job_state(state_dir, job_id)
    assert interrupted is not None and interrupted.state == "interrupted"
    assert 8 <= interrupted.counts["read"] < 40
    second = FakeWorker(state_dir, FakeProducer(), batch_size=4)
    try:
        done = spool.wait(state_dir, job_id)
    finally:
        second.stop()
    assert done.state == "done" and done.resumed == 1
    produced = [d.id for d in first.producer.sent + second.producer.sent]
    assert len(produced) == len(set(produced)) == 40  # nothing lost, nothing twice
    assert done.counts["read"] == 40 and done.counts["accepted"] == 40


def test_cli_hands_the_replay_to_the_running_worker(
    worker: FakeWorker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINPULSE_INGEST_STATE_DIR", str(worker.state_dir))
    monkeypatch.setenv("FINPULSE_DATA_DIR", str(tmp_path / "data"))
    path = write_csv(tmp_path / "ratings.csv", 12)
    runner = CliRunner()
    refused = runner.invoke(ingest_app, ["replay", str(path)])
    # 2024 rows, a 365-day retention: refused before anything is produced, with the two ways out
    assert refused.exit_code == 2, refused.output
    assert "all 12 rows are older than the documents' retention (365 days" in refused.output
    assert "--shift-to-now" in refused.output and "--keep-times" in refused.output
    assert worker.producer.sent == []
    first = runner.invoke(ingest_app, ["replay", str(path), "--keep-times"])
    assert first.exit_code == 0, first.output
    assert "replay handed to it as job" in first.output
    assert "replay:ratings: 12 read, 12 accepted, 0 duplicates, 0 rejected" in first.output
    second = runner.invoke(ingest_app, ["replay", str(path), "--shift-to-now"])
    assert second.exit_code == 0, second.output
    assert "replay:ratings: 12 read, 0 accepted, 12 duplicates, 0 rejected" in second.output
    assert "retention" not in second.output
    assert len(worker.producer.sent) == 12


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", "hello", "cannot tell the format"),
        ("numbers.csv", "a,b\n1,2\n", "no text column"),
        ("empty.csv", "", "no records"),
        ("garbage.jsonl", "not json\nstill not\n", "not JSON lines"),
        ("broken.parquet", "PAR1 but not really", "cannot be read as parquet"),
    ],
)
def test_cli_refuses_a_file_it_cannot_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, content: str, message: str
) -> None:
    monkeypatch.setenv("FINPULSE_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / name
    path.write_text(content)
    result = CliRunner().invoke(ingest_app, ["replay", str(path)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "data" / "ingest").exists()  # refused before any worker state was touched


def test_cli_names_a_missing_file_and_a_mapping_to_absent_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINPULSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps the error box at the terminal width (a long tmp path splits it)
    missing = CliRunner().invoke(ingest_app, ["replay", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    path = write_csv(tmp_path / "r.csv", 2)
    mapped = CliRunner().invoke(ingest_app, ["replay", str(path), "--map", "title=headline"])
    assert mapped.exit_code == 2 and "title=headline" in mapped.output


def test_cli_warns_about_rows_still_past_the_retention_after_the_shift(
    worker: FakeWorker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINPULSE_INGEST_STATE_DIR", str(worker.state_dir))
    monkeypatch.setenv("FINPULSE_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "span.csv"
    path.write_text(
        "title,date,ticker\nbank merger probe tariff loan strike,2018-01-02,AAPL\n"
        "chip yield bond retail auto oil,2020-06-05,MSFT\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(ingest_app, ["replay", str(path), "--shift-to-now"])
    assert result.exit_code == 0, result.output
    assert "1 of 2 rows are older than the documents' retention (365 days" in result.output
    assert "even shifted to end now" in result.output
    assert "2 read, 2 accepted" in result.output  # Kafka gets both; the warning says ClickHouse keeps one


def test_a_cancelled_job_keeps_its_position_and_the_next_replay_continues(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "long.csv", 40)
    w = FakeWorker(tmp_path / "state", FakeProducer(delay_s=0.05), batch_size=4)
    try:
        cfg = ReplayConfig(name="replay:long", path=path)
        job_id = spool.submit(w.state_dir, cfg)
        deadline = time.monotonic() + 20
        while len(w.producer.sent) < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        spool.cancel(w.state_dir, job_id)  # what the CLI does on Ctrl-C
        cancelled = spool.wait(w.state_dir, job_id)
        assert cancelled.state == "cancelled" and 8 <= cancelled.counts["read"] < 40
        w.producer.delay_s = 0.0
        rest = spool.wait(w.state_dir, spool.submit(w.state_dir, cfg))
        assert rest.state == "done" and rest.counts["start"] == cancelled.counts["read"]
        assert rest.counts["read"] == 40 - cancelled.counts["read"]
        produced = [d.id for d in w.producer.sent]
        assert len(produced) == len(set(produced)) == 40
    finally:
        w.stop()
