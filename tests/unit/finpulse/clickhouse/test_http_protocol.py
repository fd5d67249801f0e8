import base64

import pytest

from finpulse.stack.clickhouse.errors import ClickHouseError
from finpulse.stack.clickhouse.http_protocol import (
    Kind,
    classify,
    content_type,
    first_keyword,
    output_format,
    parse_request,
)


def test_settings_transport_and_params_are_separated() -> None:
    spec = parse_request(
        [
            ("query", "SELECT {x:UInt8}"),
            ("param_x", "7"),
            ("max_result_rows", "10"),
            ("database", "fin"),
            ("session_id", "s1"),
            ("session_timeout", "120"),
            ("wait_end_of_query", "1"),
            ("enable_http_compression", "1"),
            ("query_id", "q-1"),
            ("default_format", "JSON"),
        ],
        {},
    )
    assert spec.settings == {"max_result_rows": "10"}
    assert spec.params == {"x": "7"}
    assert (spec.database, spec.session_id, spec.session_timeout, spec.query_id) == ("fin", "s1", 120.0, "q-1")
    assert spec.wait_end_of_query and spec.http_compression
    assert spec.default_format == "JSON"


def test_default_format_is_tab_separated() -> None:
    assert parse_request([], {}).default_format == "TabSeparated"


@pytest.mark.parametrize(
    ("params", "headers", "expected"),
    [
        ([], {"x-clickhouse-user": "analyst", "x-clickhouse-key": "pw"}, ("analyst", "pw", "header")),
        ([], {"authorization": "Basic " + base64.b64encode(b"u:p:w").decode()}, ("u", "p:w", "basic")),
        ([("user", "a"), ("password", "b")], {}, ("a", "b", "url")),
        ([], {}, ("default", "", "none")),
    ],
)
def test_credentials_sources(params, headers, expected) -> None:
    creds = parse_request(params, headers).credentials
    assert (creds.user, creds.password, creds.method) == expected


def test_mixed_credentials_refused() -> None:
    with pytest.raises(ClickHouseError, match="only one of"):
        parse_request([("user", "a")], {"x-clickhouse-user": "b"})


def test_bad_inputs_refused() -> None:
    with pytest.raises(ClickHouseError, match="Invalid setting name"):
        parse_request([("max threads", "1")], {})
    with pytest.raises(ClickHouseError, match="network_compression_method"):
        parse_request([("compress", "1"), ("network_compression_method", "brotli")], {})
    spec = parse_request([("compress", "1"), ("decompress", "1"), ("network_compression_method", "ZSTD")], {})
    assert spec.native_compress and spec.native_decompress and spec.native_method == "zstd"
    with pytest.raises(ClickHouseError, match="Session timeout"):
        parse_request([("session_timeout", "0")], {})


def test_insert_with_data_splits_statement_and_data() -> None:
    c = classify(b"INSERT INTO t (a, b) FORMAT Native\n\x02\x01\n\x00", complete=True)
    assert c.kind is Kind.DATA_INSERT
    assert (c.statement, c.fmt, c.data_offset) == ("INSERT INTO t (a, b)", "Native", 35)


def test_data_starts_after_first_newline_only() -> None:
    # Binary data may itself begin with whitespace bytes (a column count of 10 is '\n'): only ONE newline is eaten.
    text = b"INSERT INTO t FORMAT RowBinary\n\n\n"
    assert classify(text, complete=True).data_offset == len(b"INSERT INTO t FORMAT RowBinary\n")
    assert classify(b"INSERT INTO t FORMAT TSV 1\t2\n", complete=True).data_offset == 25


def test_head_split_across_chunks_waits_for_more() -> None:
    assert classify(b"INSER", complete=False).kind is Kind.NEED_MORE
    assert classify(b"INSERT INTO t FORMAT Nat", complete=False).kind is Kind.NEED_MORE
    assert classify(b"INSERT INTO t FORMAT Native", complete=False).kind is Kind.NEED_MORE
    assert classify(b"INSERT INTO 't", complete=False).kind is Kind.NEED_MORE


@pytest.mark.parametrize(
    "text",
    [
        b"SELECT 1 FORMAT JSON",
        b'insert into `FORMAT` ("a") values (1)',
        b"INSERT INTO t SELECT 'FORMAT x'",
        b"INSERT INTO t SELECT * FROM s",
        b"CREATE TABLE t (a UInt8) ENGINE = Memory",
    ],
)
def test_statements_without_inline_data_are_plain_queries(text: bytes) -> None:
    assert classify(text, complete=True).kind is Kind.QUERY


def test_comments_and_settings_in_insert_head() -> None:
    c = classify(b"/* FORMAT x */ INSERT INTO t SETTINGS a = 1 FORMAT CSV\r\n1,2", complete=True)
    assert c.kind is Kind.DATA_INSERT and c.fmt == "CSV"
    assert c.statement.endswith("SETTINGS a = 1")


def test_output_format_and_content_type() -> None:
    assert output_format("SELECT 1 FORMAT JSONEachRow;", "TabSeparated") == "JSONEachRow"
    assert output_format("SELECT 1", "Native") == "Native"
    assert content_type("Native") == "application/octet-stream"
    assert content_type("TabSeparated").startswith("text/tab-separated-values")
    assert first_keyword("  -- note\n /* c */ select 1") == "SELECT"
