"""Run in a separate process by the tests: one clickhouse-connect client doing a full round of work."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd

from finpulse.settings import load_settings
from warehouse.client import create_client


def main(port: int, table: str, rows: int) -> None:
    settings = load_settings(clickhouse_port=port, clickhouse_password="full-secret")
    client = create_client(settings, database=None)
    client.command(f"CREATE TABLE {table} (id UInt64, name String, score Float64) ENGINE = MergeTree ORDER BY id")
    df = pd.DataFrame(
        {"id": np.arange(rows, dtype=np.uint64), "name": [f"n{i}" for i in range(rows)], "score": np.arange(rows) / 2}
    )
    summary = client.insert_df(table, df)  # lz4 by default: one frame per block, many frames
    out = {
        "written_rows": summary.written_rows,
        "count": client.command(f"SELECT count() FROM {table}"),
        "sum": client.command(f"SELECT sum(id) FROM {table}"),
        "df_rows": len(client.query_df(f"SELECT * FROM {table}")),
        "arrow_rows": client.query_arrow(f"SELECT * FROM {table}").num_rows,
        "param": client.query("SELECT {a:UInt32} + 1, {s:String}", parameters={"a": 41, "s": "it's"}).result_rows[0],
    }
    try:
        client.query(f"SELECT nope FROM {table}")
        out["error"] = None
    except Exception as exc:  # the test checks its type and text
        out["error"] = [type(exc).__name__, str(exc)]
    print(json.dumps(out))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
