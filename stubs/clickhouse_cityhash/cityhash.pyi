from typing_extensions import Buffer

def CityHash128(data: Buffer | str) -> int: ...  # first << 64 | second
