"""Kafka-side pipeline health: consumer lag on the raw topic, the DLQ's size, and the stream worker's metrics.

Everything here is best effort: an unreachable broker or metrics endpoint gives a result with a ``note`` that says
what is missing and why, never an exception, so the health page still shows what ClickHouse knows.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import pandas as pd

from finpulse import probe
from finpulse.settings import Settings

log = logging.getLogger(__name__)

_TIMEOUT_MS = 3_000
# Prometheus metric families worth showing from the stream worker, when it exposes them.
STREAM_METRIC_PREFIXES = ("finpulse_stream_",)


@dataclass
class KafkaHealth:
    lag: pd.DataFrame = field(default_factory=pd.DataFrame)  # group, topic, partition, committed, end, lag
    dlq_messages: int | None = None
    raw_messages: int | None = None
    note: str = ""


def kafka_health(settings: Settings) -> KafkaHealth:
    """Lag of every consumer group that committed offsets on the raw topic, and the DLQ's message count."""
    try:
        from kafka import TopicPartition
        from kafka.errors import KafkaError
    except ImportError:  # pragma: no cover - kafka-python is a core dependency
        return KafkaHealth(note="kafka-python is not installed: consumer lag and DLQ size are unavailable.")
    from finpulse import kafka_clients

    admin = consumer = None
    try:
        admin = kafka_clients.admin(
            settings,
            client_id="finpulse-dashboard",
            request_timeout_ms=_TIMEOUT_MS,
            bootstrap_timeout_ms=_TIMEOUT_MS,
        )
        consumer = kafka_clients.consumer(
            settings,
            client_id="finpulse-dashboard",
            enable_auto_commit=False,
            session_timeout_ms=6_000,  # the consumer's request timeout must exceed its session timeout
            request_timeout_ms=10_000,
            bootstrap_timeout_ms=_TIMEOUT_MS,
        )
        counts: dict[str, int | None] = {}
        ends: dict[TopicPartition, int] = {}
        for topic in (settings.topic_raw, settings.topic_dlq):
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not partitions:
                counts[topic] = None
                continue
            end = consumer.end_offsets(partitions)
            begin = consumer.beginning_offsets(partitions)
            ends.update(end)
            counts[topic] = sum(end[tp] - begin[tp] for tp in partitions)
        rows = []
        for group in admin.list_groups():
            group_id = group["group_id"] if isinstance(group, dict) else group[0]
            offsets = admin.list_group_offsets({group_id: None}).get(group_id, {})
            for tp, meta in offsets.items():
                if tp.topic == settings.topic_raw and tp in ends and meta.offset >= 0:
                    end = ends[tp]
                    rows.append((group_id, tp.topic, tp.partition, meta.offset, end, max(end - meta.offset, 0)))
        lag = pd.DataFrame(rows, columns=["group", "topic", "partition", "committed", "end", "lag"])
        note = "" if rows else f"No consumer group has committed offsets on {settings.topic_raw} yet."
        return KafkaHealth(lag, counts.get(settings.topic_dlq), counts.get(settings.topic_raw), note)
    except (KafkaError, OSError, ValueError) as exc:
        log.info("kafka health unavailable: %s", exc)
        return KafkaHealth(
            note=f"Kafka at {settings.kafka_servers} is not reachable ({type(exc).__name__}): consumer lag and the "
            "DLQ size are unavailable. Start the stack with `finpulse up` or check FINPULSE_KAFKA_BOOTSTRAP."
        )
    finally:
        for closable in (consumer, admin):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()


def stream_metrics(settings: Settings) -> tuple[pd.DataFrame, str]:
    """FinPulse samples from the stream worker's Prometheus endpoint, or an empty frame and a note saying why."""
    url = settings.dashboard_stream_metrics_url or f"http://{settings.stream_host}:{settings.stream_port}/metrics"
    try:
        text = probe.get_text(url, timeout_s=2.0)
    except probe.ProbeError as exc:
        return pd.DataFrame(), (
            f"The stream worker's metrics are not reachable ({exc}): is the stream part running? "
            "(FINPULSE_DASHBOARD_STREAM_METRICS_URL points elsewhere.)"
        )
    return parse_metrics(text), ""


def parse_metrics(text: str) -> pd.DataFrame:
    """Prometheus text exposition -> rows of (metric, labels, value) for the FinPulse families."""
    from prometheus_client.parser import text_string_to_metric_families

    rows = []
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(STREAM_METRIC_PREFIXES):
            continue
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_created")):
                continue
            labels = ", ".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            rows.append((sample.name, labels, sample.value))
    return pd.DataFrame(rows, columns=["metric", "labels", "value"])


def trainer_progress(settings: Settings) -> tuple[dict | None, str]:
    """The background trainer's progress file and its one-line summary (both from classifier.background)."""
    from classifier.background import read_progress, summary

    progress = read_progress(settings)
    return progress, summary(progress)
