"""Native result blocks in the layout that a client's ``client_protocol_version`` asks for.

A real server writes Native over HTTP for the protocol revision in the ``client_protocol_version`` URL parameter
(clickhouse-go sends it on every query): from revision 1 on, each block starts with its BlockInfo, and from
revision 54454 on (DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION) each column's type is followed by a
"has custom serialization" byte. The embedded engine has no way to be told the revision and always writes
revision 0, so the endpoint rewrites each block: it walks the columns (their data sizes follow from their types)
and inserts those bytes. Column data is copied as it is.

Types whose data size cannot be walked here (Dynamic, Variant, JSON, Object, AggregateFunction states) get a clear
NOT_IMPLEMENTED error naming the type instead of a corrupt stream.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from finpulse.stack.clickhouse.errors import NOT_IMPLEMENTED, ClickHouseError

WITH_BLOCK_INFO = 1
WITH_LOW_CARDINALITY = 54405  # DBMS_MIN_REVISION_WITH_LOW_CARDINALITY_TYPE
WITH_CUSTOM_SERIALIZATION = 54454  # DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION
# BlockInfo: field 1 is_overflows = 0, field 2 bucket_num = -1, field 0 ends it (ClickHouse's BlockInfo::write).
BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"

_FIXED = {
    **dict.fromkeys(("UInt8", "Int8", "Bool", "Enum8", "Nothing"), 1),
    **dict.fromkeys(("UInt16", "Int16", "Enum16", "Date", "BFloat16"), 2),
    **dict.fromkeys(("UInt32", "Int32", "Float32", "Date32", "DateTime", "IPv4", "Decimal32", "Time"), 4),
    **dict.fromkeys(("UInt64", "Int64", "Float64", "DateTime64", "Decimal64", "Time64"), 8),
    **dict.fromkeys(("UInt128", "Int128", "UUID", "IPv6", "Decimal128"), 16),
    **dict.fromkeys(("UInt256", "Int256", "Decimal256"), 32),
}
_GEO = {
    "Point": "Tuple(Float64, Float64)",
    "Ring": "Array(Point)",
    "LineString": "Array(Point)",
    "Polygon": "Array(Ring)",
    "MultiLineString": "Array(LineString)",
    "MultiPolygon": "Array(Polygon)",
}


class Incomplete(Exception):
    """The block does not end in the bytes seen so far."""


def _varint(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise Incomplete
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ClickHouseError(NOT_IMPLEMENTED, "Malformed Native block from the engine (varint too long)")


def _need(buf: bytes | bytearray, end: int) -> int:
    if end > len(buf):
        raise Incomplete
    return end


def split_type(text: str) -> tuple[str, list[str]]:
    """``Map(String, Array(UInt8))`` -> ("Map", ["String", "Array(UInt8)"]); quotes and nesting respected."""
    text = text.strip()
    open_at = text.find("(")
    if open_at < 0 or not text.endswith(")"):
        return text, []
    name, inner = text[:open_at].strip(), text[open_at + 1 : -1]
    args, depth, start, quote, i = [], 0, 0, "", 0
    while i < len(inner):
        ch = inner[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(inner[start:i].strip())
            start = i + 1
        i += 1
    args.append(inner[start:].strip())
    return name, [a for a in args if a]


def _element_type(arg: str) -> str:
    """A Tuple element is ``Type`` or ``name Type`` (a named tuple)."""
    head, _, rest = arg.partition(" ")
    if rest and "(" not in head and not head.startswith(("'", '"')):
        return rest.strip()
    return arg.strip("`")


Skip = Callable[[bytes | bytearray, int, int], int]  # (buffer, position, rows) -> position after the data


@lru_cache(maxsize=512)
def column_walker(type_name: str) -> tuple[int, Skip]:
    """(bytes of state prefix, function skipping ``rows`` values of the bulk data) for a column type."""
    name, args = split_type(type_name)
    if name in _GEO:
        return column_walker(_GEO[name])
    if name in _FIXED:
        width = _FIXED[name]
        return 0, lambda buf, pos, rows: _need(buf, pos + width * rows)
    if name == "Decimal":
        precision = int(args[0]) if args else 10
        width = 4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32
        return 0, lambda buf, pos, rows: _need(buf, pos + width * rows)
    if name == "FixedString":
        width = int(args[0])
        return 0, lambda buf, pos, rows: _need(buf, pos + width * rows)
    if name.startswith("Interval"):
        return 0, lambda buf, pos, rows: _need(buf, pos + 8 * rows)
    if name == "String":
        return 0, _skip_strings
    if name == "Nullable":
        prefix, inner = column_walker(args[0])
        return prefix, lambda buf, pos, rows: inner(buf, _need(buf, pos + rows), rows)
    if name == "SimpleAggregateFunction":
        return column_walker(args[-1])
    if name == "Array":
        prefix, inner = column_walker(args[0])
        return prefix, lambda buf, pos, rows: _skip_array(buf, pos, rows, inner)
    if name == "Map":
        return column_walker(f"Array(Tuple({args[0]}, {args[1]}))")
    if name == "Tuple":
        walkers = [column_walker(_element_type(a)) for a in args]
        return sum(p for p, _ in walkers), lambda buf, pos, rows: _skip_tuple(buf, pos, rows, walkers)
    if name == "LowCardinality":
        dict_type = args[0]
        inner_name, inner_args = split_type(dict_type)
        if inner_name == "Nullable":  # the dictionary holds the plain type; NULL is its first key
            dict_type = inner_args[0]
        _, keys = column_walker(dict_type)
        return 8, lambda buf, pos, rows: _skip_low_cardinality(buf, pos, rows, keys)
    raise ClickHouseError(
        NOT_IMPLEMENTED,
        f"Native format for client_protocol_version > 0 is not supported by the local endpoint for type {type_name}: "
        "cast the column (e.g. toString()) or use another output format",
    )


def _skip_strings(buf: bytes | bytearray, pos: int, rows: int) -> int:
    n = len(buf)
    for _ in range(rows):
        if pos < n and buf[pos] < 0x80:  # the common case: a length under 128 in one byte
            pos += 1 + buf[pos]
        else:
            length, pos = _varint(buf, pos)
            pos += length
    return _need(buf, pos)


def _skip_array(buf: bytes | bytearray, pos: int, rows: int, inner: Skip) -> int:
    end = _need(buf, pos + 8 * rows)
    total = int.from_bytes(buf[end - 8 : end], "little") if rows else 0
    return inner(buf, end, total)


def _skip_tuple(buf: bytes | bytearray, pos: int, rows: int, walkers: list[tuple[int, Skip]]) -> int:
    for _, skip in walkers:
        pos = skip(buf, pos, rows)
    return pos


def _skip_low_cardinality(buf: bytes | bytearray, pos: int, rows: int, keys: Skip) -> int:
    # One granule per Native column: UInt64 flags (key width in the low byte, HasAdditionalKeys bit 9), then the
    # dictionary (UInt64 count + the keys), then UInt64 row count + the indexes.
    read = 0
    while read < rows:
        end = _need(buf, pos + 8)
        flags = int.from_bytes(buf[pos:end], "little")
        pos = end
        width = 1 << (flags & 0xFF)
        if flags & (1 << 9):
            end = _need(buf, pos + 8)
            count = int.from_bytes(buf[pos:end], "little")
            pos = keys(buf, end, count)
        end = _need(buf, pos + 8)
        granule = int.from_bytes(buf[pos:end], "little")
        pos = _need(buf, end + width * granule)
        if granule == 0:
            break
        read += granule
    return pos


def rewrite_block(buf: bytes | bytearray, pos: int, revision: int) -> tuple[bytes, int]:
    """One revision-0 Native block at ``pos`` in the layout of ``revision``; returns it and the position after."""
    ncols, p = _varint(buf, pos)
    nrows, p = _varint(buf, p)
    out: list[bytes | bytearray] = [BLOCK_INFO] if revision >= WITH_BLOCK_INFO else []
    out.append(buf[pos:p])
    for _ in range(ncols):
        start = p
        length, p = _varint(buf, p)
        p = _need(buf, p + length)
        length, q = _varint(buf, p)
        type_end = _need(buf, q + length)
        type_name = bytes(buf[q:type_end]).decode("utf-8", errors="replace")
        prefix, skip = column_walker(type_name)
        if revision < WITH_LOW_CARDINALITY and "LowCardinality" in type_name:
            raise ClickHouseError(
                NOT_IMPLEMENTED, f"client_protocol_version {revision} predates LowCardinality (column type {type_name})"
            )
        out.append(buf[start:type_end])
        if revision >= WITH_CUSTOM_SERIALIZATION:
            out.append(b"\x00")  # no custom (sparse) serialization: the engine writes full columns
        data_end = skip(buf, _need(buf, type_end + prefix), nrows) if nrows else type_end
        out.append(buf[type_end:data_end])
        p = data_end
    return b"".join(bytes(part) for part in out), p


class NativeRevisionWriter:
    """Feed revision-0 Native bytes in any pieces; get whole blocks back in the client's revision."""

    def __init__(self, revision: int) -> None:
        self.revision = revision
        self._pending = bytearray()
        self._retry_at = 0  # after an incomplete block, parse again only once this many bytes are pending

    def feed(self, data: bytes) -> bytes:
        self._pending += data
        if len(self._pending) < self._retry_at:
            return b""
        return self._drain()

    def _drain(self) -> bytes:
        out, pos = [], 0
        while pos < len(self._pending):
            try:
                block, pos_after = rewrite_block(self._pending, pos, self.revision)
            except Incomplete:
                break
            out.append(block)
            pos = pos_after
        del self._pending[:pos]
        # A block split over many pieces is parsed again only after the pending bytes doubled: linear overall.
        self._retry_at = 2 * len(self._pending) if self._pending else 0
        return b"".join(out)

    def finish(self) -> bytes:
        out = self._drain()
        if self._pending:
            raise ClickHouseError(NOT_IMPLEMENTED, "Native result ended inside a block: the engine's output is cut")
        return out
