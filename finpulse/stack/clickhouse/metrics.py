"""Prometheus metrics of the local endpoint, in their own registry (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class EndpointMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queries = Counter(
            "finpulse_clickhouse_queries", "Statements run, by kind (query, insert).", ["kind"], registry=self.registry
        )
        self.errors = Counter(
            "finpulse_clickhouse_errors",
            "Requests answered with an error, by ClickHouse error name.",
            ["name"],
            registry=self.registry,
        )
        self.inserted_rows = Counter(
            "finpulse_clickhouse_inserted_rows", "Rows written by inserts.", registry=self.registry
        )
        self.inserted_bytes = Counter(
            "finpulse_clickhouse_inserted_bytes", "Uncompressed insert data received.", registry=self.registry
        )
        self.request_bytes = Counter(
            "finpulse_clickhouse_request_bytes", "Request body bytes as received (compressed).", registry=self.registry
        )
        self.response_bytes = Counter(
            "finpulse_clickhouse_response_bytes", "Response body bytes as sent.", registry=self.registry
        )
        self.duration = Histogram(
            "finpulse_clickhouse_request_seconds",
            "Time to answer a statement (streams: until the last byte).",
            ["kind"],
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.in_flight = Gauge("finpulse_clickhouse_in_flight", "Statements running now.", registry=self.registry)
        self.sessions = Gauge("finpulse_clickhouse_sessions", "Open HTTP sessions.", registry=self.registry)
        self.queued = Gauge("finpulse_clickhouse_queued", "Queries waiting for a slot.", registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
