"""Ad-hoc SQL for the SQL explorer, run as the analyst user that the database itself keeps read-only.

The dashboard does not try to judge SQL text: the store refuses writes, DDL and setting changes for this user, and
those refusals come back as a clear message. The row limit is enforced by reading the result as a stream and
closing it at the limit; the timeout is the HTTP read timeout (a read-only user may not change the server's
max_execution_time), so a query slower than that ends on the client with a message that says so.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from finpulse.settings import Settings

READONLY_CODE = 164  # ClickHouse's READONLY error
ROW_STATEMENTS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS", "VALUES", "("})
_FIRST_WORD = re.compile(r"\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*(\(|[A-Za-z]+)", re.S)
_CODE = re.compile(r"Code: (\d+)\. (?:DB::Exception: )?(.*?)(?: \(version [^)]*\))?(?: \(for url [^)]*\))?$", re.S)


@dataclass
class ExplorerResult:
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    truncated: bool = False
    elapsed_s: float = 0.0
    error: str | None = None
    refused: bool = False  # the database refused the statement for a read-only user


def readonly_client(settings: Settings, timeout_s: float) -> Any:
    from warehouse.client import create_client

    return create_client(
        settings,
        readonly=True,
        send_receive_timeout=timeout_s,
        autogenerate_session_id=False,  # one client serves concurrent Streamlit sessions; sessions would lock
    )


def returns_rows(sql: str) -> bool:
    """Whether to read a result table (the client appends FORMAT) or send the text as is and show its summary.

    Routing only, not a safety check: whatever the text is, the database decides what this user may do.
    """
    first = _FIRST_WORD.match(sql)
    return bool(first) and first.group(1).upper() in ROW_STATEMENTS


def run(client: Any, sql: str, *, row_limit: int, timeout_s: float) -> ExplorerResult:
    """Run one statement, keep at most ``row_limit`` rows; errors come back as a message, not an exception."""
    sql = sql.strip().rstrip(";").strip()
    if not sql:
        return ExplorerResult(error="Type a query first, e.g. SELECT count() FROM documents_latest.")
    started = time.perf_counter()
    frames: list[pd.DataFrame] = []
    rows = 0
    truncated = False
    try:
        if not returns_rows(sql):
            summary = client.command(sql)
            return ExplorerResult(pd.DataFrame({"result": [str(summary)]}), False, time.perf_counter() - started)
        with client.query_df_stream(sql) as stream:
            for frame in stream:
                frames.append(frame)
                rows += len(frame)
                if rows > row_limit:
                    truncated = True
                    break  # leaving the context closes the response: the server stops sending
    except Exception as exc:
        return _failure(exc, time.perf_counter() - started, timeout_s)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return ExplorerResult(frame.head(row_limit), truncated, time.perf_counter() - started)


def _failure(exc: Exception, elapsed: float, timeout_s: float) -> ExplorerResult:
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    text = str(exc)
    if isinstance(exc, DatabaseError) and (match := _CODE.search(text)):
        code, message = int(match.group(1)), match.group(2).strip()
        if code == READONLY_CODE:
            return ExplorerResult(
                elapsed_s=elapsed,
                refused=True,
                error=(
                    "Refused by the database: the SQL explorer's user is read-only, so INSERT, ALTER, DROP, CREATE "
                    f"and SET are not allowed. Run SELECT, SHOW, DESCRIBE or EXPLAIN instead. ({message})"
                ),
            )
        return ExplorerResult(elapsed_s=elapsed, error=f"ClickHouse error {code}: {message}")
    if isinstance(exc, OperationalError) and "timed out" in text.lower():
        return ExplorerResult(
            elapsed_s=elapsed,
            error=f"The query took longer than the {timeout_s:g} s timeout: narrow it (a WHERE on time, a LIMIT).",
        )
    return ExplorerResult(elapsed_s=elapsed, error=f"The query failed: {text.splitlines()[0] if text else exc!r}")


def to_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")
