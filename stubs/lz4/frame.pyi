"""lz4.frame: the LZ4 frame format (HTTP Content-Encoding: lz4)."""

from typing_extensions import Buffer

class LZ4FrameCompressor:
    def __init__(
        self,
        block_size: int = ...,
        block_linked: bool = True,
        compression_level: int = ...,
        content_checksum: bool = False,
        block_checksum: bool = False,
        auto_flush: bool = False,
    ) -> None: ...
    def begin(self, source_size: int = 0) -> bytes: ...
    def compress(self, data: Buffer) -> bytes: ...
    def flush(self) -> bytes: ...

class LZ4FrameDecompressor:
    eof: bool
    unused_data: bytes | None  # None until a frame's end was reached
    needs_input: bool
    def __init__(self) -> None: ...
    def decompress(self, data: Buffer, max_length: int = -1) -> bytes: ...
