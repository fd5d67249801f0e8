"""The pure half of ClickHouse's HTTP interface: what a request asks for, before any engine runs it.

ClickHouse joins the ``query`` URL parameter and the POST body with a newline and parses that as one text; for an
``INSERT ... FORMAT X`` the data starts right after the statement (after the first newline, if any). URL
parameters other than the transport ones below are settings; ``param_<name>`` are server-side query parameters.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from finpulse.stack.clickhouse.errors import BAD_ARGUMENTS, NOT_IMPLEMENTED, ClickHouseError

# Parameters the HTTP layer consumes itself; they never reach the engine as settings.
TRANSPORT_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "session_id",
        "session_timeout",
        "session_check",
        "query_id",
        "user",
        "password",
        "quota_key",
        "buffer_size",
        "wait_end_of_query",
        "enable_http_compression",
        "http_zlib_compression_level",
        "client_protocol_version",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "http_response_buffer_size",
        "role",
        "add_http_cors_header",
        "cancel_http_readonly_queries_on_client_close",
        "http_native_compression_disable_checksumming_on_decompress",
        "compress",
        "decompress",
        "network_compression_method",
    }
)

DEFAULT_FORMAT = "TabSeparated"
DEFAULT_SESSION_TIMEOUT_S = 60.0
MAX_SESSION_TIMEOUT_S = 3600.0

_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str
    method: str  # 'header', 'basic', 'url' or 'none': said in the authentication error


@dataclass(frozen=True)
class QueryRequest:
    """Everything a request asks for except the SQL text and data."""

    query: str = ""
    credentials: Credentials = Credentials("default", "", "none")
    database: str | None = None
    default_format: str = DEFAULT_FORMAT
    settings: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    session_id: str | None = None
    session_timeout: float = DEFAULT_SESSION_TIMEOUT_S
    session_check: bool = False
    query_id: str | None = None
    wait_end_of_query: bool = False
    http_compression: bool = False
    native_compress: bool = False  # compress=1: the response in ClickHouse's native compressed blocks
    native_decompress: bool = False  # decompress=1: the request body is in native compressed blocks
    native_method: str = "lz4"
    verify_checksums: bool = True
    client_protocol_version: int = 0  # Native results in this revision's layout (native_revision.py)


def parse_credentials(params: Mapping[str, str], headers: Mapping[str, str]) -> Credentials:
    """X-ClickHouse-User/Key headers, HTTP basic auth, or user/password URL parameters; mixing them is refused
    as real ClickHouse refuses it, so a client never authenticates as someone it did not mean to."""
    methods = []
    if "x-clickhouse-user" in headers or "x-clickhouse-key" in headers:
        methods.append(
            Credentials(headers.get("x-clickhouse-user", "default"), headers.get("x-clickhouse-key", ""), "header")
        )
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "basic":
            raise ClickHouseError(NOT_IMPLEMENTED, f"Authorization scheme {scheme!r} is not supported: use Basic")
        try:
            user, _, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ClickHouseError(BAD_ARGUMENTS, "Malformed Basic Authorization header") from exc
        methods.append(Credentials(user or "default", password, "basic"))
    if "user" in params or "password" in params:
        methods.append(Credentials(params.get("user") or "default", params.get("password", ""), "url"))
    if len(methods) > 1:
        raise ClickHouseError(
            BAD_ARGUMENTS,
            "Invalid authentication: use only one of X-ClickHouse-User/Key headers, Basic auth or user/password "
            f"URL parameters (got {', '.join(m.method for m in methods)})",
        )
    return methods[0] if methods else Credentials("default", "", "none")


def parse_request(params: Iterable[tuple[str, str]], headers: Mapping[str, str]) -> QueryRequest:
    """Split URL parameters into transport options, settings and ``param_*`` query parameters.

    ``headers`` must have lower-case keys (Starlette's Headers or a plain dict built that way).
    """
    flat: dict[str, str] = {}
    for key, value in params:
        flat[key] = value  # the last occurrence wins, as in ClickHouse
    settings: dict[str, str] = {}
    query_params: dict[str, str] = {}
    for key, value in flat.items():
        if key.startswith("param_"):
            query_params[key[len("param_") :]] = value
        elif key not in TRANSPORT_PARAMS:
            if not _SETTING_NAME.match(key):
                raise ClickHouseError(BAD_ARGUMENTS, f"Invalid setting name {key!r}")
            settings[key] = value
    method = (flat.get("network_compression_method") or "lz4").strip().lower()
    if method not in ("lz4", "zstd", "none"):
        raise ClickHouseError(BAD_ARGUMENTS, f"Unknown network_compression_method {method!r}: use LZ4, ZSTD or NONE")
    timeout = flat.get("session_timeout")
    try:
        session_timeout = float(timeout) if timeout else DEFAULT_SESSION_TIMEOUT_S
    except ValueError as exc:
        raise ClickHouseError(BAD_ARGUMENTS, f"Invalid session timeout: {timeout!r}") from exc
    if not 0 < session_timeout <= MAX_SESSION_TIMEOUT_S:
        raise ClickHouseError(BAD_ARGUMENTS, f"Session timeout must be in (0, {MAX_SESSION_TIMEOUT_S:g}] seconds")
    revision = (flat.get("client_protocol_version") or "0").strip()
    if not revision.isdigit() or len(revision) > 9:
        raise ClickHouseError(BAD_ARGUMENTS, f"Invalid client_protocol_version {revision!r}: a revision number")
    database = flat.get("database") or headers.get("x-clickhouse-database") or None
    fmt = flat.get("default_format") or headers.get("x-clickhouse-format") or DEFAULT_FORMAT
    return QueryRequest(
        query=flat.get("query", ""),
        credentials=parse_credentials(flat, headers),
        database=database,
        default_format=fmt,
        settings=settings,
        params=query_params,
        session_id=flat.get("session_id") or None,
        session_timeout=session_timeout,
        session_check=_truthy(flat.get("session_check")),
        query_id=flat.get("query_id") or headers.get("x-clickhouse-query-id") or None,
        wait_end_of_query=_truthy(flat.get("wait_end_of_query")),
        http_compression=_truthy(flat.get("enable_http_compression")),
        native_compress=_truthy(flat.get("compress")),
        native_decompress=_truthy(flat.get("decompress")),
        native_method=method,
        verify_checksums=not _truthy(flat.get("http_native_compression_disable_checksumming_on_decompress")),
        client_protocol_version=int(revision),
    )


# --- the SQL text ---------------------------------------------------------------------------------------------------


class Kind(Enum):
    NEED_MORE = "need_more"  # the statement head is not all here yet
    DATA_INSERT = "data_insert"  # INSERT ... FORMAT X followed by data
    QUERY = "query"  # anything else: the whole text is one statement


@dataclass(frozen=True)
class Classified:
    kind: Kind
    statement: str = ""  # for DATA_INSERT: the INSERT without its FORMAT clause
    fmt: str = ""
    data_offset: int = 0


_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_NOT_DATA = frozenset({b"VALUES", b"SELECT", b"WITH", b"FROM"})  # INSERT ... VALUES/SELECT/FROM INFILE: a plain query


def _skip_ignored(text: bytes, pos: int) -> int:
    """Skip whitespace and comments; returns len(text)+1 when a comment is not closed yet."""
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch in b" \t\r\n\f":
            pos += 1
        elif text.startswith(b"--", pos) or text[pos : pos + 1] == b"#":
            end = text.find(b"\n", pos)
            if end < 0:
                return n + 1
            pos = end + 1
        elif text.startswith(b"/*", pos):
            end = text.find(b"*/", pos + 2)
            if end < 0:
                return n + 1
            pos = end + 2
        else:
            break
    return pos


def _skip_quoted(text: bytes, pos: int) -> int:
    """pos is on a quote; return the index after the closing quote, or -1 when it is not closed yet."""
    quote = text[pos]
    i = pos + 1
    while i < len(text):
        c = text[i]
        if c == 0x5C:  # backslash escape
            i += 2
            continue
        if c == quote:
            if i + 1 < len(text) and text[i + 1] == quote:  # doubled quote
                i += 2
                continue
            return i + 1
        i += 1
    return -1


def classify(text: bytes, complete: bool) -> Classified:
    """Decide whether ``text`` (URL query + body so far) is an INSERT carrying data, and where the data starts.

    Only the statement head is scanned: quoted names, strings and comments are skipped, so a ``FORMAT`` inside
    them is not taken for the clause.
    """
    pos = _skip_ignored(text, 0)
    if pos > len(text):
        return Classified(Kind.QUERY if complete else Kind.NEED_MORE)
    first = _WORD.match(text, pos)
    if first is None:
        return Classified(Kind.QUERY if complete or pos < len(text) else Kind.NEED_MORE)
    if first.end() == len(text) and not complete:
        return Classified(Kind.NEED_MORE)
    if first.group().upper() != b"INSERT":
        return Classified(Kind.QUERY)
    pos = first.end()
    depth = 0
    while True:
        pos = _skip_ignored(text, pos)
        if pos >= len(text):
            return Classified(Kind.QUERY if complete else Kind.NEED_MORE)
        ch = text[pos : pos + 1]
        if ch in (b"'", b'"', b"`"):
            end = _skip_quoted(text, pos)
            if end < 0:
                return Classified(Kind.QUERY if complete else Kind.NEED_MORE)
            pos = end
            continue
        if ch == b"(":
            depth += 1
            pos += 1
            continue
        if ch == b")":
            depth -= 1
            pos += 1
            continue
        word = _WORD.match(text, pos)
        if word is None:
            pos += 1
            continue
        if word.end() == len(text) and not complete:
            return Classified(Kind.NEED_MORE)
        upper = word.group().upper()
        if depth == 0 and upper in _NOT_DATA:
            return Classified(Kind.QUERY)
        if depth == 0 and upper == b"FORMAT":
            return _format_clause(text, word.start(), word.end(), complete)
        pos = word.end()


def _format_clause(text: bytes, start: int, end: int, complete: bool) -> Classified:
    pos = _skip_ignored(text, end)
    name = _WORD.match(text, pos) if pos <= len(text) else None
    if name is None or (name.end() == len(text) and not complete):
        return Classified(Kind.QUERY if complete else Kind.NEED_MORE)
    # ClickHouse: data starts after the first newline if there is one, else after the spaces.
    data = name.end()
    while data < len(text) and text[data] in b" \t\f":
        data += 1
    if data == len(text) and not complete:
        return Classified(Kind.NEED_MORE)
    if text[data : data + 1] == b"\r":
        data += 1
    if text[data : data + 1] == b"\n":
        data += 1
    statement = text[:start].decode("utf-8").strip()
    return Classified(Kind.DATA_INSERT, statement, name.group().decode("ascii"), data)


def output_format(sql: str, default: str) -> str:
    """The format a statement's result comes in: its own FORMAT clause wins over ``default_format``."""
    match = _TRAILING_FORMAT.search(sql[-200:])
    return match.group(1) if match else default


def first_keyword(sql: str) -> str:
    pos = _skip_ignored(sql.encode("utf-8", "surrogateescape"), 0)
    match = _WORD.match(sql.encode("utf-8", "surrogateescape"), pos)
    return match.group().decode().upper() if match else ""


_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "TabSeparatedRaw": "text/tab-separated-values; charset=UTF-8",
    "TabSeparatedWithNames": "text/tab-separated-values; charset=UTF-8",
    "TabSeparatedWithNamesAndTypes": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "CSVWithNames": "text/csv; charset=UTF-8; header=present",
    "JSON": "application/json; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "Pretty": "text/plain; charset=UTF-8",
    "Values": "text/plain; charset=UTF-8",
}


def content_type(fmt: str) -> str:
    return _CONTENT_TYPES.get(fmt, "application/octet-stream")
