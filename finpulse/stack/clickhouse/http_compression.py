"""HTTP body compression: streaming decoders for request bodies, streaming encoders for responses.

Every decoder accepts CONCATENATED frames/members: clickhouse-connect compresses each insert block as its own lz4
(or zstd) frame, so a 1M-row insert is many frames back to back. A decoder that stops at the first frame's end
silently drops every later block (a prototype lost all rows after 65,536 that way); here the data after a frame's
end starts a new frame, and a body that ends inside a frame is an error, never a short insert.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Protocol

import lz4.frame

from finpulse.stack.clickhouse.errors import CANNOT_DECOMPRESS, ClickHouseError

try:  # clickhouse-connect's own zstd dependency; zstandard is the fallback
    from backports import zstd as _zstd
except ImportError:  # pragma: no cover - depends on the environment
    _zstd = None  # type: ignore[assignment]  # the module, or None when absent

try:
    import brotli as _brotli
except ImportError:  # optional: 'br' is advertised only when installed
    _brotli = None  # type: ignore[assignment]


class _FrameDecoder(Protocol):
    """One frame's decompressor, as zlib's and zstd's decompress objects are."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, /) -> bytes: ...


class Decoder(Protocol):
    """A request body's decoder: ``feed`` returns what is complete, ``finish`` refuses a truncated body."""

    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class MultiFrameDecoder:
    """Decode a stream of concatenated frames of one codec, fed in arbitrary pieces."""

    def __init__(self, encoding: str, new_frame: Callable[[], _FrameDecoder]) -> None:
        self.encoding = encoding
        self._new_frame = new_frame
        self._frame: _FrameDecoder | None = None
        self.frames = 0

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            if self._frame is None:
                self._frame = self._new_frame()
                self.frames += 1
            try:
                out.append(self._frame.decompress(data))
            except Exception as exc:
                raise ClickHouseError(
                    CANNOT_DECOMPRESS, f"Cannot decode {self.encoding} request body (frame {self.frames}): {exc}"
                ) from exc
            if not self._frame.eof:
                break
            data = self._frame.unused_data
            self._frame = None
        return b"".join(out)

    def finish(self) -> bytes:
        if self._frame is not None:
            raise ClickHouseError(
                CANNOT_DECOMPRESS,
                f"{self.encoding} request body ends inside frame {self.frames}: it was truncated in transit",
            )
        return b""


class _Lz4Frame:
    """lz4.frame's decompressor with the eof/unused_data interface of zlib's."""

    def __init__(self) -> None:
        self._d = lz4.frame.LZ4FrameDecompressor()

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data or b""

    def decompress(self, data: bytes) -> bytes:
        return self._d.decompress(data)


class _BrotliStream:
    """Brotli has no frames to concatenate; eof is never reported before the stream ends."""

    eof = False
    unused_data = b""

    def __init__(self) -> None:
        self._d = _brotli.Decompressor()

    def decompress(self, data: bytes) -> bytes:
        return self._d.process(data)


class IdentityDecoder:
    encoding = "identity"
    frames = 0

    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class BrotliDecoder(IdentityDecoder):
    encoding = "br"

    def __init__(self) -> None:
        self._d = _BrotliStream()

    def feed(self, data: bytes) -> bytes:
        try:
            return self._d.decompress(data)
        except Exception as exc:
            raise ClickHouseError(CANNOT_DECOMPRESS, f"Cannot decode br request body: {exc}") from exc


def _zstd_frame() -> _FrameDecoder:
    if _zstd is not None:
        return _zstd.ZstdDecompressor()
    import zstandard  # pragma: no cover - fallback

    return zstandard.ZstdDecompressor().decompressobj()  # pragma: no cover


_FRAME_FACTORIES: dict[str, Callable[[], _FrameDecoder]] = {
    "lz4": _Lz4Frame,
    "zstd": _zstd_frame,
    "gzip": lambda: zlib.decompressobj(wbits=16 + zlib.MAX_WBITS),
    "x-gzip": lambda: zlib.decompressobj(wbits=16 + zlib.MAX_WBITS),
    "deflate": lambda: zlib.decompressobj(wbits=zlib.MAX_WBITS),
}


def request_decoder(content_encoding: str | None) -> MultiFrameDecoder | IdentityDecoder:
    """The decoder for a request's Content-Encoding; unknown encodings are refused, never passed through raw."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity", "none"):
        return IdentityDecoder()
    if encoding == "br" and _brotli is not None:
        return BrotliDecoder()
    factory = _FRAME_FACTORIES.get(encoding)
    if factory is None:
        raise ClickHouseError(
            CANNOT_DECOMPRESS, f"Unknown Content-Encoding {encoding!r}; use lz4, zstd, gzip or deflate"
        )
    return MultiFrameDecoder(encoding, factory)


def decode_all(content_encoding: str | None, data: bytes) -> bytes:
    decoder = request_decoder(content_encoding)
    out = decoder.feed(data)
    return out + decoder.finish()


# --- responses ----------------------------------------------------------------------------------------------------


class Encoder(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Lz4Encoder:
    """One lz4 frame across the whole streamed response."""

    def __init__(self) -> None:
        self._c = lz4.frame.LZ4FrameCompressor()
        self._header = self._c.begin()

    def compress(self, data: bytes) -> bytes:
        out = self._header + self._c.compress(data)
        self._header = b""
        return out

    def flush(self) -> bytes:
        return self._header + self._c.flush()


class _ZstdEncoder:
    def __init__(self) -> None:
        self._c = _zstd.ZstdCompressor()

    def compress(self, data: bytes) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


class _BrotliEncoder:
    def __init__(self) -> None:
        self._c = _brotli.Compressor()

    def compress(self, data: bytes) -> bytes:
        return self._c.process(data)

    def flush(self) -> bytes:
        return self._c.finish()


_ENCODERS: dict[str, Callable[[], Encoder]] = {
    "gzip": lambda: zlib.compressobj(3, zlib.DEFLATED, 16 + zlib.MAX_WBITS),
    "deflate": lambda: zlib.compressobj(3, zlib.DEFLATED, zlib.MAX_WBITS),
    "lz4": _Lz4Encoder,
}
if _zstd is not None:
    _ENCODERS["zstd"] = _ZstdEncoder
if _brotli is not None:
    _ENCODERS["br"] = _BrotliEncoder


def negotiate_encoding(accept_encoding: str | None) -> str | None:
    """First encoding in the client's Accept-Encoding that we can produce (ClickHouse picks by the client's order)."""
    for part in (accept_encoding or "").split(","):
        name = part.split(";", 1)[0].strip().lower()
        if ";q=0" in part.replace(" ", "") and not part.replace(" ", "").startswith(f"{name};q=0."):
            continue
        if name in _ENCODERS:
            return name
    return None


def response_encoder(encoding: str) -> Encoder:
    return _ENCODERS[encoding]()
