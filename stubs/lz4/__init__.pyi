"""lz4 (python-lz4): LZ4 block and frame compression."""
