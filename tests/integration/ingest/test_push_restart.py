"""The push endpoint over HTTP, and restarts: SIGKILL mid-replay loses and repeats nothing; a crash between the
broker's ack and the checkpoint is recovered; the dedupe and story memories survive restarts."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import uvicorn

from finpulse.contracts import document_id
from ingest.item import Item
from ingest.worker import Worker
from tests.integration.ingest.conftest import read_topic, wait_for

pytestmark = pytest.mark.integration


def test_push_endpoint_answers_per_item(ingest_config, stack) -> None:
    cfg = ingest_config()
    worker = Worker(cfg)
    worker.start([])
    server = uvicorn.Server(uvicorn.Config(worker.app(), host="127.0.0.1", port=cfg.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{cfg.port}"
    try:
        wait_for(lambda: server.started, what="push server")
        one = {"id": "c-1", "body": "Dump $TSLA now, email me bob@x.example", "author": "bob", "source": "forum"}
        assert httpx.post(f"{url}/v1/push", json=one).status_code == 401
        assert httpx.post(f"{url}/v1/push", json=one, headers={"X-API-Key": "wrong"}).status_code == 401
        r = httpx.post(f"{url}/v1/push", json=one, headers={"Authorization": "Bearer k1"})
        assert r.status_code == 200 and r.json()["results"] == [
            {"index": 0, "status": "accepted", "id": document_id("push:forum", "c-1")}
        ]
        lines = [
            json.dumps({"id": "c-1", "body": "again", "source": "forum"}),  # same id: duplicate
            "{not json",
            json.dumps(["an", "array"]),
            json.dumps({"body": "x", "colour": "red"}),
            json.dumps({"title": "  ", "body": "<script>x</script>"}),
            json.dumps(
                {"title": "茅台股价大跌，割肉离场", "kind": "comment", "published_at": "2024-04-30T08:00:00+08:00"}
            ),
        ]
        r = httpx.post(
            f"{url}/v1/push",
            content="\n".join(lines).encode(),
            headers={"X-API-Key": "k1", "Content-Type": "application/x-ndjson"},
        )
        body = r.json()
        assert r.status_code == 200
        assert [x["status"] for x in body["results"]] == [
            "duplicate", "rejected", "rejected", "rejected", "rejected", "accepted",
        ]  # fmt: skip
        reasons = [x.get("reason", "") for x in body["results"]]
        assert reasons[1].startswith("bad_json: line 2") and reasons[2].startswith("not_object")
        assert reasons[3].startswith("unknown_field: colour") and reasons[4].startswith("empty_text")
        assert httpx.post(f"{url}/v1/push", content=b"\xff\xfe{", headers={"X-API-Key": "k1"}).status_code == 400
        big = b'{"body": "' + b"x" * (cfg.max_fetch_bytes + 10) + b'"}'
        assert httpx.post(f"{url}/v1/push", content=big, headers={"X-API-Key": "k1"}).status_code == 413
        status = httpx.get(f"{url}/status").json()
        assert status["sources"]["push"]["rejected"] == {
            "bad_json": 1,
            "not_object": 1,
            "unknown_field": 1,
            "empty_text": 1,
        }
        assert "finpulse_ingest_produced_total" in httpx.get(f"{url}/metrics").text
    finally:
        server.should_exit = True
        thread.join(10)
        worker.stop()
    docs = [d for _, d in read_topic(stack.settings, cfg.topic)]
    assert len(docs) == 2
    forum = next(d for d in docs if d["source"] == "push:forum")
    assert forum["body"] == "Dump $TSLA now, email me [EMAIL]" and forum["tickers"] == ["TSLA"]
    zh = next(d for d in docs if d["source"] == "push")
    assert zh["lang"] == "zh" and zh["tickers"] == ["600519.SH"] and zh["published_at"].startswith("2024-04-30T00:00")


def _distinct_texts(n: int) -> list[str]:
    # Similar template lines would be copies of one story; these differ in every word (20 distinct stories).
    rng = random.Random(5)
    words = [
        "bank",
        "chip",
        "oil",
        "auto",
        "retail",
        "bond",
        "yield",
        "merger",
        "probe",
        "guidance",
        "dividend",
        "recall",
        "strike",
        "tariff",
        "loan",
    ]
    return [" ".join(rng.choice(words) + str(rng.randint(0, 999)) for _ in range(8)) for _ in range(n)]


def _write_jsonl(path: Path, n: int) -> list[str]:
    texts = _distinct_texts(n)
    with path.open("w") as fh:
        for i, text in enumerate(texts):
            row = {"id": f"r{i}", "headline": text, "date": 1_700_000_000 + i}
            fh.write(json.dumps(row) + "\n")
    return [f"r{i}" for i in range(n)]


def test_sigkill_mid_replay_neither_loses_nor_repeats(stack, topic: str, tmp_path: Path) -> None:
    n = 3000
    ids = _write_jsonl(tmp_path / "hist.jsonl", n)
    env = {
        **stack.env,
        "FINPULSE_TOPIC_RAW": topic,
        "FINPULSE_INGEST_STATE_DIR": str(tmp_path / "state"),
        "FINPULSE_INGEST_BATCH_SIZE": "40",
    }
    # --keep-times: the 2023 rows are past the documents' retention; this test reads Kafka, not ClickHouse
    argv = [sys.executable, "-m", "finpulse", "ingest", "replay", str(tmp_path / "hist.jsonl"), "--speed", "1000",
            "--source", "hist", "--map", "title=headline", "--keep-times"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: len(read_topic(stack.settings, topic)) >= 600, timeout=60, what="a third of the replay")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(read_topic(stack.settings, topic))
    assert before < n, "the replay finished before the kill; make it slower"
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = [d["id"] for _, d in read_topic(stack.settings, topic)]
    assert len(got) == n and set(got) == {document_id("hist", i) for i in ids}
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)  # finished: nothing new
    assert again.returncode == 0 and f"hist: {n} read, 0 accepted, {n} duplicates" in again.stdout, again.stdout
    assert len(read_topic(stack.settings, topic)) == n


def test_crash_between_ack_and_checkpoint_is_recovered(ingest_config, stack) -> None:
    cfg = ingest_config()
    texts = _distinct_texts(20)
    items = [Item(title=text, source_id=f"b{i}") for i, text in enumerate(texts)]
    worker = Worker(cfg)
    worker.start([])
    assert worker.pipeline.ready.wait(30)  # recovery done: it commits too

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    real_commit = worker.store.commit
    worker.store.commit = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        worker.pipeline.process("crashy", "news", items, {"page": 2})
    worker.store.commit = real_commit  # type: ignore[method-assign]
    worker.stop()
    assert len(read_topic(stack.settings, cfg.topic)) == 20

    worker = Worker(cfg)  # restart: position still unset, the same items are fetched again
    worker.start([])
    try:
        assert worker.store.position("crashy") is None
        results = worker.pipeline.process("crashy", "news", items, {"page": 2})
        assert [r.status for r in results] == ["duplicate"] * 20
        assert worker.store.position("crashy") == {"page": 2}
    finally:
        worker.stop()
    assert len(read_topic(stack.settings, cfg.topic)) == 20

    worker = Worker(cfg)  # the dedupe and story memories survive a plain restart too
    worker.start([])
    try:
        again = worker.pipeline.process("crashy", "news", [items[3]])
        assert again[0].status == "duplicate"  # a redelivery (same id) is dropped
        copy = worker.pipeline.process("other", "news", [Item(title=texts[3] + "!", source_id="zz")])
        assert copy[0].status == "accepted"  # a near copy from another source is kept, as a copy of the story
    finally:
        worker.stop()
    docs = {d["id"]: d for _, d in read_topic(stack.settings, cfg.topic)}
    head = document_id("crashy", "b3")
    assert (docs[head]["story_id"], docs[head]["novelty"]) == (head, 1.0)
    assert (docs[copy[0].id]["story_id"], docs[copy[0].id]["novelty"]) == (head, 0.75)
