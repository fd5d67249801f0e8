"""Per-source counters as Prometheus metrics (one registry per worker) and as a JSON snapshot for `finpulse status`."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.fetched = Counter("finpulse_ingest_fetched", "Items fetched from a source", ["source"], registry=r)
        self.produced = Counter("finpulse_ingest_produced", "Documents acknowledged by Kafka", ["source"], registry=r)
        self.duplicates = Counter(
            "finpulse_ingest_duplicates", "Items dropped as duplicates", ["source", "match"], registry=r
        )
        self.story_copies = Counter(
            "finpulse_ingest_story_copies", "Documents produced as a later copy of a story", ["source"], registry=r
        )
        self.rejected = Counter("finpulse_ingest_rejected", "Items rejected", ["source", "reason"], registry=r)
        self.errors = Counter("finpulse_ingest_errors", "Source or broker errors", ["source", "reason"], registry=r)
        self.last_success = Gauge(
            "finpulse_ingest_last_success_timestamp", "Unix time of the last good poll", ["source"], registry=r
        )
        self.broker_up = Gauge("finpulse_ingest_broker_up", "1 when the last produce succeeded", registry=r)
        self.queue_depth = Gauge("finpulse_ingest_queue_depth", "Submissions waiting for the pipeline", registry=r)
        self.started = time.time()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, Any]:
        """{source: {fetched, produced, duplicates, rejected: {reason: n}, errors: {reason: n}}} plus totals."""
        sources: dict[str, dict[str, Any]] = {}

        def entry(name: str) -> dict[str, Any]:
            return sources.setdefault(
                name, {"fetched": 0, "produced": 0, "duplicates": 0, "rejected": {}, "errors": {}}
            )

        broker_up = None
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                labels, value = sample.labels, sample.value
                if family.name == "finpulse_ingest_broker_up":
                    broker_up = bool(value)
                elif family.name in ("finpulse_ingest_fetched", "finpulse_ingest_produced"):
                    entry(labels["source"])[family.name.rsplit("_", 1)[1]] = int(value)
                elif family.name == "finpulse_ingest_duplicates":
                    entry(labels["source"])["duplicates"] += int(value)
                elif family.name in ("finpulse_ingest_rejected", "finpulse_ingest_errors"):
                    key = family.name.rsplit("_", 1)[1]
                    entry(labels["source"])[key][labels["reason"]] = int(value)
        return {"uptime_s": round(time.time() - self.started, 1), "broker_up": broker_up, "sources": sources}
