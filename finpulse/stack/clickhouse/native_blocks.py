"""ClickHouse's native block compression over HTTP: ``compress=1`` (responses) and ``decompress=1`` (request bodies).

The Java client uses it by default, the Go client when LZ4 is chosen. The body is a sequence of blocks:

    checksum   16 bytes  CityHash128 (v1.0.2) of everything after it in the block (two little-endian uint64)
    method      1 byte   0x82 LZ4, 0x90 ZSTD, 0x02 none
    compressed  4 bytes  little-endian size of method + sizes + payload (payload + 9)
    raw         4 bytes  little-endian size of the payload once decompressed
    payload

CityHash128 comes from ``clickhouse-cityhash`` (CityHash 1.0.2, the version ClickHouse uses; later CityHash
releases hash differently), LZ4 from ``lz4.block``, ZSTD from ``zstandard``.
"""

from __future__ import annotations

import struct

import lz4.block
import zstandard
from clickhouse_cityhash.cityhash import CityHash128

from finpulse.stack.clickhouse.errors import (
    CANNOT_DECOMPRESS,
    CHECKSUM_DOESNT_MATCH,
    UNKNOWN_COMPRESSION_METHOD,
    ClickHouseError,
)
from finpulse.stack.clickhouse.http_compression import Decoder, Encoder

NONE, LZ4, ZSTD = 0x02, 0x82, 0x90
METHODS = {"none": NONE, "lz4": LZ4, "zstd": ZSTD}
CHECKSUM_SIZE = 16
HEADER_SIZE = 9
BLOCK_BYTES = 1 << 20  # ClickHouse compresses its output in blocks of (at most) 1 MiB
MAX_BLOCK_BYTES = 256 << 20  # refuse a header that announces more: a block is held whole while it is checked
_HEADER = struct.Struct("<BII")


def checksum(block_without_checksum: bytes) -> bytes:
    # The binding returns CityHash's (first, second) pair as first << 64 | second; ClickHouse writes first, then
    # second, each little-endian.
    value = CityHash128(block_without_checksum)
    return (value >> 64).to_bytes(8, "little") + (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")


def compress_block(data: bytes, method: int = LZ4, level: int = 3) -> bytes:
    if method == LZ4:
        payload = lz4.block.compress(data, store_size=False)
    elif method == ZSTD:
        payload = zstandard.ZstdCompressor(level=level).compress(data)
    elif method == NONE:
        payload = data
    else:
        raise ValueError(f"unknown compression method 0x{method:02x}")
    body = _HEADER.pack(method, len(payload) + HEADER_SIZE, len(data)) + payload
    return checksum(body) + body


def compress(data: bytes, method: int = LZ4) -> bytes:
    """``data`` as blocks of at most BLOCK_BYTES each (nothing for empty data)."""
    return b"".join(compress_block(data[i : i + BLOCK_BYTES], method) for i in range(0, len(data), BLOCK_BYTES))


class BlockDecoder:
    """Decode a stream of compressed blocks fed in arbitrary pieces; same interface as the HTTP decoders
    (``feed`` returns what is complete, ``finish`` refuses a body that ends inside a block)."""

    encoding = "ClickHouse native block"

    def __init__(self, verify: bool = True) -> None:
        self.verify = verify
        self._buf = bytearray()
        self.blocks = 0

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= CHECKSUM_SIZE + HEADER_SIZE:
            method, size, raw_size = _HEADER.unpack_from(buf, pos + CHECKSUM_SIZE)
            if method not in (NONE, LZ4, ZSTD):
                raise ClickHouseError(
                    UNKNOWN_COMPRESSION_METHOD,
                    f"Unknown compression method 0x{method:02x} in block {self.blocks + 1} of the request body "
                    "(decompress=1 expects ClickHouse's native blocks: 0x82 LZ4, 0x90 ZSTD, 0x02 none)",
                )
            if size < HEADER_SIZE or size > MAX_BLOCK_BYTES or raw_size > MAX_BLOCK_BYTES:
                raise ClickHouseError(
                    CANNOT_DECOMPRESS,
                    f"Block {self.blocks + 1} of the request body announces a size of {size} compressed / "
                    f"{raw_size} raw bytes (at most {MAX_BLOCK_BYTES})",
                )
            end = pos + CHECKSUM_SIZE + size
            if len(buf) < end:
                break
            body = bytes(buf[pos + CHECKSUM_SIZE : end])
            self.blocks += 1
            if self.verify and checksum(body) != bytes(buf[pos : pos + CHECKSUM_SIZE]):
                raise ClickHouseError(
                    CHECKSUM_DOESNT_MATCH,
                    f"Checksum doesn't match in block {self.blocks} of the request body: corrupted data "
                    "(CityHash128 of the compressed block differs)",
                )
            out.append(self._decompress(method, body[HEADER_SIZE:], raw_size))
            pos = end
        del buf[:pos]
        return b"".join(out)

    def _decompress(self, method: int, payload: bytes, raw_size: int) -> bytes:
        try:
            if method == LZ4:
                data = lz4.block.decompress(payload, uncompressed_size=raw_size)
            elif method == ZSTD:
                data = zstandard.ZstdDecompressor().decompress(payload, max_output_size=raw_size)
            else:
                data = payload
        except Exception as exc:
            raise ClickHouseError(CANNOT_DECOMPRESS, f"Cannot decompress block {self.blocks}: {exc}") from exc
        if len(data) != raw_size:
            raise ClickHouseError(
                CANNOT_DECOMPRESS, f"Block {self.blocks} decompressed to {len(data)} bytes, its header says {raw_size}"
            )
        return data

    def finish(self) -> bytes:
        if self._buf:
            raise ClickHouseError(
                CANNOT_DECOMPRESS,
                f"Request body ends inside a compressed block ({len(self._buf)} bytes left after block "
                f"{self.blocks}): it was truncated in transit",
            )
        return b""


class BlockEncoder:
    """Response encoder: each piece of output becomes one or more blocks as it is produced (streaming)."""

    def __init__(self, method: int = LZ4) -> None:
        self.method = method

    def compress(self, data: bytes) -> bytes:
        return compress(data, self.method)

    def flush(self) -> bytes:
        return b""


class ChainedDecoder:
    """Native blocks inside an HTTP Content-Encoding: decode the outer layer first."""

    def __init__(self, outer: Decoder, inner: BlockDecoder) -> None:
        self.outer, self.inner = outer, inner
        self.encoding = inner.encoding

    def feed(self, data: bytes) -> bytes:
        return self.inner.feed(self.outer.feed(data))

    def finish(self) -> bytes:
        tail = self.inner.feed(self.outer.finish())
        return tail + self.inner.finish()


class ChainedEncoder:
    """Native blocks, then HTTP compression around them (compress=1 with enable_http_compression=1)."""

    def __init__(self, inner: BlockEncoder, outer: Encoder) -> None:
        self.inner, self.outer = inner, outer

    def compress(self, data: bytes) -> bytes:
        return self.outer.compress(self.inner.compress(data))

    def flush(self) -> bytes:
        return self.outer.compress(self.inner.flush()) + self.outer.flush()
