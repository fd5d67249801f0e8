import os
import struct

import pytest

from finpulse.stack.clickhouse import native_blocks as nb
from finpulse.stack.clickhouse.errors import ClickHouseError


@pytest.mark.parametrize("method", [nb.LZ4, nb.ZSTD, nb.NONE])
def test_round_trip_in_any_pieces(method: int) -> None:
    data = b"".join(f"{i}\tdoc-{i}\n".encode() for i in range(300_000)) + os.urandom(10_000)
    body = nb.compress(data, method)
    assert body[16] == method and len(body) > 16 + 9
    decoder = nb.BlockDecoder()
    out = b"".join(decoder.feed(body[i : i + 777]) for i in range(0, len(body), 777)) + decoder.finish()
    assert out == data and decoder.blocks == -(-len(data) // nb.BLOCK_BYTES)


def test_block_layout_is_clickhouses() -> None:
    block = nb.compress_block(b"hello hello hello hello", nb.LZ4)
    method, size, raw = struct.unpack_from("<BII", block, 16)
    assert (method, raw) == (0x82, 23) and size == len(block) - 16
    # CityHash128 v1.0.2 as ClickHouse writes it (its `first` word, then `second`, little-endian): the byte order
    # the Java client accepted (tests/integration/security/test_endpoint_java_client.py); b"abc" pinned here.
    assert nb.checksum(b"abc").hex() == "fe48775795f10f907e0db2556317a913"


def _refusal(body: bytes) -> ClickHouseError:
    decoder = nb.BlockDecoder()
    with pytest.raises(ClickHouseError) as info:
        decoder.feed(body)
        decoder.finish()
    assert 400 <= info.value.http_status < 500, info.value.name
    return info.value


def test_bad_checksum_is_refused_with_its_reason() -> None:
    block = bytearray(nb.compress_block(b"x" * 1000, nb.LZ4))
    block[-1] ^= 0xFF
    err = _refusal(bytes(block))
    assert err.name == "CHECKSUM_DOESNT_MATCH" and "block 1" in err.message
    # http_native_compression_disable_checksumming_on_decompress=1: no check, the payload is decoded as it is
    assert len(nb.BlockDecoder(verify=False).feed(bytes(block))) == 1000


def test_unknown_method_truncation_and_absurd_sizes_are_refused() -> None:
    block = bytearray(nb.compress_block(b"abc", nb.NONE))
    block[16] = 0x42
    assert _refusal(bytes(block)).name == "UNKNOWN_COMPRESSION_METHOD"
    assert _refusal(nb.compress_block(b"y" * 5000)[:-3]).name == "CANNOT_DECOMPRESS"
    huge = b"\0" * 16 + struct.pack("<BII", nb.LZ4, 9, 1 << 31)
    assert _refusal(huge).name == "CANNOT_DECOMPRESS"
