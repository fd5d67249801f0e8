from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import httpx
import lz4.frame
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from tests.stack import local_only
from warehouse.client import create_client

from .conftest import Endpoint

# These test the local endpoint itself, which they start; external servers are not what they are about.
pytestmark = [pytest.mark.integration, local_only]
FULL = ("default", "full-secret")
ANALYST = ("analyst", "ro-secret")
ROOT = Path(__file__).resolve().parents[3]


def test_curl_style_get(endpoint: Endpoint) -> None:
    r = httpx.get(endpoint.url, params={"query": "SELECT version()"}, auth=FULL)
    assert r.status_code == 200 and r.text.strip().count(".") >= 2
    assert r.headers["X-ClickHouse-Format"] == "TabSeparated"
    assert r.headers["X-ClickHouse-Timezone"] and r.headers["X-ClickHouse-Query-Id"]
    assert httpx.get(f"{endpoint.url}/ping").text == "Ok.\n"
    assert httpx.get(endpoint.url + "/").text == "Ok.\n"


def test_two_processes_insert_a_million_rows_each_at_once(endpoint: Endpoint) -> None:
    rows = 1_000_000
    port = str(endpoint.settings.clickhouse_port)
    workers = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("cc_worker.py")), port, table, str(rows)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for table in ("big_a", "big_b")
    ]
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        assert result["written_rows"] == rows
        assert result["count"] == rows
        assert result["sum"] == rows * (rows - 1) // 2
        assert result["df_rows"] == rows and result["arrow_rows"] == rows
        assert result["param"] == [42, "it's"]
        kind, message = result["error"]
        assert kind == "DatabaseError" and "Code: 47" in message and "UNKNOWN_IDENTIFIER" in message


def _tsv(rows: range) -> bytes:
    return "".join(f"{i}\tname {i}\n" for i in rows).encode()


def test_compressed_and_chunked_inserts_arrive_complete(endpoint: Endpoint) -> None:
    client = create_client(endpoint.settings, database=None)
    client.command("CREATE TABLE raw_in (id UInt64, name String) ENGINE = MergeTree ORDER BY id")
    url, query = endpoint.url, {"query": "INSERT INTO raw_in FORMAT TabSeparated"}
    # 300 lz4 frames of 1,000 rows each: every frame must be decoded, not only the first.
    lz4_body = b"".join(lz4.frame.compress(_tsv(range(start, start + 1000))) for start in range(0, 300_000, 1000))
    r = httpx.post(url, params=query, content=lz4_body, headers={"Content-Encoding": "lz4"}, auth=FULL)
    assert r.status_code == 200, r.text
    assert json.loads(r.headers["X-ClickHouse-Summary"])["written_rows"] == "300000"
    gz = b"".join(gzip.compress(_tsv(range(s, s + 500))) for s in range(300_000, 310_000, 500))
    r = httpx.post(url, params=query, content=gz, headers={"Content-Encoding": "gzip"}, auth=FULL)
    assert r.status_code == 200, r.text

    def chunks():  # no Content-Length: Transfer-Encoding: chunked; statement in the body, split mid-word
        yield b"INSERT INTO raw_in FOR"
        yield b"MAT TabSeparated\n"
        for start in range(310_000, 320_000, 100):
            yield _tsv(range(start, start + 100))

    r = httpx.post(url, content=chunks(), auth=FULL)
    assert r.status_code == 200, r.text
    assert client.command("SELECT count(), uniqExact(id), max(id) FROM raw_in") == ["320000", "320000", "319999"]
    truncated = lz4.frame.compress(_tsv(range(5)))[:-6]
    r = httpx.post(url, params=query, content=truncated, headers={"Content-Encoding": "lz4"}, auth=FULL)
    assert r.status_code == 400 and r.headers["X-ClickHouse-Exception-Code"] == "271"
    assert client.command("SELECT count() FROM raw_in") == 320_000


def test_compressed_streamed_response(endpoint: Endpoint) -> None:
    r = httpx.post(
        endpoint.url,
        params={"enable_http_compression": "1"},
        content=b"SELECT number FROM numbers(200000)",
        headers={"Accept-Encoding": "lz4"},
        auth=FULL,
    )
    assert r.headers["Content-Encoding"] == "lz4"
    lines = lz4.frame.decompress(r.content).split()
    assert len(lines) == 200_000 and lines[-1] == b"199999"


def test_errors_look_like_clickhouse(endpoint: Endpoint) -> None:
    r = httpx.get(endpoint.url, params={"query": "SELECT * FROM missing_table"}, auth=FULL)
    assert r.status_code == 404 and r.headers["X-ClickHouse-Exception-Code"] == "60"
    assert r.text.startswith("Code: 60. DB::Exception: ") and "(UNKNOWN_TABLE)" in r.text
    r = httpx.post(endpoint.url, content=b"SELEC 1", auth=FULL)
    assert r.status_code == 400 and "(SYNTAX_ERROR)" in r.text
    r = httpx.get(endpoint.url, params={"query": "SELECT 1"}, auth=("default", "wrong"))
    assert r.status_code == 403 and r.headers["X-ClickHouse-Exception-Code"] == "516"
    assert "AUTHENTICATION_FAILED" in r.text
    r = httpx.get(endpoint.url, params={"query": "SELECT 1", "user": "analyst", "password": "ro-secret"})
    assert r.text == "1\n"
    r = httpx.get(
        endpoint.url, params={"query": "SELECT 1"}, headers={"X-ClickHouse-User": "x", "X-ClickHouse-Key": "y"}
    )
    assert r.headers["X-ClickHouse-Exception-Code"] == "516"
    # GET only reads, as in ClickHouse
    r = httpx.get(endpoint.url, params={"query": "CREATE TABLE via_get (a UInt8) ENGINE = Memory"}, auth=FULL)
    assert r.headers["X-ClickHouse-Exception-Code"] == "164"


def test_analyst_is_read_only_by_the_engine(endpoint: Endpoint) -> None:
    admin = create_client(endpoint.settings, database=None)
    admin.command("CREATE TABLE IF NOT EXISTS ro_t (a UInt8) ENGINE = MergeTree ORDER BY a")
    admin.command("INSERT INTO ro_t VALUES (1)")
    analyst = create_client(endpoint.settings, readonly=True, database=None)
    assert analyst.command("SELECT count() FROM ro_t") == 1
    for statement in (
        "INSERT INTO ro_t VALUES (2)",
        "DROP TABLE ro_t",
        "CREATE TABLE x (a UInt8) ENGINE = Memory",
        "SET max_threads = 1",
        "SET readonly = 0",
    ):
        with pytest.raises(DatabaseError, match=r"Code: 164.*(readonly mode|READONLY)"):
            analyst.command(statement)
    with pytest.raises(DatabaseError, match="Code: 164"):
        analyst.insert("ro_t", [[3]], column_names=["a"])
    # the URL cannot lift it either (clickhouse-connect would refuse client-side, so go raw)
    for params in ({"readonly": "0"}, {"readonly": "2"}, {"max_threads": "1"}):
        r = httpx.post(endpoint.url, params=params, content=b"INSERT INTO ro_t VALUES (4)", auth=ANALYST)
        assert r.headers["X-ClickHouse-Exception-Code"] == "164", params
    r = httpx.get(endpoint.url, params={"query": "SELECT getSetting('readonly')", "readonly": "1"}, auth=ANALYST)
    assert r.text == "1\n"  # re-stating the current value is accepted, as in ClickHouse
    assert admin.command("SELECT count() FROM ro_t") == 1


def test_sessions_keep_set_and_nothing_leaks_without(endpoint: Endpoint) -> None:
    session = create_client(endpoint.settings, database=None, session_id="sess-1")
    session.command("SET max_result_rows = 7")
    assert session.command("SELECT getSetting('max_result_rows')") == 7
    # Without a session each request is a fresh context (raw HTTP: clickhouse-connect would keep SET client-side).
    assert httpx.post(endpoint.url, content=b"SET max_result_rows = 9", auth=FULL).status_code == 200
    assert httpx.post(endpoint.url, content=b"SELECT getSetting('max_result_rows')", auth=FULL).text == "0\n"
    in_session = {"session_id": "sess-2"}
    assert httpx.post(endpoint.url, params=in_session, content=b"SET max_result_rows = 9", auth=FULL).status_code == 200
    r = httpx.post(endpoint.url, params=in_session, content=b"SELECT getSetting('max_result_rows')", auth=FULL)
    assert r.text == "9\n"
    r = httpx.get(endpoint.url, params={"query": "SELECT 1", "session_id": "nope", "session_check": "1"}, auth=FULL)
    assert r.headers["X-ClickHouse-Exception-Code"] == "372"


def test_metrics(endpoint: Endpoint) -> None:
    text = httpx.get(f"{endpoint.url}/metrics").text
    assert "finpulse_clickhouse_queries_total" in text
    assert "finpulse_clickhouse_inserted_rows_total" in text
