"""`finpulse bench pipeline`: documents through a real local stack - Apache Kafka, one stream worker, the ClickHouse
endpoint - started for the run in a temporary data dir (so the figures are reproducible and nothing pollutes the
user's tables), serving the promoted model of the configured registry.

1. engine alone: ``ClassifierEngine.predict`` on the same texts, in batches of ``stream_max_batch``, in this process
   before the stack starts (the baseline the pipeline is held to);
2. throughput: N documents produced at once; sustained docs/s = the middle 80 % of documents over the time they took
   to become queryable;
3. latency: documents produced at half that rate; produce-to-queryable p50/p95/p99, where "queryable" is the moment
   a poll of ClickHouse (every POLL_S) first returns the id;
4. where the time goes: the worker's per-stage histograms (/metrics) over each phase;
5. memory: the worker's resident and peak resident memory (VmRSS / VmHWM, its /metrics gauges) at the end.

Documents are English and Chinese (``ZH_SHARE`` of them, ``lang`` = zh), as in the default stream, so one worker
serves both languages through one model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from finpulse.contracts import RawDocument, make_raw
from finpulse.settings import ENV_PREFIX, Settings, load_settings
from stream.metrics import STAGES

POLL_S = 0.1
WARMUP_DOCS = 200  # the first batches pay for lazy initialisation; not part of the figures
ZH_SHARE = 0.4  # about the generator's share of Chinese news and comments
_SYNTHETIC_ZH = ["{c}公司季度利润创新高，股价大涨", "{c}业绩不及预期，股价下跌", "{c}将于周二召开年度股东大会"]
_SYNTHETIC = [
    "{c} shares soar after record quarterly profit and raised guidance",
    "{c} misses estimates as weak demand weighs on margins, stock slides",
    "{c} to hold annual general meeting on Tuesday in Frankfurt",
    "Oil prices rise as {c} cuts crude output amid supply worries",
    "{c} declares quarterly dividend of 42 cents per share",
    "Analysts upgrade {c} to buy on strong cloud growth",
]


def _zh_texts(settings: Settings) -> list[str]:
    from classifier.data import read_table

    texts: list[str] = []
    root = settings.shared_data_dir
    for rel in ("zh/finfe_eval.csv", "zh/finnl_eval.csv"):
        if root is not None and (root / rel).is_file():
            texts.extend(read_table(root / rel)["text"].astype(str).tolist())
    return texts or [t.format(c=c) for c in ("华夏", "长江", "东方") for t in _SYNTHETIC_ZH]


def _texts(settings: Settings, n: int) -> list[tuple[str, str]]:
    """``n`` (text, lang) pairs, every ~1/ZH_SHARE-th one Chinese, in a fixed order."""
    from classifier.bench import bench_texts
    from classifier.data import DataError

    try:
        en = bench_texts(settings.shared_data_dir, n)
    except DataError:
        en = [t.format(c=c) for c in ("Acme", "Globex", "Initech", "Hooli") for t in _SYNTHETIC]
    zh = _zh_texts(settings)
    out = []
    for i in range(n):
        if int((i + 1) * ZH_SHARE) > int(i * ZH_SHARE):
            out.append((zh[i % len(zh)], "zh"))
        else:
            out.append((en[i % len(en)], "en"))
    return out


def _engine_alone(settings: Settings, model_dir: Path, texts: list[str]) -> dict[str, Any]:
    from classifier.serving import load_engine

    engine = load_engine(model_dir, settings, "cpu")  # what the worker serves (a transformer or the quick model)
    size = settings.stream_max_batch
    engine.predict(texts[: 2 * size])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), size):
        engine.predict(texts[i : i + size])
    elapsed = time.perf_counter() - started
    engine.close()
    return {
        "docs_per_s": round(len(texts) / elapsed, 1),
        "model_version": engine.model_version,
        "precision": getattr(engine, "precision", "n/a"),
        "backend": getattr(engine, "backend", type(engine).__name__),
        "threads": getattr(engine, "threads", None),
    }


class _LocalStack:
    """`finpulse up --detach` of kafka, clickhouse and stream in a temporary data dir on free ports."""

    def __init__(self, settings: Settings) -> None:
        from finpulse.stack.clickhouse.launch import free_port

        self.dir = Path(tempfile.mkdtemp(prefix="finpulse-bench-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env |= settings.child_env()
        for name in ("KAFKA_BOOTSTRAP", "CLICKHOUSE_URL", "CONFIG"):
            env.pop(ENV_PREFIX + name, None)
        env |= {
            "FINPULSE_DATA_DIR": str(self.dir),
            "FINPULSE_MODEL_DIR": str(settings.registry_dir),
            "FINPULSE_CACHE_DIR": str(settings.artifact_cache_dir),
            "FINPULSE_STACK_SERVICES": "kafka,clickhouse,stream",
            "FINPULSE_KAFKA_PORT": str(free_port()),
            "FINPULSE_KAFKA_CONTROLLER_PORT": str(free_port()),
            "FINPULSE_CLICKHOUSE_PORT": str(free_port()),
            "FINPULSE_STREAM_PORT": str(free_port()),
            "FINPULSE_LOG_FORMAT": "json",
        }
        self.env = env
        self.settings = load_settings(
            **{k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
        )

    def finpulse(self, *args: str, timeout: float = 300) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "finpulse", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(f"finpulse {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")

    def __enter__(self) -> _LocalStack:
        self.finpulse("up", "--detach")
        return self

    def __exit__(self, *_: Any) -> None:
        try:
            self.finpulse("down")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _scrape(settings: Settings) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    from finpulse import probe

    text = probe.get_text(f"http://{settings.stream_host}:{settings.stream_port}/metrics", timeout_s=5)
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{label}}}"] = sample.value
    return out


def _breakdown(before: dict[str, float], after: dict[str, float], docs: int) -> dict[str, Any]:
    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    batches = delta("finpulse_stream_batch_size_count{}")
    stages = {}
    for stage in STAGES:
        total = delta(f"finpulse_stream_stage_seconds_sum{{stage={stage}}}")
        stages[stage] = {
            "ms_per_batch": round(1000 * total / batches, 2) if batches else None,
            "ms_per_doc": round(1000 * total / docs, 3) if docs else None,
        }
    return {
        "batches": int(batches),
        "mean_batch_docs": round(delta("finpulse_stream_batch_size_sum{}") / batches, 1) if batches else None,
        "stages": stages,
    }


class _Watcher:
    """Polls ClickHouse for the run's ids and notes when each first became queryable."""

    def __init__(self, settings: Settings, source: str) -> None:
        from warehouse.client import create_client

        self.client = create_client(settings)
        self.source = source
        self.seen: dict[str, float] = {}
        self.since_ms = 0

    def poll(self) -> int:
        # Only rows classified since the last poll (minus a margin): a poll must stay cheap, or on a 2-core machine
        # the measuring itself slows the pipeline it measures.
        rows = self.client.query(
            "SELECT id, toUnixTimestamp64Milli(classified_at) FROM documents "
            "WHERE source = {s:String} AND classified_at >= fromUnixTimestamp64Milli({since:Int64})",
            parameters={"s": self.source, "since": self.since_ms},
        ).result_rows
        now = time.time()
        for doc_id, classified_ms in rows:
            self.seen.setdefault(doc_id, now)
            self.since_ms = max(self.since_ms, int(classified_ms) - 10_000)
        return len(self.seen)

    def wait_for(self, ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        wanted = set(ids)
        while not wanted <= self.seen.keys():
            if time.monotonic() > deadline:
                missing = len(wanted - self.seen.keys())
                raise RuntimeError(f"{missing} of {len(ids)} documents not queryable after {timeout:.0f} s")
            time.sleep(POLL_S)
            self.poll()


def _producer(settings: Settings) -> Any:
    from finpulse import kafka_clients

    # As ingest's producer (ingest/producer.py): a 20 ms linger batches the records of a paced run, where one
    # request per record kept the broker busy on the cores the worker's inference needs.
    return kafka_clients.producer(settings, client_id="finpulse-bench", acks="all", linger_ms=20)


def _throughput(stack: _LocalStack, docs: list[RawDocument], watcher: _Watcher) -> tuple[dict[str, Any], float]:
    producer = _producer(stack.settings)
    payloads = [(d.key, d.to_json()) for d in docs]
    started = time.time()
    for key, value in payloads:
        producer.send(stack.settings.topic_raw, key=key, value=value)
    producer.flush()
    produced = time.time()
    watcher.wait_for([d.id for d in docs], timeout=600 + len(docs) / 5)
    times = np.sort(np.array([watcher.seen[d.id] for d in docs]))
    lo, hi = int(0.1 * len(times)), int(0.9 * len(times)) - 1
    sustained = (hi - lo) / max(times[hi] - times[lo], 1e-6)
    result = {
        "docs": len(docs),
        "produce_s": round(produced - started, 2),
        "first_to_last_s": round(float(times[-1] - started), 2),
        "sustained_docs_per_s": round(float(sustained), 1),
        "overall_docs_per_s": round(len(docs) / float(times[-1] - started), 1),
    }
    producer.close()
    return result, float(sustained)


def _latency(stack: _LocalStack, docs: list[RawDocument], rate: float, watcher: _Watcher) -> dict[str, Any]:
    producer = _producer(stack.settings)
    sent: dict[str, float] = {}
    interval = 1.0 / rate
    start = time.perf_counter()
    next_poll = 0.0
    for i, doc in enumerate(docs):
        due = start + i * interval
        while (now := time.perf_counter()) < due:
            if now >= next_poll:  # poll while pacing, so "queryable" is seen as it happens
                watcher.poll()
                next_poll = time.perf_counter() + POLL_S
            time.sleep(min(0.005, max(0.0, due - time.perf_counter())))
        sent[doc.id] = time.time()
        producer.send(stack.settings.topic_raw, key=doc.key, value=doc.to_json())
    producer.flush()
    watcher.wait_for(list(sent), timeout=300)
    latencies = np.array([watcher.seen[i] - sent[i] for i in sent])
    producer.close()
    return {
        "docs": len(docs),
        "rate_docs_per_s": round(rate, 1),
        "p50_s": round(float(np.percentile(latencies, 50)), 3),
        "p95_s": round(float(np.percentile(latencies, 95)), 3),
        "p99_s": round(float(np.percentile(latencies, 99)), 3),
        "max_s": round(float(latencies.max()), 3),
        "poll_interval_s": POLL_S,
    }


def run_pipeline_bench(
    settings: Settings, *, docs: int = 5000, latency_docs: int = 1500, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    from classifier.registry import Registry
    from stream.service import health

    model_dir = Registry.from_settings(settings).resolve(None)
    pairs = _texts(settings, WARMUP_DOCS + docs + latency_docs)
    texts = [t for t, _ in pairs]
    echo(f"engine alone on {docs} texts ({100 * ZH_SHARE:.0f} % Chinese) ...")
    alone = _engine_alone(settings, model_dir, texts[WARMUP_DOCS : WARMUP_DOCS + docs])
    echo(f"  {alone['docs_per_s']} docs/s; starting a local stack (kafka, clickhouse, stream) ...")
    run = uuid.uuid4().hex[:8]
    source = f"bench-{run}"
    batch = [
        make_raw(source=source, kind="news", title=t[:1000], source_id=str(i), lang=lang)
        for i, (t, lang) in enumerate(pairs)
    ]
    with _LocalStack(settings) as stack:
        deadline = time.monotonic() + 180
        while not ((h := health(stack.settings)) and h["ready"] and h["partitions"]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the stream worker did not get ready; see {stack.dir / 'run' / 'logs'}")
            time.sleep(0.5)
        watcher = _Watcher(stack.settings, source)
        _throughput(stack, batch[:WARMUP_DOCS], watcher)
        echo(f"throughput run: {docs} documents ...")
        before = _scrape(stack.settings)
        throughput, sustained = _throughput(stack, batch[WARMUP_DOCS : WARMUP_DOCS + docs], watcher)
        after = _scrape(stack.settings)
        throughput["where_the_time_goes"] = _breakdown(before, after, docs)
        echo(f"  {throughput['sustained_docs_per_s']} docs/s; latency run at half that rate ...")
        before = _scrape(stack.settings)
        latency = _latency(stack, batch[WARMUP_DOCS + docs :], sustained / 2, watcher)
        after = _scrape(stack.settings)
        latency["where_the_time_goes"] = _breakdown(before, after, latency_docs)
        memory = _memory(after)
        echo(f"  worker memory: {memory['worker_rss_mib']} MiB resident, peak {memory['worker_peak_rss_mib']} MiB")
        # Again with the stack idle but up: this machine is shared, so the baseline is taken under both conditions
        # and the pipeline is held to the better of the two.
        echo("engine alone again, stack idle ...")
        alone_after = _engine_alone(settings, model_dir, texts[WARMUP_DOCS : WARMUP_DOCS + docs])
    return {
        "model_version": alone["model_version"],
        "cores": len(os.sched_getaffinity(0)),
        "model_threads": settings.model_threads,
        "precision": alone["precision"],
        "backend": alone["backend"],
        "engine_threads": alone["threads"],
        "stream_max_batch": settings.stream_max_batch,
        "stream_max_wait_s": settings.stream_max_wait_s,
        "engine_alone_docs_per_s": max(alone["docs_per_s"], alone_after["docs_per_s"]),
        "engine_alone_runs_docs_per_s": [alone["docs_per_s"], alone_after["docs_per_s"]],
        "pipeline_sustained_docs_per_s": throughput["sustained_docs_per_s"],
        "pipeline_vs_engine": round(
            throughput["sustained_docs_per_s"] / max(alone["docs_per_s"], alone_after["docs_per_s"]), 3
        ),
        "zh_share": ZH_SHARE,
        **memory,
        "throughput": throughput,
        "latency": latency,
    }


def _memory(scrape: dict[str, float]) -> dict[str, Any]:
    """The worker's own gauges (stream.metrics): resident now and peak resident (VmHWM), in MiB."""

    def mib(key: str) -> float | None:
        value = scrape.get(key)
        return round(value / 2**20, 1) if value is not None and value == value else None  # NaN: not Linux

    return {
        "worker_rss_mib": mib("finpulse_stream_rss_bytes{}"),
        "worker_peak_rss_mib": mib("finpulse_stream_peak_rss_bytes{}"),
    }


def format_report(report: dict[str, Any]) -> str:
    lat = report["latency"]
    lines = [
        f"model {report['model_version']} ({report['precision']}), {report['cores']} cores, "
        f"batch {report['stream_max_batch']} / {report['stream_max_wait_s']} s",
        f"engine alone        {report['engine_alone_docs_per_s']:>8.1f} docs/s "
        f"(best of {report['engine_alone_runs_docs_per_s']}: before the stack, and with it up but idle)",
        f"pipeline sustained  {report['pipeline_sustained_docs_per_s']:>8.1f} docs/s "
        f"({100 * report['pipeline_vs_engine']:.0f} % of the engine)",
        f"latency at {lat['rate_docs_per_s']} docs/s: p50 {lat['p50_s']} s, p95 {lat['p95_s']} s, "
        f"p99 {lat['p99_s']} s (produce -> queryable, polled every {lat['poll_interval_s']} s)",
        f"worker memory       {report['worker_rss_mib']} MiB resident, peak {report['worker_peak_rss_mib']} MiB "
        f"(EN + {100 * report['zh_share']:.0f} % ZH)",
    ]
    for phase in ("throughput", "latency"):
        parts = report[phase]["where_the_time_goes"]
        stages = ", ".join(
            f"{name} {v['ms_per_batch']} ms" for name, v in parts["stages"].items() if v["ms_per_batch"] is not None
        )
        lines.append(f"{phase}: {parts['batches']} batches of ~{parts['mean_batch_docs']} docs; per batch: {stages}")
    return "\n".join(lines)
