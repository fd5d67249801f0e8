"""lz4.block: raw LZ4 blocks (ClickHouse's native block compression)."""

from typing_extensions import Buffer

def compress(
    source: Buffer | str,
    mode: str = "default",
    acceleration: int = 1,
    compression: int = 0,
    store_size: bool = True,
) -> bytes: ...
def decompress(source: Buffer | str, uncompressed_size: int = -1) -> bytes: ...
