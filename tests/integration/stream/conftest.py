"""Stream integration fixtures: a tiny real model in a registry, stream worker processes, and helpers that produce
to and count in the session stack. Each test uses its own topics and consumer group, so tests do not interfere."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from finpulse.contracts import RawDocument, make_raw
from finpulse.settings import Settings, load_settings
from tests.models import micro_encoder
from tests.stack import Stack, free_ports

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

POSITIVE = ["shares soar after record profit", "beats estimates and raises guidance"]
NEGATIVE = ["shares plunge after profit warning", "misses estimates and cuts guidance"]
NEUTRAL = ["to hold annual meeting on Tuesday", "announces date of quarterly report"]


@pytest.fixture(scope="session")
def stream_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny model trained through classifier.train and promoted in its own registry."""
    from classifier.config import TrainingArguments
    from classifier.train import train

    root = tmp_path_factory.mktemp("stream-model")
    data = root / "data" / "en"
    data.mkdir(parents=True)
    rng = random.Random(3)
    rows = []
    for i in range(120):
        label, phrases = rng.choice([("bullish", POSITIVE), ("bearish", NEGATIVE), ("neutral", NEUTRAL)])
        rows.append({"text": f"Acme {rng.choice(phrases)} #{i}", "label": label})
    pd.DataFrame(rows).to_csv(data / "tfns_sentiment_train.csv", index=False)
    topics = [{"text": f"Acme declares dividend of {i} cents", "label": "Dividend"} for i in range(40)]
    topics += [{"text": f"Acme files for IPO valued at {i} million", "label": "IPO"} for i in range(40)]
    pd.DataFrame(topics).to_csv(data / "tfns_topic_train.csv", index=False)
    base = micro_encoder(root / "micro-encoder")
    settings = load_settings(data_dir=root / "fp", model_dir=root / "registry", shared_data_dir=root / "data")
    args = TrainingArguments(
        base_model=str(base),
        datasets=["tfns_sentiment", "tfns_topic"],
        max_steps=6,
        batch_size=16,
        max_length=64,
        threads=1,
    )
    info = train(args, settings, name="micro", data_root=root / "data", promote=True, progress=False)
    return {"registry": root / "registry", "path": info.path, "version": info.model_version}


@dataclass
class StreamEnv:
    """One test's slice of the stack: its own topics, consumer group, health ports and model registry."""

    stack: Stack
    env: dict[str, str]
    logs: Path
    workers: list[Worker] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        fields = {k[len("FINPULSE_") :].lower(): v for k, v in self.env.items() if k.startswith("FINPULSE_")}
        return load_settings(**fields)

    def worker(self, index: int = 0) -> Worker:
        w = Worker(self, index)
        self.workers.append(w)
        w.start()
        return w

    def produce(self, values: list[tuple[bytes | None, bytes]]) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(
            bootstrap_servers=self.settings.kafka_servers, max_request_size=20 * 1024 * 1024, linger_ms=5, acks="all"
        )
        try:
            for key, value in values:
                producer.send(self.settings.topic_raw, key=key, value=value)
            producer.flush(60)
        finally:
            producer.close()

    def produce_docs(self, docs: list[RawDocument]) -> None:
        self.produce([(d.key, d.to_json()) for d in docs])

    def query(self, sql: str, **params: Any) -> list[tuple]:
        from warehouse.client import create_client

        client = create_client(self.settings)
        try:
            return client.query(sql, parameters=params).result_rows
        finally:
            client.close()

    def distinct(self, source: str) -> int:
        return int(self.query("SELECT uniqExact(id) FROM documents WHERE source = {s:String}", s=source)[0][0])

    def wait_distinct(
        self, source: str, expected: int, timeout: float, on_wait: Callable[[], None] | None = None
    ) -> int:
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            try:
                seen = self.distinct(source)
            except Exception:  # the endpoint may be restarting
                seen = -1
            if seen >= expected:
                return seen
            for w in self.workers:
                w.check_alive()
            if on_wait:
                on_wait()
            time.sleep(0.25)
        raise AssertionError(f"{seen} of {expected} documents of {source} queryable after {timeout} s\n{self.tails()}")

    def tails(self) -> str:
        return "\n".join(w.tail() for w in self.workers)


class Worker:
    def __init__(self, env: StreamEnv, index: int) -> None:
        self.env = env
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = env.logs / f"worker-{index}.log"
        self.expect_dead = False

    @property
    def port(self) -> int:
        return self.env.settings.stream_port + self.index

    def start(self) -> None:
        self.expect_dead = False
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "finpulse", "stream", "run", "--index", str(self.index)],
                env=self.env.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def health(self) -> dict[str, Any] | None:
        from stream.service import health

        return health(self.env.settings, self.index, timeout_s=1.0)

    def wait_ready(self, timeout: float = 90.0, partitions: bool = True) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            h = self.health()
            if h and h["ready"] and (h["partitions"] or not partitions):
                return h
            time.sleep(0.25)
        raise AssertionError(f"worker {self.index} not ready after {timeout} s\n{self.tail()}")

    def check_alive(self) -> None:
        if self.proc is not None and not self.expect_dead and self.proc.poll() is not None:
            raise AssertionError(f"worker {self.index} exited with {self.proc.returncode}\n{self.tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.expect_dead = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.expect_dead = True
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def metrics(self) -> str:
        from finpulse import probe

        return probe.get_text(f"http://127.0.0.1:{self.port}/metrics", timeout_s=2)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return f"--- worker {self.index} log\n" + "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def stream_env(stack: Stack, stream_model: dict[str, Any], tmp_path: Path) -> Iterator[StreamEnv]:
    name = uuid.uuid4().hex[:8]
    port = free_ports(1)[0]
    env = dict(stack.env)
    env |= {
        "FINPULSE_TOPIC_RAW": f"test.{name}.raw",
        "FINPULSE_TOPIC_CLASSIFIED": f"test.{name}.classified",
        "FINPULSE_TOPIC_DLQ": f"test.{name}.dlq",
        "FINPULSE_TOPIC_ALERTS": f"test.{name}.alerts",
        "FINPULSE_STREAM_GROUP": f"test-stream-{name}",
        "FINPULSE_STREAM_PORT": str(port),
        "FINPULSE_MODEL_DIR": str(stream_model["registry"]),
        "FINPULSE_MODEL_THREADS": "1",
        "FINPULSE_STREAM_SESSION_TIMEOUT_S": "6",
        "FINPULSE_STREAM_MODEL_POLL_S": "0.5",
        "FINPULSE_STREAM_RETRY_MAX_S": "2",
        "FINPULSE_LOG_FORMAT": "json",
    }
    se = StreamEnv(stack, env, tmp_path)
    try:
        yield se
    finally:
        for w in se.workers:
            w.stop()


def docs(source: str, n: int, lang: str = "en", start: int = 0) -> list[RawDocument]:
    phrases = POSITIVE + NEGATIVE + NEUTRAL
    return [
        make_raw(
            source=source,
            kind="news",
            title=f"Acme {phrases[i % len(phrases)]} #{i}",
            source_id=str(i),
            lang=lang,
            tickers=[f"T{i % 50}"],
        )
        for i in range(start, start + n)
    ]


def consume_all(settings: Settings, topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=32 * 1024 * 1024,
        consumer_timeout_ms=2000,
    )
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
    finally:
        consumer.close()
    return out


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()
