"""The SQL explorer's runner: routing, the row limit, and turning database errors into messages."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import pandas as pd
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from dashboard import explorer


class FakeClient:
    def __init__(self, blocks: list[pd.DataFrame] | None = None, error: Exception | None = None) -> None:
        self.blocks = blocks or []
        self.error = error
        self.read = 0
        self.commands: list[str] = []

    @contextmanager
    def query_df_stream(self, sql: str) -> Any:
        if self.error:
            raise self.error

        def blocks() -> Any:
            for block in self.blocks:
                self.read += 1
                yield block

        yield blocks()

    def command(self, sql: str) -> Any:
        self.commands.append(sql)
        if self.error:
            raise self.error
        return "ok"


@pytest.mark.parametrize(
    ("sql", "rows"),
    [
        ("SELECT 1", True),
        ("  with x as (select 1) select * from x", True),
        ("-- note\n/* block */ SHOW TABLES", True),
        ("(SELECT 1) UNION ALL (SELECT 2)", True),
        ("DESCRIBE documents", True),
        ("INSERT INTO documents VALUES", False),
        ("SET readonly = 0", False),
        ("DROP TABLE documents", False),
        ("", False),
    ],
)
def test_returns_rows_routes_by_first_keyword(sql: str, rows: bool) -> None:
    assert explorer.returns_rows(sql) is rows


def test_row_limit_stops_reading_the_stream() -> None:
    blocks = [pd.DataFrame({"n": range(i * 100, i * 100 + 100)}) for i in range(10)]
    client = FakeClient(blocks)
    result = explorer.run(client, "SELECT n FROM t;", row_limit=250, timeout_s=5)
    assert result.error is None and result.truncated
    assert len(result.frame) == 250 and client.read == 3  # the rest of the stream was never read
    whole = explorer.run(FakeClient(blocks[:2]), "SELECT n FROM t", row_limit=250, timeout_s=5)
    assert not whole.truncated and len(whole.frame) == 200


def test_statements_go_as_commands_and_empty_sql_says_what_to_do() -> None:
    client = FakeClient()
    assert explorer.run(client, "OPTIMIZE TABLE documents", row_limit=1, timeout_s=5).frame["result"].tolist() == ["ok"]
    assert client.commands == ["OPTIMIZE TABLE documents"]
    assert "Type a query" in (explorer.run(client, "  ;", row_limit=1, timeout_s=5).error or "")


def test_database_errors_become_messages() -> None:
    readonly = DatabaseError(
        "Received ClickHouse exception, code: 164, server response: Code: 164. DB::Exception: analyst: Cannot "
        "execute query in readonly mode. (READONLY) (version 26.9.2.1) (for url http://127.0.0.1:8123)"
    )
    refused = explorer.run(FakeClient(error=readonly), "DROP TABLE documents", row_limit=1, timeout_s=5)
    assert refused.refused and "read-only" in (refused.error or "") and "version" not in (refused.error or "")
    unknown = DatabaseError("Code: 60. DB::Exception: Unknown table expression identifier 'nope'. (UNKNOWN_TABLE)")
    failed = explorer.run(FakeClient(error=unknown), "SELECT * FROM nope", row_limit=1, timeout_s=5)
    assert not failed.refused and failed.error == (
        "ClickHouse error 60: Unknown table expression identifier 'nope'. (UNKNOWN_TABLE)"
    )
    slow = explorer.run(FakeClient(error=OperationalError("Read timed out.")), "SELECT 1", row_limit=1, timeout_s=7)
    assert "7 s timeout" in (slow.error or "")


def test_csv_has_a_header_and_rows() -> None:
    assert explorer.to_csv(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})) == b"a,b\n1,x\n2,y\n"
