"""Stories (issue 12): syndicated copies and near-duplicates of one story share a story id; novelty decays per copy.

Why ingest keeps copies now (it used to drop near-duplicates and exact-text duplicates with other ids): a wire story
picked up by twenty outlets is twenty documents, each with its own source, url and time. Dropping all but one hid
that reach from the feed and the drill-down; counting all twenty let one story fire a surge on its own. So every
copy is kept and labelled with the story it belongs to, and rules count distinct stories by default. Only a true
redelivery (the same id: the same source item fetched again) is dropped (ingest/store.py). A redelivered or
relabeled document keeps its story: the story id and novelty travel in the Kafka message and the stream stores
them as they are.

A document's story is the one whose first document (its head) it resembles, within ``window_s`` of published time
and in the same language; else it opens a new story (story_id = its own id, novelty 1). The k-th copy of a story
gets novelty ``decay ** k`` (RavenPack-style: 1 -> 0.75 -> 0.5625 ...). Resemblance: the MinHash estimate of the
Jaccard similarity of the texts' shingles (ingest/fingerprint.py) is at least ``similarity``, and their figures do
not conflict ("shares slump 5.3%" and "shares slump 8.1%" are two events with one wording). Only heads are matched:
a chain of small edits cannot drift a story into another one.

Work per document is bounded: candidates come from LSH band lookups (at most ``candidates_per_band`` per band), and
the state (heads and their band keys) is pruned once it is older than the window.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from finpulse.contracts import RawDocument
from ingest import fingerprint as fp

SHORT_SHINGLES = 3  # below this many shingles, only the same wording is the same story (few shingles match by chance)


@dataclass(frozen=True)
class StoryConfig:
    window_s: float = 24 * 3600.0
    decay: float = 0.75
    similarity: float = 0.5
    candidates_per_band: int = 4

    def __post_init__(self) -> None:
        if not self.window_s > 0:
            raise ValueError(f"story window must be > 0 s, got {self.window_s}")
        if not 0 < self.decay <= 1:
            raise ValueError(f"novelty decay must be in (0, 1], got {self.decay}")
        if not 0 < self.similarity <= 1:
            raise ValueError(f"story similarity must be in (0, 1], got {self.similarity}")

    def novelty(self, copy: int) -> float:
        """Novelty of the copy-th copy (0 = the story's first document)."""
        return self.decay**copy


@dataclass(frozen=True)
class Fingerprint:
    lang: str
    signature: np.ndarray
    figures: frozenset[str]
    size: int  # shingles
    published: float  # epoch seconds
    keys: tuple[int, ...] = ()  # LSH band keys (empty for a head read back from the state: not needed there)

    @classmethod
    def of(cls, doc: RawDocument) -> Fingerprint | None:
        """None for a text with no words or characters to compare (only symbols): it is a story of its own."""
        toks = fp.tokens(doc.text)
        grams = fp.shingles(toks)
        if not grams:
            return None
        signature = fp.minhash(grams)
        keys = tuple(fp.band_keys(signature, doc.lang))
        return cls(doc.lang, signature, fp.figures(toks), len(grams), doc.published_at.timestamp(), keys)


@dataclass(frozen=True)
class Head:
    """The first document of a story, as the state keeps it."""

    story_id: str
    fingerprint: Fingerprint
    copies: int  # documents after the head so far


def resemblance(doc: Fingerprint, head: Fingerprint, cfg: StoryConfig) -> float | None:
    """The estimated similarity when ``doc`` is a copy of the story ``head`` opened, else None."""
    if doc.lang != head.lang or abs(doc.published - head.published) > cfg.window_s:
        return None
    if doc.figures and head.figures and not (doc.figures <= head.figures or head.figures <= doc.figures):
        return None
    sim = fp.similarity(doc.signature, head.signature)
    needed = 1.0 if min(doc.size, head.size) < SHORT_SHINGLES else cfg.similarity
    return sim if sim >= needed else None


@dataclass
class PendingStories:
    """Stories opened and copies counted in the current batch, not yet committed (checked before the state)."""

    heads: dict[str, Head] = field(default_factory=dict)
    by_key: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    copies: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    prints: dict[str, Fingerprint | None] = field(default_factory=dict)  # by document id, reused at commit

    def candidates(self, doc: Fingerprint) -> list[Head]:
        ids = dict.fromkeys(sid for key in doc.keys for sid in self.by_key.get(key, ()))
        return [self.heads[sid] for sid in ids]

    def open(self, story_id: str, doc: Fingerprint) -> None:
        self.heads[story_id] = Head(story_id, doc, 0)
        for key in doc.keys:
            self.by_key[key].append(story_id)


def best_head(doc: Fingerprint, candidates: list[Head], cfg: StoryConfig) -> Head | None:
    """The most similar matching head; on a tie the earliest story."""
    best: tuple[float, float, Head] | None = None
    for head in candidates:
        sim = resemblance(doc, head.fingerprint, cfg)
        if sim is not None and (best is None or (sim, -head.fingerprint.published) > best[:2]):
            best = (sim, -head.fingerprint.published, head)
    return best[2] if best else None
