"""Regression: rows that the table refuses after parsing are an error on the local endpoint, never a silent success.

chdb's streaming inserter reported success for rows that a CHECK constraint or a throwing materialized view refused,
and stored none of them: a client (the stream's ClickHouse sink) took the batch for stored and committed past it.
The endpoint now spools INSERT data and runs it as one ``INSERT ... FROM INFILE`` query, which reports the refusal.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid

import pytest

from tests.integration.endpoint import Endpoint

pytestmark = pytest.mark.integration


def _client(endpoint: Endpoint, **kwargs: object):
    import clickhouse_connect

    return clickhouse_connect.get_client(
        host="127.0.0.1",
        port=endpoint.settings.clickhouse_port,
        username=endpoint.admin[0],
        password=endpoint.admin[1],
        **kwargs,
    )


def _post(endpoint: Endpoint, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(endpoint.url + "/", data=body, method="POST")
    user, password = endpoint.admin
    request.add_header("X-ClickHouse-User", user)
    request.add_header("X-ClickHouse-Key", password)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "lz4-blocks"])
def test_a_row_refused_by_a_check_constraint_fails_the_insert(endpoint: Endpoint, compress: bool) -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError

    table = f"refuse_{uuid.uuid4().hex[:8]}"
    client = _client(endpoint, compress="lz4" if compress else False)
    try:
        client.command(
            f"CREATE TABLE {table} (id String, title String, CONSTRAINT no_bad CHECK position(title, 'BAD') = 0) "
            "ENGINE = MergeTree ORDER BY id"
        )
        with pytest.raises(DatabaseError) as refused:
            client.insert(table, [["a", "fine"], ["b", "a BAD title"]], column_names=["id", "title"])
        assert "VIOLATED_CONSTRAINT" in str(refused.value) and "no_bad" in str(refused.value)
        assert client.query(f"SELECT count() FROM {table}").result_rows == [(0,)]

        summary = client.insert(table, [["a", "fine"], ["c", "also fine"]], column_names=["id", "title"])
        assert summary.written_rows == 2
        assert client.query(f"SELECT id FROM {table} ORDER BY id").result_rows == [("a",), ("c",)]
    finally:
        client.command(f"DROP TABLE IF EXISTS {table}")
        client.close()
    spool = endpoint.settings.data_dir / "clickhouse" / "insert_spool"
    assert not list(spool.glob("*")), "spooled INSERT data is removed after every insert"


def test_a_throwing_materialized_view_and_a_text_format_insert_fail_with_the_reason(endpoint: Endpoint) -> None:
    tag = uuid.uuid4().hex[:8]
    source, target = f"mv_src_{tag}", f"mv_dst_{tag}"
    client = _client(endpoint)
    try:
        client.command(f"CREATE TABLE {source} (id String, title String) ENGINE = MergeTree ORDER BY id")
        client.command(f"CREATE TABLE {target} (id String) ENGINE = MergeTree ORDER BY id")
        client.command(
            f"CREATE MATERIALIZED VIEW {target}_mv TO {target} AS "
            f"SELECT id FROM {source} WHERE throwIf(title = 'BAD', 'the view refuses BAD') = 0"
        )
        status, body = _post(endpoint, f"INSERT INTO {source} FORMAT TabSeparated\nx\tok\ny\tBAD\n".encode())
        assert status == 500 and "Code: 395" in body and "the view refuses BAD" in body, (status, body)
        assert client.query(f"SELECT count() FROM {target}").result_rows == [(0,)]

        status, body = _post(endpoint, f"INSERT INTO {source} FORMAT TabSeparated\nz\tok\n".encode())
        assert status == 200, body
        assert client.query(f"SELECT id FROM {target}").result_rows == [("z",)]
        # A SETTINGS clause in the statement still works (FROM INFILE goes before it).
        statement = f"INSERT INTO {source} (id, title) SETTINGS max_insert_block_size = 100 FORMAT CSV"
        status, body = _post(endpoint, f"{statement}\nw,ok\n".encode())
        assert status == 200, body
        assert client.query(f"SELECT count() FROM {target}").result_rows == [(2,)]
    finally:
        for name in (f"{target}_mv", target, source):
            client.command(f"DROP TABLE IF EXISTS {name}")
        client.close()
