"""Target-aware features of a (text, entity) pair: the text with the entity's mentions marked.

- the whole text with the target's mentions replaced by a marker word and the document's other entities by
  another (word 1-2-grams + character 1-4-grams): "qentq beats ... rival qothq warns" and "qothq beats ... rival
  qentq warns" differ in the n-grams next to the markers, so the entity decides;
- the text left and right of the target's first mentions (``WINDOW`` characters each side; separate vocabularies,
  so "before the entity" and "after the entity" are different features; character n-grams cover Chinese);
- a few dense facts: mentioned at all, only inside a longer listed entity (FinNSP lists 众车 beside 众车在线),
  how often, how early, how many entities the document lists.

Mentions: Latin names match case-insensitively on word boundaries ("TSLA" matches "$TSLA", not "TSLAQ"), with a
fallback without company suffixes ("Tesco PLC" -> "Tesco"); CJK names match as substrings. Longer entities claim
their spans first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.sparse as sp

from classifier.quick import CHAR_PARAMS, WORD_PARAMS
from classifier.text import clean_text

TARGET = " qentq "
OTHER = " qothq "
WINDOW = 60
MAX_MENTIONS = 3
MAX_CHARS = 2000  # of the (masked) whole text, for the TF-IDF blocks
MAX_SEARCH = 20000  # characters searched for mentions
SUFFIXES = re.compile(
    r"[\s,.]+(plc|inc|corp|corporation|ltd|limited|group|holdings?|co|company|sa|ag|nv|se|llc|lp)\.?$", re.I
)

# The quick document model's vectorizers (classifier/quick.py), with smaller vocabularies.
DOC_WORD: dict[str, Any] = {**WORD_PARAMS, "max_features": 40_000}
DOC_CHAR: dict[str, Any] = {**CHAR_PARAMS, "max_features": 80_000}
SIDE_WORD: dict[str, Any] = {**DOC_WORD, "max_features": 20_000}
SIDE_CHAR: dict[str, Any] = {**DOC_CHAR, "ngram_range": (1, 3), "max_features": 30_000}
AUX_WORD: dict[str, Any] = {**DOC_WORD, "max_features": 50_000}
AUX_CHAR: dict[str, Any] = {**DOC_CHAR, "ngram_range": (2, 4)}
# name -> TfidfVectorizer params. doc_*: the whole text, once per document; left_* / right_*: per pair; aux_*:
# the English document-level sentiment model whose three margins are stacked as features (see linear.py).
BLOCKS: dict[str, dict[str, Any]] = {
    "doc_word": DOC_WORD,
    "doc_char": DOC_CHAR,
    "left_word": SIDE_WORD,
    "left_char": SIDE_CHAR,
    "right_word": SIDE_WORD,
    "right_char": SIDE_CHAR,
    "aux_word": AUX_WORD,
    "aux_char": AUX_CHAR,
}
DOC_BLOCKS = ("doc_word", "doc_char")
PAIR_BLOCKS = ("left_word", "left_char", "right_word", "right_char")
AUX_BLOCKS = ("aux_word", "aux_char")
DOC_CHARS = 1000  # of the whole text, for the doc blocks
N_DENSE = 6


def _is_cjk(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf" for c in text)


@lru_cache(maxsize=65536)
def _pattern(entity: str) -> re.Pattern[str] | None:
    name = entity.strip().lstrip("$")
    if not name:
        return None
    if _is_cjk(name):
        return re.compile(re.escape(name))
    return re.compile(r"(?<![A-Za-z0-9])\$?" + re.escape(name) + r"(?![A-Za-z0-9])", re.IGNORECASE)


def raw_spans(text: str, entity: str) -> list[tuple[int, int]]:
    pattern = _pattern(entity)
    if pattern is None:
        return []
    spans = [m.span() for m in pattern.finditer(text)]
    if not spans and not _is_cjk(entity):
        short = SUFFIXES.sub("", entity.strip())
        if short and short != entity.strip() and len(short) >= 3:
            spans = raw_spans(text, short)
    return spans


@dataclass(frozen=True)
class Marked:
    masked: str  # whole text, target -> TARGET, other entities -> OTHER
    left: str
    right: str
    dense: tuple[float, ...]


def mark(text: str, entity: str, others: Sequence[str]) -> Marked:
    """The pair's marked views; ``others`` are the document's other entities (the target may be among them)."""
    text = clean_text(text[:MAX_SEARCH], True)
    entity = entity.strip()
    names = sorted({entity, *(o.strip() for o in others if o and o.strip())}, key=lambda n: (-len(n), n))
    claimed: list[tuple[int, int, bool]] = []  # start, end, is_target
    target_raw = 0
    for name in names:
        spans = raw_spans(text, name)
        if name == entity:
            target_raw = len(spans)
        for s, e in spans:
            if all(e <= cs or s >= ce for cs, ce, _ in claimed):
                claimed.append((s, e, name == entity))
    claimed.sort()
    pieces: list[str] = []
    targets: list[tuple[int, int]] = []  # marker positions in the masked text
    pos = 0
    length = 0
    for s, e, is_target in claimed:
        pieces.append(text[pos:s])
        length += s - pos
        token = TARGET if is_target else OTHER
        if is_target:
            targets.append((length, length + len(token)))
        pieces.append(token)
        length += len(token)
        pos = e
    pieces.append(text[pos:])
    masked = "".join(pieces)
    lefts, rights = [], []
    for s, e in targets[:MAX_MENTIONS]:
        lefts.append(masked[max(0, s - WINDOW) : s])
        rights.append(masked[e : e + WINDOW])
    first = next((s for s, _, t in claimed if t), None)
    dense = (
        1.0 if targets else 0.0,
        1.0 if target_raw and not targets else 0.0,
        float(np.log1p(len(targets))) / 2.0,
        1.0 - (first / max(len(text), 1)) if first is not None else 0.0,
        float(np.log1p(len(names) - 1)) / 2.0,
        1.0 if entity.isupper() and len(entity) <= 5 and entity.isalpha() else 0.0,
    )
    return Marked(masked[:MAX_CHARS], " | ".join(lefts), " | ".join(rights), dense)


def vectorizers(n_rows: int, names: Sequence[str] = tuple(BLOCKS)) -> dict[str, Any]:
    """Fresh vectorizers; below 1,000 training rows (tests, tiny custom sets) every n-gram is kept (min_df 1)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    small = {"min_df": 1} if n_rows < 1000 else {}
    return {name: TfidfVectorizer(dtype=np.float32, **{**BLOCKS[name], **small}) for name in names}


def fit_block(vec: Any, texts: Sequence[str]) -> None:
    # a block with no text at all (no mention anywhere) still needs a vocabulary: one dummy term
    vec.fit(texts if any(t.strip() for t in texts) else ["qnoneq"])


def pair_view(name: str, marked: Sequence[Marked]) -> list[str]:
    return [m.left if name.startswith("left") else m.right for m in marked]


def doc_text(text: str) -> str:
    return clean_text(text[: DOC_CHARS * 4], True)[:DOC_CHARS]


def stack(vecs: dict[str, Any], docs: sp.csr_matrix, marked: Sequence[Marked], extra: np.ndarray) -> sp.csr_matrix:
    """[doc blocks (already per pair) | left/right blocks | dense facts | extra dense columns]."""
    scale = np.float32(1 / np.sqrt(len(DOC_BLOCKS) + len(PAIR_BLOCKS)))
    pairs = [vecs[name].transform(pair_view(name, marked)) * scale for name in PAIR_BLOCKS]
    dense = np.array([m.dense for m in marked], dtype=np.float32).reshape(len(marked), N_DENSE)
    return sp.hstack([docs * scale, *pairs, sp.csr_matrix(dense), sp.csr_matrix(extra)], format="csr", dtype=np.float32)
