"""Attacks on the push endpoint over real HTTP (uvicorn + the ingest worker + the real Kafka): bounded work per
request, 413 caps, 503 + Retry-After when the pipeline is full without blocking the server, /healthz and /metrics
during a slow request, a rate limit per API key, and 4xx (never 500) for absurd input."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from ingest.worker import Worker
from tests.integration.ingest.conftest import ingest_config, topic, wait_for  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


@pytest.fixture()
def push(ingest_config, stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Worker]]:  # noqa: F811
    monkeypatch.setenv("FINPULSE_DATA_DIR", str(tmp_path / "data"))
    # a burst of 5 is more than any other test sends with one key
    cfg = ingest_config(api_keys=frozenset({"k1", "k2"}), push_max_records=50, push_rate_per_s=0.5, push_burst=5)
    worker = Worker(cfg)
    worker.start([])
    server = uvicorn.Server(uvicorn.Config(worker.app(), host="127.0.0.1", port=cfg.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="push server")
    try:
        yield f"http://127.0.0.1:{cfg.port}", worker
    finally:
        server.should_exit = True
        thread.join(10)
        worker.stop()


def _post(url: str, payload: object, key: str = "k1", **kw: object) -> httpx.Response:
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return httpx.post(f"{url}/v1/push", content=content, headers={"X-API-Key": key}, timeout=60, **kw)


def test_a_5_mb_title_is_answered_in_seconds(push) -> None:
    url, _ = push
    n = 4_990_000  # just under the 5 MB body cap
    for attack in ("a" * n, "<a" * (n // 2), "1 " * (n // 2)):
        started = time.monotonic()
        r = _post(url, {"id": f"big-{attack[:2]}", "title": attack, "body": "Acme"})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["status"] in ("accepted", "duplicate"), r.text  # a near-dup of the first
        assert time.monotonic() - started < 10


def test_bytes_and_records_per_request_are_capped(push) -> None:
    url, worker = push
    r = _post(url, [{"id": f"r{i}", "title": f"Acme {i}"} for i in range(51)])
    assert r.status_code == 413 and r.json()["error"] == "too_many_records"
    big = b'{"body": "' + b"x" * (worker.config.max_fetch_bytes + 10) + b'"}'
    assert _post(url, big).status_code == 413


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, 400, "too_deep"),
        ({"title": "Acme", "meta": {"a": {"b": {"c": 1}}}}, 200, "bad_field"),
        ({"title": ["not", "text"]}, 200, "bad_field"),
        ({"title": "Acme", "published_at": 10**400}, 200, "bad_timestamp"),
        ({"title": "Acme", "published_at": "9999-12-31T23:59:59"}, 200, "bad_timestamp"),
        ({"title": "Acme", "published_at": -(10**12)}, 200, "bad_timestamp"),
        ({"title": "Acme", "tickers": [{"x": 1}]}, 200, "bad_field"),
        ({"title": "Acme", "kind": 5}, 200, "bad_field"),
        (b'{"title": NaN}', 400, "bad_json"),
    ],
)
def test_absurd_input_gets_a_4xx_or_a_per_item_reason_never_500(push, payload, status, reason) -> None:
    url, _ = push
    r = _post(url, payload)
    assert r.status_code == status, r.text
    body = r.json()
    if status == 200:
        [item] = body["results"]
        assert item["status"] == "rejected" and item["reason"].startswith(reason), item
    else:
        assert body["error"] == reason


class _AlwaysFull(queue.Queue):
    """A queue that stays full: the pipeline thread polling it finds nothing to take."""

    def get(self, block: bool = True, timeout: float | None = None) -> object:
        time.sleep(timeout or 0)
        raise queue.Empty


def test_pipeline_full_is_503_with_retry_after_and_never_blocks(push) -> None:
    url, worker = push
    full = _AlwaysFull(maxsize=1)
    full.put(object())
    real, worker.pipeline._queue = worker.pipeline._queue, full
    try:
        started = time.monotonic()
        r = _post(url, {"id": "full-1", "title": "Acme"})
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
        assert time.monotonic() - started < 2
        assert httpx.get(f"{url}/healthz", timeout=2).status_code in (200, 503)
    finally:
        worker.pipeline._queue = real
    assert _post(url, {"id": "full-2", "title": "Acme after"}).status_code == 200


def test_healthz_and_metrics_answer_during_a_slow_request(push) -> None:
    url, _ = push
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps([{"id": f"slow{i}", "title": "Acme " + "x" * 1000} for i in range(40)]).encode()
    slow = socket.create_connection((host, int(port)))
    try:
        head = f"POST /v1/push HTTP/1.1\r\nHost: {host}\r\nX-API-Key: k1\r\nContent-Length: {len(body)}\r\n\r\n"
        slow.sendall(head.encode() + body[:10])  # then trickle: the request stays open
        for _ in range(3):
            started = time.monotonic()
            assert httpx.get(f"{url}/healthz", timeout=2).status_code in (200, 503)
            assert "finpulse_ingest" in httpx.get(f"{url}/metrics", timeout=2).text
            assert time.monotonic() - started < 2
            slow.sendall(body[10:20])
            time.sleep(0.3)
    finally:
        slow.close()


def test_rate_limit_per_api_key_is_429_with_retry_after(push) -> None:
    url, _ = push
    answers = [_post(url, {"id": f"rate{i}", "title": f"Acme {i}"}, key="k2") for i in range(7)]
    codes = [a.status_code for a in answers]
    assert codes[:5] == [200] * 5 and 429 in codes[5:], codes
    limited = next(a for a in answers if a.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1 and limited.json()["error"] == "rate_limited"
    assert _post(url, {"id": "rate-other", "title": "Acme other key"}, key="k1").status_code == 200  # per key
