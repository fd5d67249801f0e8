"""The ClickHouse side every deployment uses: the schema, its migrations, the client factory and the queries the
dashboard and alerts share.

The local endpoint (ClickHouse's HTTP interface over chdb) that
``finpulse up`` runs lives beside the Kafka broker, in ``finpulse.stack.clickhouse``.

Public API:
    warehouse.client.create_client(settings, *, readonly=False, **overrides)   clickhouse_connect client
    warehouse.client.wait_until_ready(settings, timeout=60.0)
    warehouse.migrate.migrate(settings, *, client=None) -> list[str]           ids applied now

Dedup-safe reads: documents are at-least-once; count them through ``documents_latest`` (FINAL) or uniqExact(id),
and the per-minute table ``documents_minutely_latest`` with FINAL (one row per document, latest label) or the
``documents_minutely_counts`` view: a document relabeled by a newer model counts once, under its new label.
"""
