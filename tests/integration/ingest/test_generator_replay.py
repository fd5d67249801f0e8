"""The scenario generator and file replay through the real worker path to the real Kafka: the documents on the topic
are exactly the expected ones, the generator's injected surge shows on its ticker, and replay keeps the file's time
gaps scaled by --speed."""

from __future__ import annotations

import csv
import itertools
import statistics
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kafka import KafkaConsumer, TopicPartition

from finpulse.contracts import RawDocument, document_id, parse_raw
from finpulse.settings import Settings
from ingest.sources import generator
from ingest.worker import Worker
from tests.stack import Stack

pytestmark = pytest.mark.integration


def read_records(settings: Settings, topic: str) -> list[tuple[int, RawDocument]]:
    """Every message on the topic as (broker timestamp in ms, parsed document), in timestamp order."""
    with closing(KafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=None)) as consumer:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[tuple[int, RawDocument]] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend((r.timestamp, parse_raw(r.value)) for r in records)
    return sorted(out, key=lambda pair: (pair[0], pair[1].published_at))  # a batch shares a millisecond


def ingest_cli(stack: Stack, topic: str, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "FINPULSE_TOPIC_RAW": topic, "FINPULSE_INGEST_STATE_DIR": str(state)}
    proc = subprocess.run(
        [sys.executable, "-m", "finpulse", "ingest", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"ingest {' '.join(args)} exited {proc.returncode}\n{proc.stderr}"
    return proc


# --- scenario generator ----------------------------------------------------------------------------------------


def test_generate_cli_produces_valid_bilingual_documents(stack: Stack, topic: str, tmp_path: Path) -> None:
    count, seed = 300, 11
    args = ("generate", "--count", str(count), "--seed", str(seed), "--rate", "100000", "--source", "gen-cli")
    done = ingest_cli(stack, topic, tmp_path / "state", *args)
    assert f"produced {count}," in done.stdout
    docs = [doc for _, doc in read_records(stack.settings, topic)]
    assert len(docs) == count
    assert sorted(d.id for d in docs) == sorted(document_id("gen-cli", f"{seed}:{k}") for k in range(count))
    assert {d.source for d in docs} == {"gen-cli"}
    assert all(d.tickers for d in docs), [d for d in docs if not d.tickers][:3]
    assert all(d.title or d.body for d in docs)
    langs = [d.lang for d in docs]
    assert {"en", "zh"} <= set(langs) and min(langs.count("en"), langs.count("zh")) > count // 10
    assert {d.kind for d in docs} == {"news", "comment"}
    assert {d.meta["gen_mood"] for d in docs} == {"negative", "neutral", "positive"}
    # Same seed and source again, on the same state dir: the position is stored, nothing is produced twice.
    again = ingest_cli(stack, topic, tmp_path / "state", *args)
    assert "produced 0," in again.stdout
    assert len(read_records(stack.settings, topic)) == count


class VirtualClock:
    """Stands in for the generator module's `time`: every reading is `step_s` later than the one before, so a
    scenario's minutes pass in a few loop turns and each document's scenario time does not depend on machine load."""

    def __init__(self, step_s: float) -> None:
        self.now, self.step_s = 0.0, step_s

    def monotonic(self) -> float:
        self.now += self.step_s
        return self.now


def test_negative_surge_scenario_reaches_kafka(
    stack: Stack, topic: str, ingest_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sc = generator.SCENARIOS["negative_surge"]
    (event,) = sc.events
    rate, step_s = 10.0, 4.0  # 40 documents per loop turn, the event from 30 s to 150 s scenario time
    count = int((event.start_s + event.duration_s + 60) * rate)
    monkeypatch.setattr(generator, "time", VirtualClock(step_s))
    cfg = ingest_config(batch_size=100)
    gen = generator.Config(name="gen-surge", rate=rate, scenario="negative_surge", seed=3, count=count)
    worker = Worker(cfg)
    worker.start([generator.Source(gen, cfg.batch_size)])
    try:
        worker.wait_sources(90)
        assert not any(t.is_alive() for t in worker.threads), "the generator did not finish in 90 s"
    finally:
        worker.stop()
    docs = [doc for _, doc in read_records(stack.settings, topic)]
    assert len(docs) == count
    by_seq = {document_id("gen-surge", f"3:{k}"): k for k in range(count)}
    assert len({d.id for d in docs}) == count and {d.id for d in docs} == set(by_seq)
    docs.sort(key=lambda d: by_seq[d.id])
    assert all(d.tickers for d in docs)
    # Every document is English or Chinese; only the odd comment with a masked (mixed-script) contact may be 'und'.
    wrong_lang = [(d.lang, d.title or d.body) for d in docs if d.lang not in ("en", "zh") and "masked" not in d.meta]
    assert not wrong_lang, wrong_lang[:5]

    # Document k was generated at scenario time ~ k / rate (one loop turn of granularity).
    def window(d: RawDocument) -> str:
        t = by_seq[d.id] / rate
        if event.start_s + step_s < t < event.start_s + event.duration_s - step_s:
            return "event"
        if t < event.start_s - step_s or t > event.start_s + event.duration_s + step_s:
            return "baseline"
        return "edge"

    tagged = [d for d in docs if d.meta.get("gen_event") == f"negative:{event.ticker}"]
    assert tagged and all(window(d) != "baseline" for d in tagged)
    assert all(d.tickers == [event.ticker] and d.meta["gen_mood"] == "negative" for d in tagged)

    def share(docs_in: list[RawDocument], pred: Any) -> float:
        return sum(1 for d in docs_in if pred(d)) / len(docs_in)

    during = [d for d in docs if window(d) == "event"]
    baseline = [d for d in docs if window(d) == "baseline"]
    assert len(during) > 500 and len(baseline) > 500
    on_ticker = share(during, lambda d: event.ticker in d.tickers)
    assert on_ticker > 0.4 and share(baseline, lambda d: event.ticker in d.tickers) < 0.15
    negative_on_ticker = [d for d in during if event.ticker in d.tickers]
    assert share(negative_on_ticker, lambda d: d.meta["gen_mood"] == "negative") > 0.85
    assert (
        share(during, lambda d: d.meta["gen_mood"] == "negative")
        > share(baseline, lambda d: d.meta["gen_mood"] == "negative") + 0.25
    )
    # The text says so too: the English event documents name Tesla or $TSLA.
    english = [d for d in tagged if d.lang == "en"]
    assert english and all("Tesla" in d.title + d.body or "$TSLA" in d.title + d.body for d in english)


# --- file replay -----------------------------------------------------------------------------------------------

GAP_S, SPEED, ROWS = 60, 600.0, 12
BASE = datetime(2024, 4, 30, 13, 30, tzinfo=UTC)
TICKERS = ["AAPL", "MSFT", "NVDA", "TSLA"]


def _rows() -> list[dict[str, Any]]:
    # Every headline differs in every word: similar ones would be dropped as near duplicates, by design.
    words = ["bank", "chip", "oil", "auto", "retail", "bond", "yield", "merger", "probe", "tariff", "loan", "strike"]
    rows = []
    for i in range(ROWS):
        text = " ".join(f"{words[(i + j) % len(words)]}{i * 37 + j * 11}" for j in range(7))
        ts = BASE.timestamp() + i * GAP_S
        rows.append({"uid": f"h{i}", "headline": text, "when": int(ts), "sym": TICKERS[i % len(TICKERS)]})
    rows.reverse()  # file order is not time order: replay sorts by time
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                # ISO timestamps in the CSV, epoch seconds in the Parquet file
                writer.writerow({**row, "when": datetime.fromtimestamp(row["when"], UTC).isoformat()})
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_replay_file_exactly_with_scaled_gaps(stack: Stack, topic: str, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"history{suffix}"
    rows = _rows()
    _write(path, rows)
    maps = ("--map", "id=uid", "--map", "title=headline", "--map", "published_at=when", "--map", "tickers=sym")
    done = ingest_cli(
        stack,
        topic,
        tmp_path / "state",
        "replay",
        str(path),
        "--speed",
        str(SPEED),
        "--source",
        "hist",
        "--keep-times",  # 2024 rows: past the documents' retention, and the times are what this test checks
        *maps,
    )
    assert f"hist: {ROWS} read, {ROWS} accepted, 0 duplicates, 0 rejected" in done.stdout, done.stdout
    records = read_records(stack.settings, topic)
    docs = [doc for _, doc in records]
    expected = {document_id("hist", r["uid"]): r for r in rows}
    assert len(docs) == ROWS and {d.id for d in docs} == set(expected)
    for doc in docs:
        row = expected[doc.id]
        assert doc.source == "hist" and doc.kind == "news" and doc.title == row["headline"]
        assert doc.published_at == datetime.fromtimestamp(row["when"], UTC)
        assert doc.tickers[0] == row["sym"]
    assert [d.published_at for d in docs] == sorted(d.published_at for d in docs), "produced out of time order"
    # 60 s apart in the file, --speed 600: ~0.1 s apart on the broker. A late row can shorten the gap after it,
    # never the schedule as a whole: the span from the first to the last row is at least the scaled history.
    stamps = [ts / 1000 for ts, _ in records]
    want_span = (ROWS - 1) * GAP_S / SPEED
    span = stamps[-1] - stamps[0]
    assert want_span - 0.05 <= span <= want_span + 3.0, f"span {span:.3f}s, want ~{want_span:.1f}s"
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert 0.06 <= statistics.median(gaps) <= 0.3, [round(g, 3) for g in gaps]
