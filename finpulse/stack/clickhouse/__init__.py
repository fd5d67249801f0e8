"""The local ClickHouse endpoint: ClickHouse's HTTP interface over the embedded engine (chdb), beside the Kafka
broker in the local stack. Every deployment's ClickHouse code (client factory, schema, migrations, queries) stays in
``warehouse/``; this package is only what ``finpulse up`` runs when no ClickHouse server is configured.

    server.py            ``python -m finpulse.stack.clickhouse.server``: uvicorn, signals, data-dir lock
    http_app.py          the ASGI app: routes, request flow, streaming inserts and results
    http_protocol.py     URL parameters, credentials, statement-head classification
    http_compression.py  Content-Encoding (gzip, deflate, lz4, zstd, br) of bodies
    native_blocks.py     ClickHouse's native compressed blocks (compress=1 / decompress=1)
    chdb_session.py      engine handles per request or session, limits, readonly, shutdown
    statement_guard.py   what a statement may do (files, network, readonly, limits, hidden tables)
    admission.py         Host/Origin checks; bounded concurrency and queue (503)
    users.py             the admin and the analyst, from settings
    errors.py            ClickHouse error codes, wire text and HTTP status
    metrics.py           Prometheus metrics of the endpoint
    binary.py            a real ``clickhouse`` binary, when present, and its config
    launch.py            what the supervisor and tests call: command, ping, start, base URL
"""
