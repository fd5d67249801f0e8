"""Attacks through multipart form bodies (clickhouse-connect sends large query parameters that way) on the real
local endpoint: a form field gets no further than a URL parameter, and a bad form is a 4xx with its reason."""

from __future__ import annotations

import gzip
import uuid

import httpx
import pytest
from urllib3 import encode_multipart_formdata

from tests.integration.endpoint import Endpoint

pytestmark = pytest.mark.integration


def _form(
    ep: Endpoint,
    fields: dict[str, object] | list[tuple[str, str]],
    auth: tuple[str, str] | None = None,
    params: dict[str, str] | None = None,
    **kwargs: object,
) -> httpx.Response:
    body, content_type = encode_multipart_formdata(fields)
    headers = {"Content-Type": content_type, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return httpx.post(ep.url, params=params, content=body, headers=headers, auth=auth or ep.admin, timeout=60, **kwargs)


def _raw(ep: Endpoint, body: bytes, content_type: str, auth: tuple[str, str] | None = None) -> httpx.Response:
    return httpx.post(ep.url, content=body, headers={"Content-Type": content_type}, auth=auth or ep.admin, timeout=60)


def _code(r: httpx.Response) -> str:
    return r.headers.get("X-ClickHouse-Exception-Code", "")


def _exists(ep: Endpoint, table: str) -> bool:
    return _form(ep, {"query": f"EXISTS TABLE {table}"}).text.strip() == "1"


def test_a_form_field_cannot_lift_the_analysts_readonly_or_limits(endpoint: Endpoint) -> None:
    lifts = {"readonly": "0", "max_result_rows": "0", "max_execution_time": "0", "result_overflow_mode": "break"}
    probe = "SELECT getSetting('readonly'), getSetting('max_result_rows'), getSetting('max_execution_time')"
    r = _form(endpoint, {"query": probe, **lifts}, endpoint.analyst)
    assert r.status_code == 200 and r.text.split() == ["1", "1000", "5"], r.text  # ignored, as ClickHouse does
    r = _form(endpoint, {"query": "SELECT number FROM numbers(5000)", **lifts}, endpoint.analyst)
    assert r.status_code == 400 and "TOO_MANY_ROWS_OR_BYTES" in r.text, r.text
    table = f"form_ro_{uuid.uuid4().hex[:8]}"
    for statement in (f"CREATE TABLE {table} (a UInt8) ENGINE = Memory", "SET readonly = 0"):
        r = _form(endpoint, {"query": statement, **lifts}, endpoint.analyst)
        assert r.status_code == 403 and _code(r) == "164", (statement, r.text)
    # the limits cannot be lifted by the query in the form either
    for sql in (
        "SELECT number FROM numbers(5000) SETTINGS max_result_rows = 0",
        "SELECT 1 SETTINGS readonly = 0",
    ):
        r = _form(endpoint, {"query": sql}, endpoint.analyst)
        assert r.status_code == 403, (sql, r.text)
    # and a URL parameter is refused exactly as without a form
    r = _form(endpoint, {"query": "SELECT 1"}, endpoint.analyst, params={"max_result_rows": "0"})
    assert r.status_code == 403 and _code(r) == "164", r.text
    assert not _exists(endpoint, table)


def test_a_form_cannot_switch_user_database_or_format(endpoint: Endpoint) -> None:
    admin_user, admin_password = endpoint.admin
    fields = {
        "query": "SELECT getSetting('readonly')",
        "user": admin_user,
        "password": admin_password,
        "database": "system",
        "default_format": "JSON",
    }
    r = _form(endpoint, fields, endpoint.analyst)
    assert r.status_code == 200 and r.text == "1\n", r.text  # still the analyst, TabSeparated, no database change
    r = _form(endpoint, {**fields, "query": "SELECT currentDatabase()"}, endpoint.analyst)
    assert r.text == "default\n", r.text
    # credentials only in the form authenticate nobody
    body, content_type = encode_multipart_formdata(fields)
    r = httpx.post(endpoint.url, content=body, headers={"Content-Type": content_type}, timeout=60)
    assert r.status_code == 403 and _code(r) == "516", r.text


def test_the_statement_guard_applies_to_the_form_query(endpoint: Endpoint) -> None:
    table = f"form_multi_{uuid.uuid4().hex[:8]}"
    r = _form(endpoint, {"query": f"SELECT 1; CREATE TABLE {table} (a UInt8) ENGINE = Memory"})
    assert r.status_code == 400 and "Multi-statements" in r.text, r.text
    # two query fields are one statement text, joined as ClickHouse joins them
    r = _form(endpoint, [("query", "SELECT 1;"), ("query", f" CREATE TABLE {table} (a UInt8) ENGINE = Memory")])
    assert r.status_code == 400 and "Multi-statements" in r.text, r.text
    assert not _exists(endpoint, table)
    for sql in ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "SELECT * FROM url('http://127.0.0.1:1/', CSV)"):
        r = _form(endpoint, {"query": sql}, endpoint.analyst)
        assert r.status_code == 403 and "root:" not in r.text, (sql, r.text)
    r = _form(endpoint, {"query": "SELECT * FROM system.processes"}, endpoint.analyst)
    assert r.status_code == 403, r.text
    # hidden table names travel through parameters only as values, never as identifiers
    r = _form(endpoint, {"query": "SELECT {t:Identifier}", "param_t": "alert_targets"}, endpoint.analyst)
    assert r.status_code >= 400 and r.status_code != 500, r.text


def test_url_parameters_win_over_form_parameters_and_the_url_query_comes_first(endpoint: Endpoint) -> None:
    r = _form(endpoint, {"query": "SELECT {x:UInt8}", "param_x": "2"}, params={"param_x": "1"})
    assert r.text == "1\n", r.text
    r = _form(endpoint, {"query": " + {x:UInt8}", "param_x": "2"}, params={"query": "SELECT 40"})
    assert r.text == "42\n", r.text


def test_an_oversized_form_gets_413_with_the_reason(endpoint: Endpoint) -> None:
    limit = endpoint.settings.clickhouse_max_query_bytes
    big = ["x" * 100] * (limit // 100)
    r = _form(endpoint, {"query": "SELECT length({ids:Array(String)})", "param_ids": str(big)})
    assert r.status_code == 413 and "Form is too large" in r.text and "MAX_QUERY_BYTES" in r.text, r.text

    # without a Content-Length (chunked) the limit holds while reading
    body, content_type = encode_multipart_formdata({"query": "SELECT 1", "param_ids": str(big)})

    def chunks():
        for i in range(0, len(body), 64 << 10):
            yield body[i : i + 64 << 10]

    r = httpx.post(endpoint.url, content=chunks(), headers={"Content-Type": content_type}, auth=endpoint.admin)
    assert r.status_code == 413 and "Form is too large" in r.text, r.text

    # a small gzip body that unpacks past the limit
    packed = gzip.compress(body)
    assert len(packed) < limit // 10
    r = httpx.post(
        endpoint.url,
        content=packed,
        headers={"Content-Type": content_type, "Content-Encoding": "gzip"},
        auth=endpoint.admin,
        timeout=60,
    )
    assert r.status_code == 413 and "Form is too large" in r.text, r.text
    # a form just under the limit still works
    fits = ["x" * 100] * (limit // 200)
    r = _form(endpoint, {"query": "SELECT length({ids:Array(String)})", "param_ids": str(fits)})
    assert r.status_code == 200 and r.text == f"{len(fits)}\n", r.text[:300]


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("multipart/form-data", b"--x\r\n", "no boundary parameter"),
        ("multipart/form-data; boundary=zz", b"SELECT 1", "does not contain the boundary"),
        ("multipart/form-data; boundary=zz", b'--zz\r\nContent-Disposition: form-data; name="query"\r\n\r\nSELECT 1',
         "no closing boundary"),
        ("multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data; name=\"query\"", "headers not"),
        ("multipart/form-data; boundary=zz", b"--zz\r\n\r\nSELECT 1\r\n--zz--", "no Content-Disposition"),
        ("multipart/form-data; boundary=zz", b'--zz\r\nContent-Disposition: form-data; name="param_x"\r\n\r\n\xff\r\n'
         b"--zz--", "not valid UTF-8"),
        ("multipart/form-data; boundary=zz", b'--zz\r\nContent-Disposition: form-data; name="query"\r\n\r\n\r\n--zz--',
         "Empty query"),
    ],
    ids=["no-boundary", "no-delimiter", "truncated", "endless-headers", "no-disposition", "bad-utf8", "empty"],
)  # fmt: skip
def test_a_malformed_form_gets_400_with_the_reason(
    endpoint: Endpoint, content_type: str, body: bytes, reason: str
) -> None:
    r = _raw(endpoint, body, content_type)
    assert r.status_code == 400 and reason in r.text, r.text
    assert _raw(endpoint, body, content_type, endpoint.analyst).status_code == 400


def test_external_data_tables_are_refused_with_400_naming_the_part(endpoint: Endpoint) -> None:
    fields = {"query": "SELECT count() FROM ext", "ext": ("ext.tsv", b"1\n2\n", "text/plain")}
    r = _form(endpoint, fields, params={"ext_structure": "a UInt8"})
    assert r.status_code == 400 and "External data tables are not supported" in r.text and "'ext'" in r.text, r.text
    # clickhouse-connect's own external data call gets the same clear refusal
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import DatabaseError
    from clickhouse_connect.driver.external import ExternalData

    client = clickhouse_connect.get_client(
        host="127.0.0.1",
        port=endpoint.settings.clickhouse_port,
        username=endpoint.admin[0],
        password=endpoint.admin[1],
    )
    try:
        data = ExternalData(file_name="ext.csv", data=b"1\n2\n", fmt="CSV", structure=["a UInt8"])
        with pytest.raises(DatabaseError, match="External data tables are not supported"):
            client.query("SELECT count() FROM ext", external_data=data)
        assert client.command("SELECT 1") == 1  # the connection and the endpoint are fine afterwards
    finally:
        client.close()


def test_an_insert_in_a_form_goes_through_the_same_checks(endpoint: Endpoint) -> None:
    table = f"form_ins_{uuid.uuid4().hex[:8]}"
    assert _form(endpoint, {"query": f"CREATE TABLE {table} (a UInt8) ENGINE = Memory"}).status_code == 200
    try:
        r = _form(endpoint, {"query": f"INSERT INTO {table} FORMAT TSV\n1\n2\n"})
        assert r.status_code == 200, r.text
        r = _form(endpoint, {"query": f"INSERT INTO {table} FORMAT TSV\n3\n"}, endpoint.analyst)
        assert r.status_code == 403 and _code(r) == "164", r.text
        r = _form(endpoint, {"query": f"INSERT INTO {table} SELECT {{v:UInt8}}", "param_v": "9"}, endpoint.analyst)
        assert r.status_code == 403 and _code(r) == "164", r.text
        assert _form(endpoint, {"query": f"SELECT groupArray(a) FROM {table}"}).text == "[1,2]\n"
    finally:
        _form(endpoint, {"query": f"DROP TABLE IF EXISTS {table}"})


@pytest.mark.parametrize("via", ["url", "form"])
def test_identifier_parameters_name_no_hidden_table_and_no_file_outside_user_files(
    endpoint: Endpoint, via: str
) -> None:
    """``FROM {t:Identifier}`` read alert_targets as the analyst and /etc/passwd as the admin (both ways of sending
    parameters); the guard now checks the bound name as it checks a name in the text."""
    secret = f"hook-secret-{uuid.uuid4().hex[:6]}"
    _form(endpoint, {"query": "CREATE TABLE IF NOT EXISTS alert_targets (name String, secret String) ENGINE = Memory"})
    assert _form(endpoint, {"query": f"INSERT INTO alert_targets VALUES ('desk', '{secret}')"}).status_code == 200
    outside = endpoint.settings.data_dir / "outside.csv"
    outside.write_text("outside-secret\n")
    (endpoint.user_files / "inside_param.csv").write_text("inside-data\n")

    def ask(params: dict[str, str], auth: tuple[str, str]) -> httpx.Response:
        sql = "SELECT * FROM {t:Identifier}"
        if via == "form":
            return _form(endpoint, {"query": sql, **{f"param_{k}": v for k, v in params.items()}}, auth)
        return httpx.post(endpoint.url, params={f"param_{k}": v for k, v in params.items()}, content=sql, auth=auth)

    for value in ("alert_targets", "/etc/passwd", str(outside), "../outside.csv"):
        r = ask({"t": value}, endpoint.analyst)
        assert r.status_code == 403 and secret not in r.text and "root:" not in r.text, (value, r.text)
    for value in ("/etc/passwd", str(outside), "../outside.csv"):
        r = ask({"t": value}, endpoint.admin)
        assert r.status_code == 403 and "root:" not in r.text and "outside-secret" not in r.text, (value, r.text)
    assert ask({"t": "inside_param.csv"}, endpoint.admin).text == "inside-data\n"  # user_files, as FROM 'x.csv'
    assert secret in ask({"t": "alert_targets"}, endpoint.admin).text  # the services' user reads it
