"""``finpulse bench backtest``: how long a 7-day backtest takes on ``--rows`` documents.

Starts the local endpoint over a temporary data dir, applies every migration, generates the documents server-side
over 7 days (every story syndicated as ``--copies`` copies a few seconds apart, ~200 tickers, five topics, two
languages), then backtests each default rule over the 7 days at its one-minute step, counting stories and
documents. One line per backtest: wall time, the replay's own CPU time (on a shared machine the wall time mostly
measures the neighbours), queries, evaluations.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from alerts.backtest import backtest
from alerts.defaults import DEFAULT_RULES
from finpulse.settings import load_settings
from finpulse.stack.clickhouse.launch import free_port, start_local_endpoint
from warehouse.client import create_client, wait_until_ready
from warehouse.migrate import migrate

DAYS = 7
GENERATE_SQL = """
INSERT INTO documents (id, story_id, source, kind, lang, title, body, published_at, ingested_at, tickers, entities,
                       meta, topic, sentiment, model_version, classified_at)
SELECT concat('bench-', toString(number)), concat('story-', toString(intDiv(number, {copies:UInt32}))),
       ['rss', 'push', 'replay'][number % 3 + 1], 'news', ['en', 'zh'][intDiv(number, {copies:UInt32}) % 2 + 1],
       't', 'b', toDateTime64({end:UInt32} - {span:UInt32}, 3, 'UTC') + number * ({span:UInt32} / {rows:UInt32}),
       now64(3), if(number % 4 = 0, [], [concat('T', toString(intDiv(number, {copies:UInt32}) % 200))]), [], '',
       ['earnings', 'macro', 'markets', 'regulation', 'mergers'][intDiv(number, {copies:UInt32}) % 5 + 1],
       ['positive', 'negative', 'neutral'][intDiv(number, {copies:UInt32}) % 3 + 1], 'bench', now64(3)
FROM numbers({rows:UInt32})
"""


def run(rows: int, copies: int = 4) -> list[dict[str, Any]]:
    figures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="finpulse-backtest-bench-") as tmp:
        settings = load_settings(data_dir=Path(tmp) / "data", clickhouse_port=free_port(), log_level="WARNING")
        server = start_local_endpoint(settings)
        try:
            wait_until_ready(settings, timeout=60)
            migrate(settings)
            client = create_client(settings)
            end = (int(time.time()) // 60 + 1) * 60
            span = DAYS * 86_400
            started = time.perf_counter()
            client.command(GENERATE_SQL, parameters={"end": end, "span": span, "rows": rows, "copies": copies})
            print(f"generated {rows:,} documents ({copies} copies per story) over {DAYS} days in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
            for rule in DEFAULT_RULES:
                for count in ("stories", "documents"):
                    variant = rule.model_copy(update={"count": count})
                    cpu = time.process_time()
                    result = backtest(client, variant, start=_dt(end - span), end=_dt(end), progress=None)
                    cpu = time.process_time() - cpu  # this process (the replay); the queries run in the endpoint
                    line = {
                        "rule": rule.id,
                        "count": count,
                        "seconds": round(result.elapsed_s, 2),
                        "cpu_seconds": round(cpu, 2),
                        "evaluations": result.steps,
                        "groups": len(result.groups),
                        "queries": result.queries,
                        "firings": result.firing_count,
                    }
                    figures.append(line)
                    print(f"{rule.id:<34} {count:<9} {result.elapsed_s:6.2f} s wall, {cpu:5.2f} s CPU  "
                          f"{result.steps} evaluations x {len(result.groups)} groups, {result.queries} queries, "
                          f"{result.firing_count} firings", flush=True)  # fmt: skip
            client.close()
        finally:
            server.terminate()
            server.wait(timeout=60)
    return figures


def _dt(epoch: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC)
