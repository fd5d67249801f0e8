"""``python -m warehouse.bench``: 1M-row insert_df / query_df / query_arrow through a throwaway local endpoint.

Starts the endpoint on a free port over a temporary data dir (so nothing else's data or load is measured),
prints one line per step, and stops it. ``--in-process`` adds the same insert through clickhouse-connect's
in-process chdb backend as the baseline the HTTP hop is compared with.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from finpulse.settings import load_settings
from finpulse.stack.clickhouse.launch import free_port, start_local_endpoint
from warehouse.client import create_client, wait_until_ready

T = TypeVar("T")

TABLE_DDL = "CREATE TABLE bench (id UInt64, source LowCardinality(String), score Float32, ts DateTime64(3, 'UTC'), body String) ENGINE = MergeTree ORDER BY id"  # noqa: E501


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.uint64),
            "source": rng.choice(["rss", "push", "replay"], rows),
            "score": rng.random(rows, dtype=np.float32),
            "ts": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(rows), unit="s"),
            "body": [f"document body {i}" for i in range(rows)],
        }
    )


def _timed(label: str, fn: Callable[[], T], rows: int) -> T:
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    print(f"{label:<34} {rows:>10,} rows  {seconds:7.3f} s  {rows / seconds:>12,.0f} rows/s", flush=True)
    return result


def run(rows: int, in_process: bool) -> None:
    df = frame(rows)
    with tempfile.TemporaryDirectory(prefix="finpulse-bench-") as tmp:
        settings = load_settings(data_dir=Path(tmp), clickhouse_port=free_port(), log_level="WARNING")
        server = start_local_endpoint(settings)
        try:
            wait_until_ready(settings, timeout=60)
            client = create_client(settings, database=None)
            client.command(TABLE_DDL)
            summary = _timed("insert_df via local endpoint", lambda: client.insert_df("bench", df), rows)
            count = client.command("SELECT count() FROM bench")
            if count != rows or summary.written_rows != rows:
                raise SystemExit(f"row count mismatch: wrote {summary.written_rows}, table has {count}, sent {rows}")
            _timed("query_df via local endpoint", lambda: client.query_df("SELECT * FROM bench"), rows)
            _timed("query_arrow via local endpoint", lambda: client.query_arrow("SELECT * FROM bench"), rows)
            client.close()
        finally:
            server.terminate()
            server.wait(timeout=60)
    if in_process:
        # A separate process: chdb hosts one engine path per process, and this one has none open.
        subprocess.run([sys.executable, "-m", "warehouse.bench", "--rows", str(rows), "--chdb-only"], check=True)


def run_in_process(rows: int) -> None:
    import clickhouse_connect

    df = frame(rows)
    with tempfile.TemporaryDirectory(prefix="finpulse-bench-chdb-") as tmp:
        client = clickhouse_connect.get_client(dsn=f"chdb://{tmp}")
        client.command(TABLE_DDL)
        _timed("insert_df in-process chdb", lambda: client.insert_df("bench", df), rows)
        client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m warehouse.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--in-process", action="store_true", help="also time clickhouse-connect's chdb backend")
    parser.add_argument("--chdb-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.chdb_only:
        run_in_process(args.rows)
    else:
        run(args.rows, args.in_process)


if __name__ == "__main__":
    main()
