"""Native blocks rewritten for a client's protocol revision (BlockInfo, then a custom-serialization byte after each
column's type). Each compound column is followed by a sentinel column: a wrong data size puts its bytes elsewhere."""

from __future__ import annotations

import struct

import pytest

from finpulse.stack.clickhouse.errors import NOT_IMPLEMENTED, ClickHouseError
from finpulse.stack.clickhouse.native_revision import BLOCK_INFO, NativeRevisionWriter, rewrite_block, split_type

REVISION = 54_460  # what clickhouse-go v2.51 sends


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return varint(len(raw)) + raw


def u64(*values: int) -> bytes:
    return b"".join(struct.pack("<Q", v) for v in values)


def block(columns: list[tuple[str, bytes]], rows: int, revision: int = 0) -> bytes:
    """A Native block as a server writes it for ``revision``: (type, data) per column."""
    out = BLOCK_INFO if revision else b""
    out += varint(len(columns)) + varint(rows)
    for i, (type_name, data) in enumerate(columns):
        out += string(f"c{i}") + string(type_name) + (b"\x00" if revision >= 54454 else b"") + (data if rows else b"")
    return out


SENTINEL = ("UInt8", bytes([0xAB, 0xCD, 0xEF]))  # three rows

COLUMNS = {
    "String": b"".join(string(s) for s in ("a", "", "x" * 300)),  # a two-byte length too
    "Nullable(String)": b"\x00\x01\x00" + string("a") + string("") + string("c"),
    "Array(UInt32)": u64(2, 2, 5) + struct.pack("<5I", 1, 2, 3, 4, 5),
    "Map(String, UInt64)": u64(1, 1, 3) + string("k") + string("x") + string("y") + u64(7, 8, 9),
    "Tuple(a UInt8, b String)": b"\x01\x02\x03" + string("p") + string("q") + string("r"),
    "DateTime64(3, 'UTC')": u64(1, 2, 3),
    "Enum8('a' = 1, 'b,c' = 2)": b"\x01\x02\x01",
    "FixedString(2)": b"abcdef",
    "Decimal(20, 2)": b"\x00" * 48,
    # keys version, then flags (UInt8 indexes, has additional keys), 3 keys (NULL's default first), 3 indexes
    "LowCardinality(Nullable(String))": u64(1)
    + u64(1 << 9)
    + u64(3)
    + string("")
    + string("x")
    + string("y")
    + u64(3)
    + b"\x00\x01\x02",
    "Array(LowCardinality(String))": u64(1) + u64(1, 2, 2) + u64(1 << 9) + u64(1) + string("z") + u64(2) + b"\x00\x00",
}


@pytest.mark.parametrize("type_name", list(COLUMNS))
def test_each_type_is_walked_to_its_end(type_name: str) -> None:
    columns = [(type_name, COLUMNS[type_name]), SENTINEL]
    original = block(columns, 3)
    rewritten, end = rewrite_block(original, 0, REVISION)
    assert end == len(original)
    assert rewritten == block(columns, 3, REVISION)


def test_revision_one_gets_block_info_but_no_serialization_byte() -> None:
    columns = [("String", COLUMNS["String"]), SENTINEL]
    rewritten, _ = rewrite_block(block(columns, 3), 0, 1)
    assert rewritten == BLOCK_INFO + block(columns, 3)


def test_pieces_of_any_size_give_the_same_blocks() -> None:
    blocks = [block([(t, COLUMNS[t]), SENTINEL], 3) for t in COLUMNS] + [block([("String", b"")], 0)]
    stream = b"".join(blocks)
    whole = NativeRevisionWriter(REVISION)
    expected = whole.feed(stream) + whole.finish()
    assert expected == b"".join(rewrite_block(b, 0, REVISION)[0] for b in blocks)
    piecewise = NativeRevisionWriter(REVISION)
    out = b"".join(piecewise.feed(stream[i : i + 1]) for i in range(len(stream))) + piecewise.finish()
    assert out == expected


def test_a_cut_stream_and_an_unwalkable_type_are_clear_errors() -> None:
    writer = NativeRevisionWriter(REVISION)
    full = block([("String", COLUMNS["String"])], 3)
    assert writer.feed(full[:-5]) == b""
    with pytest.raises(ClickHouseError, match="ended inside a block"):
        writer.finish()
    with pytest.raises(ClickHouseError) as refused:
        rewrite_block(block([("Dynamic", b"\x00" * 8)], 1), 0, REVISION)
    assert refused.value.code == NOT_IMPLEMENTED and "Dynamic" in str(refused.value)


def test_split_type_respects_quotes_and_nesting() -> None:
    assert split_type("Map(String, Array(Tuple(a UInt8, b String)))") == (
        "Map",
        ["String", "Array(Tuple(a UInt8, b String))"],
    )
    assert split_type("Enum8('a,b' = 1, 'c)' = 2)") == ("Enum8", ["'a,b' = 1", "'c)' = 2"])
    assert split_type("UInt64") == ("UInt64", [])
