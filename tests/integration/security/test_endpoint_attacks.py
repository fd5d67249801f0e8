"""Attacks on the real local ClickHouse endpoint, over real HTTP: each asserts the refusal and that nothing happened."""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
import uuid

import httpx
import pytest

from tests.integration.endpoint import Endpoint


def _post(ep: Endpoint, sql: str | bytes, auth: tuple[str, str] | None = None, **kwargs: object) -> httpx.Response:
    content = sql.encode() if isinstance(sql, str) else sql
    return httpx.post(ep.url, content=content, auth=auth or ep.admin, timeout=60, **kwargs)


def _code(r: httpx.Response) -> str:
    return r.headers.get("X-ClickHouse-Exception-Code", "")


def _table_exists(ep: Endpoint, name: str) -> bool:
    r = _post(ep, f"EXISTS TABLE {name}")
    assert r.status_code == 200, r.text
    return r.text.strip() == "1"


# --- passwords -----------------------------------------------------------------------------------------------------


def test_no_user_logs_in_without_its_generated_password(endpoint: Endpoint) -> None:
    secrets = endpoint.settings.data_dir / "secrets.json"
    assert secrets.stat().st_mode & 0o777 == 0o600
    stored = json.loads(secrets.read_text())
    assert stored["clickhouse_password"] == endpoint.settings.clickhouse_password
    for auth in [None, ("default", ""), ("analyst", ""), ("analyst", "analyst"), ("default", "wrong")]:
        r = httpx.post(endpoint.url, content=b"SELECT 1", auth=auth, timeout=30)
        assert r.status_code == 403 and _code(r) == "516", (auth, r.text)
    assert _post(endpoint, "SELECT 1").text == "1\n"
    assert _post(endpoint, "SELECT 1", endpoint.analyst).text == "1\n"


# --- files ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM `file`('/etc/passwd', 'LineAsString')",
        "SELECT * FROM file /* c */ ($$/etc/passwd$$, 'LineAsString')",
        "SELECT file('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        'SELECT * FROM "/etc/passwd"',
        "SELECT * FROM file('../../../../etc/passwd', 'LineAsString')",
        "SELECT * FROM file(concat('/etc', '/passwd'), 'LineAsString')",
        "SELECT * FROM file('\\x2Fetc/passwd', 'LineAsString')",
        "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
        "SELECT * FROM executable('cat /etc/passwd', 'LineAsString', 'x String')",
        "SELECT * FROM remote('127.0.0.1', system.one)",
        "SELECT 1; SELECT * FROM file('/etc/passwd', 'LineAsString')",
    ],
)
def test_reading_outside_user_files_is_refused(endpoint: Endpoint, sql: str) -> None:
    for auth in (endpoint.admin, endpoint.analyst):
        r = _post(endpoint, sql, auth)
        assert r.status_code in (400, 403), (sql, r.status_code, r.text)
        assert "root:" not in r.text


def test_writing_files_is_confined_to_user_files(endpoint: Endpoint, tmp_path) -> None:
    outside = tmp_path / "pwned.csv"
    for sql in [
        f"INSERT INTO FUNCTION file('{outside}', 'CSV', 'a UInt8') VALUES (1)",
        "INSERT INTO FUNCTION file('../escape.csv', 'CSV', 'a UInt8') VALUES (1)",
        f"SELECT 1 INTO OUTFILE '{outside}'",
        f"CREATE TABLE leak (a String) ENGINE = File(LineAsString, '{outside}')",
    ]:
        r = _post(endpoint, sql)
        assert r.status_code == 403 and _code(r) == "497", (sql, r.text)
    assert not outside.exists()
    assert not (endpoint.user_files.parent / "escape.csv").exists()
    # Inside user_files the admin may write and read back, as with a real server's user_files_path.
    name = f"export-{uuid.uuid4().hex[:8]}.csv"
    r = _post(endpoint, f"INSERT INTO FUNCTION file('{name}', 'CSV', 'a UInt8') VALUES (7)")
    assert r.status_code == 200, r.text
    assert (endpoint.user_files / name).read_text() == "7\n"
    assert _post(endpoint, f"SELECT * FROM file('{name}', 'CSV', 'a UInt8')").text == "7\n"
    r = _post(endpoint, f"SELECT * FROM file('{endpoint.user_files / name}', 'CSV', 'a UInt8')")
    assert r.text == "7\n", r.text
    # The analyst may touch no file at all, even there.
    for sql in [f"SELECT * FROM file('{name}', 'CSV', 'a UInt8')", "SELECT 1 INTO OUTFILE 'analyst.txt'"]:
        r = _post(endpoint, sql, endpoint.analyst)
        assert r.status_code == 403, (sql, r.text)
    assert not (endpoint.user_files / "analyst.txt").exists()


# --- cross-site and rebinding ----------------------------------------------------------------------------------------


def test_foreign_origin_and_host_are_refused_before_anything_runs(endpoint: Endpoint) -> None:
    table = f"xsite_{uuid.uuid4().hex[:8]}"
    create = f"CREATE TABLE {table} (a UInt8) ENGINE = Memory"
    # What a web page can send without a preflight: a text/plain POST (credentials in the URL) with its Origin.
    params = {"user": "default", "password": endpoint.settings.clickhouse_password}
    page = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
    r = httpx.post(endpoint.url, params=params, content=create.encode(), headers=page, timeout=30)
    assert r.status_code == 403 and "Origin" in r.text, r.text
    rebinding = {"Host": f"evil.example:{endpoint.settings.clickhouse_port}"}
    r = httpx.post(endpoint.url, params=params, content=create.encode(), headers=rebinding, timeout=30)
    assert r.status_code == 403 and "Host" in r.text, r.text
    assert httpx.get(f"{endpoint.url}/metrics", headers=rebinding, timeout=30).status_code == 403
    assert not _table_exists(endpoint, table)
    for origin in (f"http://localhost:{endpoint.settings.clickhouse_port}", "http://127.0.0.1:8501"):
        assert _post(endpoint, "SELECT 1", headers={"Origin": origin}).text == "1\n"
    assert _post(endpoint, "SELECT 1", headers={"Host": "[::1]:8123"}).text == "1\n"


# --- read-only -----------------------------------------------------------------------------------------------------


def test_get_is_read_only_whatever_the_session(endpoint: Endpoint) -> None:
    session = {"session_id": f"s-{uuid.uuid4().hex}"}
    assert httpx.post(endpoint.url, params=session, content=b"SELECT 1", auth=endpoint.admin).status_code == 200
    table = f"via_get_{uuid.uuid4().hex[:8]}"
    for sql in [
        f"CREATE TABLE {table} (a UInt8) ENGINE = Memory",
        "INSERT INTO FUNCTION file('via_get.csv', 'CSV', 'a UInt8') VALUES (1)",
        "SELECT 1 INTO OUTFILE 'via_get.txt'",
    ]:
        r = httpx.get(endpoint.url, params={**session, "query": sql}, auth=endpoint.admin, timeout=30)
        assert r.status_code == 403 and _code(r) == "164", (sql, r.text)
        r = httpx.get(endpoint.url, params={"query": sql}, auth=endpoint.admin, timeout=30)
        assert r.status_code == 403, (sql, r.text)
    r = httpx.get(endpoint.url, params={**session, "query": "SELECT 1", "readonly": "0"}, auth=endpoint.admin)
    assert r.status_code == 403, r.text
    assert not _table_exists(endpoint, table)
    assert not (endpoint.user_files / "via_get.csv").exists() and not (endpoint.user_files / "via_get.txt").exists()


def test_statements_are_one_at_a_time(endpoint: Endpoint) -> None:
    table = f"multi_{uuid.uuid4().hex[:8]}"
    r = _post(endpoint, f"SELECT 1; CREATE TABLE {table} (a UInt8) ENGINE = Memory")
    assert r.status_code == 400 and "Multi-statements" in r.text
    assert not _table_exists(endpoint, table)
    assert _post(endpoint, "SELECT 1;").text == "1\n"


def test_analyst_cannot_lift_its_limits(endpoint: Endpoint) -> None:
    analyst = endpoint.analyst
    r = _post(endpoint, "SELECT getSetting('max_execution_time'), getSetting('max_result_rows')", analyst)
    assert r.text.split() == ["5", "1000"], r.text
    assert _post(endpoint, "SELECT getSetting('max_result_rows')").text == "0\n"  # the admin has none
    for sql in [
        "SELECT count() FROM numbers(10) SETTINGS max_execution_time = 0",
        "SELECT number FROM numbers(5000) SETTINGS max_result_rows = 0",
        "SELECT 1 SETTINGS readonly = 0",
        "SELECT number FROM numbers(5000) SETTINGS result_overflow_mode = 'break'",
        "SET max_execution_time = 0",
    ]:
        r = _post(endpoint, sql, analyst)
        assert r.status_code == 403, (sql, r.text)
    r = httpx.post(endpoint.url, params={"max_result_rows": "0"}, content=b"SELECT 1", auth=analyst, timeout=30)
    assert r.status_code == 403 and _code(r) == "164", r.text
    r = _post(endpoint, "SELECT number FROM numbers(5000)", analyst)
    assert r.status_code == 400 and "TOO_MANY_ROWS_OR_BYTES" in r.text, r.text
    assert _post(endpoint, "SELECT count() FROM numbers(5000)", analyst).text == "5000\n"


# --- size, time, floods ----------------------------------------------------------------------------------------------


def test_huge_bodies_get_413_quickly(endpoint: Endpoint) -> None:
    started = time.monotonic()
    r = _post(endpoint, b"SELECT 1 " + b" " * (8 << 20))
    assert r.status_code == 413 and "too large" in r.text, r.text

    # A statement head that never ends, sent in small pieces (it used to be re-parsed on every piece).
    def pieces():
        yield b"INSERT INTO t "
        for _ in range(1500):
            yield b" " * 1024

    r = httpx.post(endpoint.url, content=pieces(), auth=endpoint.admin, timeout=60)
    assert r.status_code == 413, r.text
    assert time.monotonic() - started < 20
    assert _post(endpoint, "SELECT 1").text == "1\n"


def test_a_flood_of_slow_queries_gets_503_while_ping_answers(endpoint: Endpoint) -> None:
    def slow(_: int) -> httpx.Response:
        return httpx.post(endpoint.url, content=b"SELECT sleep(2)", auth=endpoint.admin, timeout=120)

    with concurrent.futures.ThreadPoolExecutor(48) as pool:
        futures = [pool.submit(slow, i) for i in range(48)]
        time.sleep(0.5)
        pings = []
        for _ in range(5):
            t0 = time.monotonic()
            assert httpx.get(f"{endpoint.url}/ping", timeout=5).text == "Ok.\n"
            pings.append(time.monotonic() - t0)
            time.sleep(0.2)
        answers = [f.result() for f in futures]
    statuses = [r.status_code for r in answers]
    refused = [r for r in answers if r.status_code == 503]
    assert statuses.count(200) >= 12 and len(refused) >= 24, statuses  # 4 run + 8 queue, the rest refused
    assert set(statuses) <= {200, 503}, statuses
    assert all(r.headers.get("Retry-After") for r in refused)
    assert max(pings) < 1.0, pings
    assert _post(endpoint, "SELECT 1").text == "1\n"  # nothing is left stuck


def test_sessions_are_capped_and_expire(endpoint: Endpoint) -> None:
    time.sleep(1.5)  # sessions of earlier tests (60 s timeout) may still count; use short ones here
    ids = [f"cap-{uuid.uuid4().hex}" for _ in range(6)]
    answers = [
        httpx.post(endpoint.url, params={"session_id": sid, "session_timeout": "2"}, content=b"SELECT 1",
                   auth=endpoint.admin, timeout=30)
        for sid in ids
    ]  # fmt: skip
    statuses = [r.status_code for r in answers]
    assert statuses.count(503) >= 1 and "sessions" in answers[-1].text, statuses
    time.sleep(4)  # they expire on their own, without any new request
    for sid in ids:
        r = httpx.post(
            endpoint.url, params={"session_id": sid, "session_check": "1"}, content=b"SELECT 1", auth=endpoint.admin
        )
        assert r.status_code == 404 and _code(r) == "372", r.text


def test_no_file_appeared_outside_the_data_dir(endpoint: Endpoint) -> None:
    # INTO OUTFILE and file() resolve against the endpoint's working directory: it is user_files, nothing else.
    cwd = os.readlink(f"/proc/{endpoint.process.pid}/cwd")
    assert cwd == str(endpoint.user_files)


# --- native block compression (what the Java client uses by default) --------------------------------------------


def test_native_compressed_round_trip_and_a_corrupt_block(endpoint: Endpoint) -> None:
    from finpulse.stack.clickhouse import native_blocks

    table = f"blocks_{uuid.uuid4().hex[:8]}"
    assert _post(endpoint, f"CREATE TABLE {table} (id UInt32, s String) ENGINE = MergeTree ORDER BY id").is_success
    rows = b"".join(f"{i}\tline {i}\n".encode() for i in range(200_000))
    for method, first in ((native_blocks.LZ4, 0), (native_blocks.ZSTD, 200_000)):
        shifted = rows if first == 0 else b"".join(f"{i}\tz\n".encode() for i in range(first, first + 1000))
        body = native_blocks.compress(shifted, method)
        r = httpx.post(
            endpoint.url,
            params={"query": f"INSERT INTO {table} FORMAT TabSeparated", "decompress": "1"},
            content=body,
            auth=endpoint.admin,
            timeout=60,
        )
        assert r.status_code == 200, r.text
    for method in ("lz4", "zstd"):
        r = httpx.post(
            endpoint.url,
            params={"compress": "1", "network_compression_method": method},
            content=f"SELECT count(), sum(id) FROM {table}".encode(),
            auth=endpoint.admin,
        )
        assert r.status_code == 200 and r.content[16] == native_blocks.METHODS[method], r.content[:40]
        decoder = native_blocks.BlockDecoder()
        assert (decoder.feed(r.content) + decoder.finish()).split() == [b"201000", str(sum(range(201_000))).encode()]
    bad = bytearray(native_blocks.compress(b"1\tx\n"))
    bad[-1] ^= 0x01  # one bit of the payload
    r = httpx.post(
        endpoint.url,
        params={"query": f"INSERT INTO {table} FORMAT TabSeparated", "decompress": "1"},
        content=bytes(bad),
        auth=endpoint.admin,
    )
    assert r.status_code == 400 and _code(r) == "40" and "Checksum doesn't match" in r.text, r.text
    assert _post(endpoint, f"SELECT count() FROM {table}").text == "201000\n"


def test_analyst_cannot_read_webhook_secrets_or_query_texts(endpoint: Endpoint) -> None:
    assert _post(endpoint, "CREATE TABLE IF NOT EXISTS alert_targets (name String, secret String) ENGINE = Memory")
    assert _post(endpoint, "INSERT INTO alert_targets VALUES ('desk', 'hook-secret-123')").status_code == 200
    assert "hook-secret-123" in _post(endpoint, "SELECT secret FROM alert_targets").text  # the admin (services) can
    for sql in (
        "SELECT secret FROM alert_targets",
        "SELECT * FROM default.`alert_targets`",
        "SELECT * FROM merge('default', '^alert_t')",
        "SELECT query FROM system.processes",
    ):
        r = _post(endpoint, sql, endpoint.analyst)
        assert r.status_code == 403 and "hook-secret-123" not in r.text, (sql, r.text)
