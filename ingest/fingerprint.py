"""Text fingerprints for story clustering (ingest/stories.py): shingles of the normalised text, their MinHash
signature, the LSH band keys that find candidates, and the figures a story states.

Shingles are token bigrams. Tokens are words and whole numbers ("5.3", "1,200") in space-separated scripts, and
single characters in CJK scripts: Chinese and Japanese have no spaces, so their bigrams are character bigrams
(the usual shingle for CJK near-duplicate detection), and a Chinese headline with a Latin ticker in it mixes both.
"""

from __future__ import annotations

import hashlib
import itertools
import re

import numpy as np

from finpulse.contracts import normalise_text

MAX_CHARS = 4_000  # of the normalised text: a copy differs from its story in the first few thousand chars already
NUM_HASHES = 60  # MinHash signature length
BAND_ROWS = 3  # 20 bands of 3 rows: a pair with Jaccard 0.5 is a candidate with probability 0.93, 0.6 with 0.99
NUM_BANDS = NUM_HASHES // BAND_ROWS

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]|\d+(?:[.,]\d+)*|(?:(?![{_CJK}])[^\W\d_])+")
_NUMBER = re.compile(r"\d")

# Fixed seeds: signatures must be the same in every process and after every restart (they are stored).
_rng = np.random.default_rng(20261202)
_XOR = _rng.integers(0, 2**63, NUM_HASHES, dtype=np.uint64, endpoint=True)[:, None]
_MUL = (_rng.integers(0, 2**63, NUM_HASHES, dtype=np.uint64, endpoint=True) | np.uint64(1))[:, None]  # odd
_MAX = np.iinfo(np.uint32).max


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(normalise_text(text)[:MAX_CHARS])


def figures(toks: list[str]) -> frozenset[str]:
    """The numbers a text states: two texts with conflicting figures are two events with one wording."""
    return frozenset(t for t in toks if _NUMBER.match(t))


def shingles(toks: list[str]) -> set[str]:
    if len(toks) == 1:
        return {toks[0]}
    return {f"{a}\x1f{b}" for a, b in itertools.pairwise(toks)}


def minhash(grams: set[str]) -> np.ndarray:
    """(NUM_HASHES,) uint32: per hash function, the least hash of any shingle. The share of equal positions in two
    signatures estimates the Jaccard similarity of the two shingle sets."""
    if not grams:
        return np.full(NUM_HASHES, _MAX, dtype=np.uint32)
    base = np.frombuffer(b"".join(hashlib.blake2b(g.encode(), digest_size=8).digest() for g in grams), dtype=np.uint64)
    with np.errstate(over="ignore"):  # multiplication modulo 2**64 is the point
        mixed = (base[None, :] ^ _XOR) * _MUL
    # The high 32 bits (the best mixed ones) are enough: two different shingle minima collide with p = 2**-32, and
    # the stored signature is half the size.
    return (mixed.min(axis=1) >> np.uint64(32)).astype(np.uint32)


def band_keys(signature: np.ndarray, scope: str) -> list[int]:
    """One signed 64-bit key per band (scope and band number included): two signatures of one scope that agree on
    all rows of any band share that key, so candidates are found by index lookups, never by a scan."""
    rows = signature.reshape(NUM_BANDS, BAND_ROWS)
    prefix = scope.encode()[:32] + b"\x1f"
    keys = []
    for band, row in enumerate(rows):
        digest = hashlib.blake2b(prefix + band.to_bytes(2, "little") + row.tobytes(), digest_size=8).digest()
        keys.append(int.from_bytes(digest, "little", signed=True))  # SQLite integers are signed 64-bit
    return keys


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of the shingle sets behind two signatures."""
    return float(np.count_nonzero(a == b)) / NUM_HASHES
