"""FinPulse: warehouse - ClickHouse schema, migrations, client factory and the embedded local endpoint.

Public API:
    warehouse.local.clickhouse_command(settings) -> list[str]      argv of the local endpoint (real binary if present)
    warehouse.local.clickhouse_ping(settings, timeout=1.0) -> bool
    warehouse.client.create_client(settings, *, readonly=False, **overrides)   clickhouse_connect client
    warehouse.client.wait_until_ready(settings, timeout=60.0)
    warehouse.migrate.migrate(settings, *, client=None) -> list[str]           ids applied now

Dedup-safe reads: documents are at-least-once; count them through ``documents_latest`` (FINAL) or uniqExact(id),
and the per-minute rollup with uniqExactMerge(docs) / ``documents_minutely_counts``.
"""
