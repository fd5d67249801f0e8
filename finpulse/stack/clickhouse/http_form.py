"""``multipart/form-data`` request bodies, read as ClickHouse's HTTP handler reads them.

clickhouse-connect moves the query and its ``param_*`` values into a multipart form once the bound parameters pass
~4 KB of URL (``use_form_encoding``), to stay under proxies' URL limits. ClickHouse (``DynamicQueryHandler::getQuery``)
then takes the statement from the ``query`` fields (URL ``query`` first, then the form's, joined as they come) and the
query parameters from the ``param_*`` fields; the body is not SQL. Settings are applied from the URL before the form
is read, so a form field named ``readonly`` or ``max_result_rows`` is no setting at all: it is ignored, as there.
A part with a file name is an external data table (``<name>_structure`` / ``_types`` / ``_format``); the local
endpoint has no temporary tables to put it in, so that is refused with 400, naming the part.

Only ``multipart/form-data`` is a form: ``curl -d 'SELECT 1'`` sends ``application/x-www-form-urlencoded`` with SQL
in the body, and ClickHouse reads that body as SQL too.

The parser works on the whole (size-bounded) body in memory: every ``find`` starts where the previous one stopped,
so time is linear in the body length whatever the content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from finpulse.stack.clickhouse.errors import BAD_ARGUMENTS, ClickHouseError

MAX_FIELDS = 100_000  # far above any query's parameters (ClickHouse: http_max_fields); bounds the dict, not time
MAX_PART_HEADER_BYTES = 16 << 10
_BOUNDARY_CHARS = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{1,70}$")  # RFC 2046 bchars


class FormError(ClickHouseError):
    def __init__(self, reason: str) -> None:
        super().__init__(BAD_ARGUMENTS, f"Malformed multipart/form-data body: {reason}")


@dataclass
class Form:
    query: str = ""  # the ``query`` fields joined in order
    params: dict[str, str] = field(default_factory=dict)  # ``param_<name>`` -> value, the first occurrence wins
    ignored: list[str] = field(default_factory=list)  # other field names (not settings, as in ClickHouse)


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_form(content_type: str | None) -> bool:
    return media_type(content_type) == "multipart/form-data"


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="a"; filename="b"`` -> ('form-data', {'name': 'a', 'filename': 'b'}), in one pass.
    Quoted values take backslash escapes (RFC 2616) and urllib3's HTML5 ``%22`` for a quote."""
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            out: list[str] = []
            i += 1
            quote = -2
            while True:  # str.find to the closing quote; a backslash escapes the next character
                if quote < i and quote != -1:  # each search starts past the last one: linear
                    quote = rest.find('"', i)
                slash = rest.find("\\", i, quote if quote >= 0 else n)
                if slash >= 0:
                    out.append(rest[i:slash] + rest[slash + 1 : slash + 2])
                    i = slash + 2
                    continue
                if quote < 0:
                    raise FormError(f"unterminated quoted parameter {key!r} in {value[:80]!r}")
                out.append(rest[i:quote])
                i = quote + 1
                break
            params[key] = "".join(out).replace("%22", '"')
        else:
            end = rest.find(";", i)
            end = n if end < 0 else end
            params[key] = rest[i:end].strip()
            i = end
    return head.strip().lower(), params


def boundary_of(content_type: str) -> bytes:
    _, params = _header_params(content_type)
    boundary = params.get("boundary", "")
    if not boundary:
        raise FormError("the Content-Type has no boundary parameter")
    if not _BOUNDARY_CHARS.match(boundary) or boundary.endswith(" "):
        raise FormError(f"invalid boundary {boundary[:80]!r} (1-70 characters of RFC 2046)")
    return boundary.encode("ascii")


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormError(f"{what} is not valid UTF-8 (byte {exc.start})") from None


def parse_form(body: bytes, content_type: str) -> Form:
    """The fields of a multipart body; FormError (400) with the reason when it is malformed."""
    boundary = boundary_of(content_type)
    delimiter = b"--" + boundary
    form = Form()
    queries: list[str] = []
    # The first delimiter may follow a preamble; every later one follows CRLF.
    if body.startswith(delimiter):
        pos = len(delimiter)
    else:
        first = body.find(b"\r\n" + delimiter)
        if first < 0:
            raise FormError("the body does not contain the boundary given in the Content-Type")
        pos = first + 2 + len(delimiter)
    fields = 0
    while True:
        if body.startswith(b"--", pos):
            break  # the close delimiter; an epilogue after it is ignored
        while pos < len(body) and body[pos] in b" \t":  # transport padding
            pos += 1
        if not body.startswith(b"\r\n", pos):
            raise FormError("a boundary line must end with CRLF (or -- after the last part); body truncated?")
        pos += 2
        if body.startswith(b"\r\n", pos):  # a part without headers
            end_headers = pos - 2
        else:
            end_headers = body.find(b"\r\n\r\n", pos, pos + MAX_PART_HEADER_BYTES + 4)
            if end_headers < 0:
                raise FormError(f"part {fields + 1}: headers not terminated within {MAX_PART_HEADER_BYTES} bytes")
        headers = _part_headers(body[pos:end_headers] if end_headers >= pos else b"", fields + 1)
        start = end_headers + 4
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            raise FormError(f"part {fields + 1} has no closing boundary; body truncated?")
        fields += 1
        if fields > MAX_FIELDS:
            raise FormError(f"more than {MAX_FIELDS} fields")
        _add_field(form, queries, headers, body, start, end, fields)
        pos = end + 2 + len(delimiter)
    form.query = "".join(queries)
    return form


def _part_headers(raw: bytes, number: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in _decode(raw, f"part {number}: the headers").split("\r\n"):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise FormError(f"part {number}: malformed header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


def _add_field(
    form: Form, queries: list[str], headers: dict[str, str], body: bytes, start: int, end: int, n: int
) -> None:
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise FormError(f"part {n} has no Content-Disposition header")
    kind, params = _header_params(disposition)
    name = params.get("name")
    if kind != "form-data" or name is None:
        raise FormError(f"part {n}: Content-Disposition must be form-data with a name (got {disposition[:80]!r})")
    if "filename" in params or "filename*" in params:  # a file part (RFC 7578 / RFC 5987 names)
        raise ClickHouseError(
            BAD_ARGUMENTS,
            f"External data tables are not supported by the local endpoint (multipart file part {name!r}): "
            "pass the values as a query parameter, e.g. {ids:Array(String)}, or insert them into a table first",
        )
    if name == "query":
        queries.append(body[start:end].decode("utf-8", errors="surrogateescape"))
    elif name.startswith("param_") and len(name) > len("param_"):
        form.params.setdefault(name[len("param_") :], _decode(body[start:end], f"field {name!r}"))
    else:
        form.ignored.append(name)
