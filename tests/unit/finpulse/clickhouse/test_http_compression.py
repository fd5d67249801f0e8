import gzip
import os
import zlib

import lz4.frame
import pytest
from backports import zstd

from finpulse.stack.clickhouse.errors import ClickHouseError
from finpulse.stack.clickhouse.http_compression import decode_all, negotiate_encoding, request_decoder, response_encoder


def _blocks(n: int) -> list[bytes]:
    return [os.urandom(16) * (1000 + i) for i in range(n)]


def _feed_in_pieces(encoding: str, body: bytes, piece: int) -> bytes:
    decoder = request_decoder(encoding)
    out = [decoder.feed(body[i : i + piece]) for i in range(0, len(body), piece)]
    out.append(decoder.finish())
    return b"".join(out)


@pytest.mark.parametrize("piece", [1, 777, 65536, 10**9])
def test_lz4_many_concatenated_frames_all_decoded(piece: int) -> None:
    blocks = _blocks(300)
    body = b"".join(lz4.frame.compress(b) for b in blocks)
    assert _feed_in_pieces("lz4", body, piece) == b"".join(blocks)


def test_lz4_frame_count_is_reported() -> None:
    decoder = request_decoder("lz4")
    decoder.feed(b"".join(lz4.frame.compress(b) for b in _blocks(5)))
    assert decoder.frames == 5


def test_zstd_and_gzip_multi_frame() -> None:
    blocks = _blocks(20)
    assert decode_all("zstd", b"".join(zstd.compress(b) for b in blocks)) == b"".join(blocks)
    assert decode_all("gzip", b"".join(gzip.compress(b) for b in blocks)) == b"".join(blocks)
    assert decode_all("deflate", zlib.compress(b"".join(blocks))) == b"".join(blocks)


def test_truncated_body_is_an_error_not_a_short_insert() -> None:
    body = lz4.frame.compress(b"x" * 100_000) + lz4.frame.compress(os.urandom(5000))
    with pytest.raises(ClickHouseError) as info:
        decode_all("lz4", body[:-10])
    assert info.value.name == "CANNOT_DECOMPRESS"
    assert "truncated" in str(info.value)


def test_garbage_and_unknown_encoding_refused() -> None:
    with pytest.raises(ClickHouseError):
        decode_all("lz4", b"not lz4 at all")
    with pytest.raises(ClickHouseError, match="Unknown Content-Encoding"):
        request_decoder("snappy")
    assert decode_all(None, b"plain") == b"plain"


@pytest.mark.parametrize(
    ("encoding", "decode"),
    [("lz4", lz4.frame.decompress), ("gzip", gzip.decompress), ("zstd", zstd.decompress), ("deflate", zlib.decompress)],
)
def test_streamed_response_encoders_round_trip(encoding: str, decode) -> None:
    encoder = response_encoder(encoding)
    parts = [os.urandom(100) * 50 for _ in range(10)]
    body = b"".join(encoder.compress(p) for p in parts) + encoder.flush()
    assert decode(body) == b"".join(parts)


def test_negotiate_encoding_follows_client_order_and_support() -> None:
    assert negotiate_encoding("lz4,zstd,br,gzip,deflate") == "lz4"
    assert negotiate_encoding("gzip, deflate") == "gzip"
    assert negotiate_encoding("identity") is None
    assert negotiate_encoding(None) is None
