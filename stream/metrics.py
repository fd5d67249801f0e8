"""Prometheus metrics of one stream worker (one registry per worker, so tests can build several)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

STAGES = ("decode", "inference", "clickhouse", "classified", "dlq", "wait_slot")


def memory_kib(field: str, status: Path = Path("/proc/self/status")) -> float:
    """A memory line of /proc/<pid>/status in KiB: VmRSS (resident now) or VmHWM (peak resident); NaN elsewhere."""
    try:
        for line in status.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith(f"{field}:"):
                return float(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return float("nan")


class StreamMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.documents = Counter(
            "finpulse_stream_documents",
            "Documents handled, by outcome (stored, unlabeled = stored without labels for an unsupported language)",
            ["outcome"],
            registry=r,
        )
        self.dlq = Counter(
            "finpulse_stream_dlq", "Messages sent to the DLQ, by the field that failed", ["field"], registry=r
        )
        self.batch_size = Histogram(
            "finpulse_stream_batch_size", "Messages per micro-batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.inference = Histogram(
            "finpulse_stream_inference_seconds", "Classifier time per batch", buckets=_STAGE_BUCKETS, registry=r
        )
        self.stage = Histogram(
            "finpulse_stream_stage_seconds",
            "Time per batch in each stage",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "finpulse_stream_end_to_end_seconds",
            "From a document's ingested_at to its ClickHouse insert being acknowledged",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "finpulse_stream_consumer_lag", "Messages not yet stored, per partition", ["partition"], registry=r
        )
        self.lag_total = Gauge(
            "finpulse_stream_consumer_lag_total", "Messages not yet stored, all partitions", registry=r
        )
        self.retries = Counter("finpulse_stream_sink_retries", "Retries of an unavailable sink", ["sink"], registry=r)
        self.backpressure = Gauge(
            "finpulse_stream_backpressure", "1 while a sink is unavailable and intake is paused", registry=r
        )
        self.model_swaps = Counter("finpulse_stream_model_swaps", "Newly promoted models picked up", registry=r)
        self.model_info = Gauge(
            "finpulse_stream_model_info", "The model version served (value 1)", ["model_version"], registry=r
        )
        # Read at scrape time. The peak is what sizing a machine needs: a worker that once held a torch model or an
        # export keeps that high-water mark even after it is freed.
        self.rss = Gauge("finpulse_stream_rss_bytes", "Resident memory of this worker now (VmRSS)", registry=r)
        self.rss.set_function(lambda: 1024 * memory_kib("VmRSS"))
        self.peak_rss = Gauge(
            "finpulse_stream_peak_rss_bytes", "Peak resident memory of this worker (VmHWM)", registry=r
        )
        self.peak_rss.set_function(lambda: 1024 * memory_kib("VmHWM"))
        for stage in STAGES:
            self.stage.labels(stage)  # export every stage from the start, so rates exist before the first batch
        for outcome in ("stored", "unlabeled"):
            self.documents.labels(outcome)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
