"""Regression: large query parameters reach the local endpoint in a multipart form and work as on a real server.

clickhouse-connect moves the query and its ``param_*`` values into a multipart form body once the bound parameters
pass ~4 KB (``use_form_encoding``); the endpoint used to take that body for more SQL and answered "Multi-statements
are not allowed" (a 200-id Array(String) parameter already failed).
"""

from __future__ import annotations

import httpx
import pytest
from clickhouse_connect.driver.binding import use_form_encoding

from tests.stack import local_only
from warehouse.client import create_client

from .conftest import Endpoint

pytestmark = [pytest.mark.integration, local_only]
FULL = ("default", "full-secret")
ANALYST = ("analyst", "ro-secret")
TABLE = "form_params_docs"
IDS = [f"bench-{299000 + i}" for i in range(2000)]


@pytest.fixture(scope="module")
def docs(endpoint: Endpoint):
    admin = create_client(endpoint.settings, database=None)
    admin.command(f"CREATE TABLE IF NOT EXISTS {TABLE} (id String, n UInt32) ENGINE = MergeTree ORDER BY id")
    admin.command(f"TRUNCATE TABLE {TABLE}")
    # every other id of IDS exists, plus rows that are not asked for
    admin.insert(TABLE, [[f"bench-{299000 + i}", i] for i in range(0, 4000, 2)], column_names=["id", "n"])
    yield admin
    admin.command(f"DROP TABLE IF EXISTS {TABLE}")
    admin.close()


def test_the_client_takes_the_form_path_for_these_parameters() -> None:
    assert use_form_encoding("SELECT 1", {"param_ids": str(IDS)})  # so the tests below exercise the form


@pytest.mark.parametrize("readonly", [False, True], ids=["admin", "analyst"])
def test_a_2000_id_array_parameter_is_bound(endpoint: Endpoint, docs, readonly: bool) -> None:
    client = create_client(endpoint.settings, readonly=readonly, database=None)
    try:
        assert client.query("SELECT length({ids:Array(String)})", parameters={"ids": IDS}).result_rows == [(2000,)]
        rows = client.query(
            f"SELECT id, n FROM {TABLE} WHERE id IN {{ids:Array(String)}} AND n >= {{low:UInt32}} ORDER BY n",
            parameters={"ids": IDS, "low": 10},
        ).result_rows
        expected = [(f"bench-{299000 + i}", i) for i in range(10, 2000, 2)]
        assert rows == expected
        # command() (the raw query path) and a client-side bound count agree
        assert client.command(f"SELECT count() FROM {TABLE} WHERE has({{ids:Array(String)}}, id)", {"ids": IDS}) == 1000
    finally:
        client.close()


def test_values_with_quotes_newlines_and_unicode_survive_the_form(endpoint: Endpoint) -> None:
    client = create_client(endpoint.settings, readonly=True, database=None)
    values = [f'it\'s "{i}"\r\n--\\ é€ {"x" * 5}' for i in range(300)]
    try:
        (row,) = client.query("SELECT {v:Array(String)}, {s:String}", parameters={"v": values, "s": "a'b"}).result_rows
        assert row == (values, "a'b")
    finally:
        client.close()


def test_forced_form_encoding_and_the_limits_of_the_analyst(endpoint: Endpoint) -> None:
    client = create_client(endpoint.settings, readonly=True, database=None, form_encode_query_params=True)
    try:
        assert client.query("SELECT {x:UInt8} + 1", parameters={"x": 41}).result_rows == [(42,)]
        limit = endpoint.settings.clickhouse_analyst_max_result_rows
        assert client.command("SELECT getSetting('max_result_rows')") == limit
        assert client.command("SELECT getSetting('readonly')") == 1
    finally:
        client.close()


def test_curl_style_urlencoded_body_is_still_sql(endpoint: Endpoint) -> None:
    # curl -d 'SELECT 1' labels the body application/x-www-form-urlencoded; ClickHouse runs it as SQL, so do we
    r = httpx.post(
        endpoint.url,
        content=b"SELECT 1 + 1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=FULL,
    )
    assert r.status_code == 200 and r.text == "2\n", r.text
