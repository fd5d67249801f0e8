"""Fingerprints for dedupe: an exact key of the normalised text (and tickers), and a 64-bit SimHash of its
character 4-grams for near duplicates (a headline re-posted with a suffix, a changed quote, other spacing)."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from finpulse.contracts import RawDocument, normalise_text

NEAR_MIN_CHARS = 24  # shorter texts share too many shingles by chance
_SHINGLE = 4
_MAX_CHARS = 4_000
_NOT_WORD = re.compile(r"[\W_]+")


def ticker_scope(doc: RawDocument) -> str:
    # The same headline about another company is another data point (e.g. "Stocks That Hit 52-Week Highs").
    return ",".join(sorted(doc.tickers))


def text_key(doc: RawDocument) -> str:
    return hashlib.sha256(f"{ticker_scope(doc)}\x1f{normalise_text(doc.text)}".encode()).hexdigest()[:32]


def simhash(doc: RawDocument) -> int | None:
    # Letters and digits only: punctuation and spacing edits do not make another document.
    text = _NOT_WORD.sub("", normalise_text(doc.text)[:_MAX_CHARS])
    if len(text) < NEAR_MIN_CHARS:
        return None
    grams = {text[i : i + _SHINGLE] for i in range(len(text) - _SHINGLE + 1)}
    hashes = np.frombuffer(
        b"".join(hashlib.blake2b(g.encode(), digest_size=8).digest() for g in grams), dtype=np.uint64
    )
    bits = np.unpackbits(hashes.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")  # (n, 64)
    votes = bits.sum(axis=0, dtype=np.int64) * 2 - len(grams)
    value = 0
    for i, vote in enumerate(votes):
        if vote > 0:
            value |= 1 << i
    return value


def bands(value: int, max_distance: int) -> list[int]:
    """max_distance + 1 bands: two hashes within max_distance bits share at least one whole band (pigeonhole),
    so a lookup reads only the rows that share a band."""
    n = max_distance + 1
    width = 64 // n
    mask = (1 << width) - 1
    return [(value >> (width * i)) & mask for i in range(n)]


def distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()
