"""``finpulse bench rollup``: the dashboard's and the alerts' count queries before and after migration 0020.

Starts the local endpoint over a temporary data dir, applies the migrations before 0020 (0002's uniqExact rollup),
generates ``--rows`` documents over 7 days server-side, times 0002's queries, applies 0020 (timing its backfill),
then times the same figures through warehouse.queries, as the dashboard and alert engine run them. One line per step.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finpulse.settings import load_settings
from finpulse.stack.clickhouse.launch import free_port, start_local_endpoint
from warehouse.client import create_client, wait_until_ready
from warehouse.migrate import MIGRATIONS_DIR, migrate
from warehouse.queries import alerts as q
from warehouse.queries import trends

DAYS = 7
GENERATE_SQL = """
INSERT INTO documents (id, source, kind, lang, title, body, published_at, ingested_at, tickers, entities, meta,
                       topic, sentiment, model_version, classified_at)
SELECT concat('bench-', toString(number)), ['rss', 'push', 'replay'][number % 3 + 1], 'news', 'en', 't', 'b',
       toDateTime64({end:UInt32} - {span:UInt32}, 3, 'UTC') + number * ({span:UInt32} / {rows:UInt32}),
       now64(3), if(number % 4 = 0, [], [concat('T', toString(number % 200))]), [], '',
       ['earnings', 'macro', 'markets', 'regulation', 'mergers'][number % 5 + 1],
       ['positive', 'negative', 'neutral'][number % 3 + 1], 'bench', now64(3)
FROM numbers({rows:UInt32})
"""

# 0002's queries (warehouse/queries before migration 0020), for the "before" figures.
OLD_TREND_SQL = """
SELECT topic, sum(n) FROM (
    SELECT minute, topic, sentiment, uniqExactMerge(docs) AS n FROM documents_minutely
    WHERE minute >= toDateTime({start:UInt32}, 'UTC') AND minute < toDateTime({end:UInt32}, 'UTC')
    GROUP BY minute, topic, sentiment
) GROUP BY topic
"""
NEW_TREND_SQL = OLD_TREND_SQL.replace("uniqExactMerge(docs)", "count()").replace(
    "FROM documents_minutely", "FROM documents_minutely_latest FINAL"
)
OLD_TICKERS_SQL = """
SELECT ticker, uniqExactMerge(docs) FROM documents_minutely
WHERE minute >= toDateTime({start:UInt32}, 'UTC') AND minute < toDateTime({end:UInt32}, 'UTC') AND ticker != ''
GROUP BY ticker
"""
OLD_ALERT_SQL = """
SELECT intDiv(toUInt32(minute) - {start:UInt32}, 60) AS bucket, uniqExactMerge(docs),
       uniqExactMergeIf(docs, sentiment = 'negative')
FROM documents_minutely
WHERE minute >= toDateTime({start:UInt32}, 'UTC') AND minute < toDateTime({end:UInt32}, 'UTC')
GROUP BY bucket
"""


def _timed(label: str, fn: Callable[[], Any], repeat: int = 5) -> float:
    fn()  # warm: the first run reads parts from disk
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    print(f"{label:<52} median {median * 1000:8.1f} ms  (of {repeat})", flush=True)
    return median


def run(rows: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="finpulse-rollup-bench-") as tmp:
        before = Path(tmp) / "migrations-before-0020"
        before.mkdir()
        for path in MIGRATIONS_DIR.glob("*.sql"):
            if path.name < "0020":
                shutil.copy(path, before / path.name)
        settings = load_settings(data_dir=Path(tmp) / "data", clickhouse_port=free_port(), log_level="WARNING")
        server = start_local_endpoint(settings)
        try:
            wait_until_ready(settings, timeout=60)
            migrate(settings, directory=before)
            client = create_client(settings)
            end = (int(time.time()) // 60 + 1) * 60
            span = DAYS * 86400
            started = time.perf_counter()
            client.command(GENERATE_SQL, parameters={"end": end, "span": span, "rows": rows})
            print(f"generated {rows:,} documents over {DAYS} days in {time.perf_counter() - started:.1f} s")
            week = {"start": end - span, "end": end}
            hour = {"start": end - 3600, "end": end}
            figures["before_trend_7d"] = _timed(
                "0002 rollup: docs per minute/topic, 7 days", lambda: client.query(OLD_TREND_SQL, parameters=week)
            )
            figures["before_tickers_7d"] = _timed(
                "0002 rollup: docs per ticker, 7 days", lambda: client.query(OLD_TICKERS_SQL, parameters=week)
            )
            figures["before_alert_1h"] = _timed(
                "0002 rollup: alert window, 1 hour", lambda: client.query(OLD_ALERT_SQL, parameters=hour)
            )

            started = time.perf_counter()
            migrate(settings)
            figures["migration_0020_s"] = time.perf_counter() - started
            print(f"migration 0020 (backfill of {rows:,} documents) {figures['migration_0020_s']:.1f} s", flush=True)
            stored = client.command("SELECT count() FROM documents_minutely_latest FINAL")
            if stored != rows:
                raise SystemExit(f"backfill wrote {stored} documents, expected {rows}")

            figures["after_same_shape_trend_7d"] = _timed(
                "0020: docs per minute/topic, 7 days (same shape)", lambda: client.query(NEW_TREND_SQL, parameters=week)
            )
            figures["after_trend_7d"] = _timed(
                "0020: volume_sentiment, 7 days",
                lambda: trends.volume_sentiment(client, hours=DAYS * 24, bucket_minutes=60, end=end),
            )
            figures["after_tickers_7d"] = _timed(
                "0020: ticker_shift, 1 h vs 7 days",
                lambda: trends.ticker_shift(client, window_minutes=60, baseline_hours=DAYS * 24 - 1, end=end),
            )
            figures["after_alert_1h"] = _timed(
                "0020: alert window_counts, 1 hour",
                lambda: q.window_counts(client, start=end - 3600, end=end, bucket_s=60),
            )
            figures["after_alert_ticker_1h"] = _timed(
                "0020: alert window_counts by ticker, 1 hour",
                lambda: q.window_counts(client, start=end - 3600, end=end, bucket_s=60, group_by="ticker"),
            )
            client.close()
        finally:
            server.terminate()
            server.wait(timeout=60)
    return figures


if __name__ == "__main__":  # pragma: no cover
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    run(parser.parse_args().rows)
