"""The multipart form reader of the local endpoint, on bodies built the way clickhouse-connect builds them (urllib3)."""

from __future__ import annotations

import contextlib
import time

import pytest
from urllib3 import encode_multipart_formdata

from finpulse.stack.clickhouse import http_form
from finpulse.stack.clickhouse.errors import BAD_ARGUMENTS, ClickHouseError
from finpulse.stack.clickhouse.http_form import FormError, is_form, parse_form

BOUNDARY = "a1b2c3"
CT = f"multipart/form-data; boundary={BOUNDARY}"


def _body(*parts: tuple[str, str | bytes], preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    out = [preamble]
    for name, value in parts:
        data = value.encode() if isinstance(value, str) else value
        out += [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode(), data, b"\r\n"]
    return b"".join([*out, f"--{BOUNDARY}--\r\n".encode(), epilogue])


def test_a_clickhouse_connect_style_form_gives_the_query_and_its_parameters() -> None:
    ids = [f"bench-{i}" for i in range(2000)]
    fields = {"query": "SELECT length({ids:Array(String)})\n FORMAT Native", "param_ids": str(ids)}
    body, content_type = encode_multipart_formdata(fields)
    form = parse_form(body, content_type)
    assert form.query == fields["query"]
    assert form.params == {"ids": str(ids)}
    assert form.ignored == []


def test_other_fields_are_no_settings_and_the_first_parameter_wins() -> None:
    form = parse_form(
        _body(
            ("query", "SELECT {x:UInt8}"),
            ("readonly", "0"),
            ("max_result_rows", "0"),
            ("param_x", "1"),
            ("param_x", "2"),
            ("param_", "nameless"),
        ),
        CT,
    )
    assert form.params == {"x": "1"}
    assert form.ignored == ["readonly", "max_result_rows", "param_"]


def test_query_fields_are_joined_in_order_and_values_keep_crlf_and_dashes() -> None:
    value = "line1\r\nline2\r\n-- not a boundary --\r\n--a1b2c"  # a near-miss of the delimiter
    form = parse_form(_body(("query", "SELECT "), ("query", "{v:String}"), ("param_v", value)), CT)
    assert form.query == "SELECT {v:String}"
    assert form.params == {"v": value}


def test_preamble_epilogue_quoted_boundary_and_escaped_names() -> None:
    body = (
        b"this is a preamble\r\n"
        + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="param_a%22b"\r\n\r\n1\r\n'.encode()
        + f'--{BOUNDARY}\r\ncontent-disposition: Form-Data; name="que\\ry"; x=y\r\n'
        "Content-Type: text/plain\r\n\r\nSELECT 1\r\n".encode()
        + f"--{BOUNDARY}--  \r\nepilogue --{BOUNDARY}\r\n".encode()
    )
    form = parse_form(body, f'multipart/form-data; charset=utf-8; boundary="{BOUNDARY}"')
    assert form.query == "SELECT 1" and form.params == {'a"b': "1"}


def test_empty_values() -> None:
    form = parse_form(_body(("query", ""), ("param_e", "")), CT)
    assert form.query == "" and form.params == {"e": ""}


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("multipart/form-data", _body(("query", "SELECT 1")), "no boundary"),
        ('multipart/form-data; boundary=""', _body(("query", "SELECT 1")), "no boundary"),
        ("multipart/form-data; boundary=" + "x" * 71, b"", "invalid boundary"),
        ("multipart/form-data; boundary=a\x00b", b"", "invalid boundary"),
        ("multipart/form-data; boundary=\"abc", b"", "unterminated quoted"),
        (CT, b"SELECT 1", "does not contain the boundary"),
        (CT, b"", "does not contain the boundary"),
        (CT, _body(("query", "SELECT 1"))[:-12], "no closing boundary"),
        (CT, f"--{BOUNDARY}".encode(), "must end with CRLF"),
        (CT, f"--{BOUNDARY}xyz\r\n".encode(), "must end with CRLF"),
        (CT, f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"q\"".encode(), "headers not terminated"),
        (CT, f"--{BOUNDARY}\r\nbroken header\r\n\r\nx\r\n--{BOUNDARY}--".encode(), "malformed header line"),
        (CT, f"--{BOUNDARY}\r\n\r\nx\r\n--{BOUNDARY}--".encode(), "no Content-Disposition"),
        (CT, f"--{BOUNDARY}\r\nContent-Disposition: attachment; name=\"q\"\r\n\r\nx\r\n--{BOUNDARY}--".encode(),
         "must be form-data with a name"),
        (CT, f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--".encode(),
         "must be form-data with a name"),
        (CT, _body(("param_x", b"\xff\xfe")), "not valid UTF-8"),
        (CT, f"--{BOUNDARY}\r\nX: \xff\r\n\r\nx\r\n--{BOUNDARY}--".encode("latin-1"), "not valid UTF-8"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 and "\r" not in v else "",
)  # fmt: skip
def test_malformed_forms_are_refused_with_the_reason(content_type: str, body: bytes, reason: str) -> None:
    with pytest.raises(FormError, match=reason) as refused:
        parse_form(body, content_type)
    assert refused.value.code == BAD_ARGUMENTS and refused.value.http_status == 400
    assert "Malformed multipart/form-data body" in refused.value.message


def test_external_data_files_are_refused_naming_the_part() -> None:
    body, content_type = encode_multipart_formdata(
        {"query": "SELECT * FROM ext", "ext": ("ext.tsv", b"1\n2\n", "application/octet-stream")}
    )
    with pytest.raises(ClickHouseError, match=r"External data tables are not supported.*'ext'") as refused:
        parse_form(body, content_type)
    assert refused.value.http_status == 400
    body = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"t\"; filename*=UTF-8''t.csv\r\n\r\n1\r\n--{BOUNDARY}--"
    )
    with pytest.raises(ClickHouseError, match="External data tables"):
        parse_form(body.encode(), CT)


def test_too_many_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_form, "MAX_FIELDS", 3)
    parse_form(_body(*[(f"param_{i}", "1") for i in range(3)]), CT)
    with pytest.raises(FormError, match="more than 3 fields"):
        parse_form(_body(*[(f"param_{i}", "1") for i in range(4)]), CT)


HOSTILE = {
    # a value full of near-misses of the delimiter
    "near-misses": lambda n: _body(("param_v", ("\r\n--" + BOUNDARY[:-1] + "x") * n)),
    # many tiny parts
    "many-parts": lambda n: _body(*[(f"param_p{i}", "1") for i in range(n // 4)]),
    # a quoted name of backslash escapes, far from its closing quote
    "escapes": lambda n: _body(*[("\\x" * 7000, "1")] * (n // 2000)),
    # header lines that never end in a blank line
    "endless-headers": lambda n: f"--{BOUNDARY}\r\n".encode() + b"X-A: b\r\n" * n,
}


def _parse_time(body: bytes) -> float:
    best = float("inf")
    for _ in range(3):  # the best of three: the machine is shared
        started = time.perf_counter()
        with contextlib.suppress(FormError):
            parse_form(body, CT)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_parsing_is_linear_on_hostile_bodies(kind: str) -> None:
    small, large = HOSTILE[kind](20_000), HOSTILE[kind](80_000)
    assert len(large) > 3.5 * len(small) and len(large) > 300_000
    t_small, t_large = _parse_time(small), _parse_time(large)
    # four times the bytes: about four times the time (quadratic would be sixteen)
    assert t_large < 8 * t_small + 0.05, (kind, t_small, t_large)
    assert t_large < 2.0


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("multipart/form-data; boundary=x", True),
        ("Multipart/Form-Data ; boundary=x", True),
        ("application/x-www-form-urlencoded", False),  # curl -d 'SELECT 1': the body is SQL, as in ClickHouse
        ("text/plain; charset=utf-8", False),
        (None, False),
        ("", False),
    ],
)
def test_only_multipart_is_a_form(content_type: str | None, expected: bool) -> None:
    assert is_form(content_type) is expected
