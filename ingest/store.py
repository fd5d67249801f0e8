"""The worker's durable state in one SQLite file: source positions, the dedupe memory (ids), the story memory
(ingest/stories.py) and the topic watermarks.

Everything about one produced batch is written in ONE transaction after the broker acknowledged it, so a restart
sees either all of it or none of it; the watermarks tell recovery where to look for acknowledged messages whose
transaction never committed (see recovery.py). The story memory is derived from the committed documents' own
story_id (a head opens a story, a copy counts one more), so documents recovery finds on the topic update it the
same way as a normal commit does.

Dedupe drops only redeliveries (an id seen within the window). Near-duplicates and exact-text copies with other ids
used to be dropped here too; they are kept now, as copies of a story (why: ingest/stories.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from finpulse.contracts import RawDocument
from ingest.stories import Fingerprint, Head, PendingStories, StoryConfig, best_head

_SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (source TEXT PRIMARY KEY, value TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS seen_ids (id TEXT PRIMARY KEY, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_ids_ts ON seen_ids (ts);
-- text and near-duplicate dedupe before stories (copies are kept now): their memory is dropped
DROP TABLE IF EXISTS seen_text;
DROP TABLE IF EXISTS near;
-- a story's first document: what a later copy is compared with
CREATE TABLE IF NOT EXISTS stories (story_id TEXT PRIMARY KEY, lang TEXT NOT NULL, signature BLOB NOT NULL,
                                    figures TEXT NOT NULL, size INTEGER NOT NULL, published REAL NOT NULL,
                                    copies INTEGER NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS stories_ts ON stories (ts);
-- its LSH band keys (language in the key): candidates by index lookup
CREATE TABLE IF NOT EXISTS story_keys (key INTEGER NOT NULL, published REAL NOT NULL, story_id TEXT NOT NULL,
                                       ts REAL NOT NULL, PRIMARY KEY (key, published, story_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS story_keys_ts ON story_keys (ts);
CREATE TABLE IF NOT EXISTS watermarks (topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset INTEGER NOT NULL,
                                       PRIMARY KEY (topic, part));
"""
_PRUNE_EVERY_S = 60.0


@dataclass
class Pending:
    """Documents accepted into the current batch, so redeliveries within one batch are caught and copies find the
    stories opened earlier in the batch."""

    ids: set[str] = field(default_factory=set)
    stories: PendingStories = field(default_factory=PendingStories)


class StateStore:
    def __init__(self, path: Path, *, window_s: float, stories: StoryConfig | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.window_s = window_s
        self.stories = stories or StoryConfig()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._last_prune = 0.0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- positions -------------------------------------------------------------------------------------------
    def position(self, source: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM positions WHERE source = ?", (source,)).fetchone()
        return json.loads(row[0]) if row else None

    # --- dedupe ----------------------------------------------------------------------------------------------
    def duplicate_of(self, doc: RawDocument, pending: Pending, *, now: float | None = None) -> str | None:
        """'id' when the document was seen within the window (or earlier in this batch): a redelivery. A copy with
        another id is no duplicate; it joins its story (assign_story)."""
        if doc.id in pending.ids:
            return "id"
        since = (now or time.time()) - self.window_s
        with self._lock:
            row = self._db.execute("SELECT 1 FROM seen_ids WHERE id = ? AND ts >= ?", (doc.id, since)).fetchone()
        return "id" if row else None

    def hold(self, doc: RawDocument, pending: Pending) -> None:
        pending.ids.add(doc.id)

    # --- stories ---------------------------------------------------------------------------------------------
    def assign_story(self, doc: RawDocument, pending: Pending) -> RawDocument:
        """The document with its story_id and novelty: a copy of the most similar story (its first document) in
        this batch or the state, else the first document of a new story."""
        cfg, stories = self.stories, pending.stories
        print_ = Fingerprint.of(doc)
        stories.prints[doc.id] = print_
        head = None
        if print_ is not None:
            head = best_head(print_, stories.candidates(print_) + self._heads(print_), cfg)
        if head is None:
            if print_ is not None:
                stories.open(doc.id, print_)
            return doc.model_copy(update={"story_id": doc.id, "novelty": 1.0})
        stories.copies[head.story_id] += 1
        copy = head.copies + stories.copies[head.story_id]
        return doc.model_copy(update={"story_id": head.story_id, "novelty": cfg.novelty(copy)})

    def _heads(self, doc: Fingerprint) -> list[Head]:
        """Committed heads that share a band key with ``doc`` within the window: at most candidates_per_band per
        key, the latest first, so a key many stories share cannot make one lookup expensive."""
        cfg = self.stories
        low, high = doc.published - cfg.window_s, doc.published + cfg.window_s
        one = (
            "SELECT story_id FROM (SELECT story_id FROM story_keys WHERE key = ? AND published BETWEEN ? AND ? "
            "ORDER BY published DESC LIMIT ?)"
        )
        params: list[Any] = []
        for key in doc.keys:
            params += [key, low, high, cfg.candidates_per_band]
        with self._lock:
            ids = [r[0] for r in self._db.execute(" UNION ".join([one] * len(doc.keys)), params).fetchall()]
            if not ids:
                return []
            rows = self._db.execute(
                "SELECT story_id, lang, signature, figures, size, published, copies FROM stories "
                f"WHERE story_id IN ({','.join('?' * len(ids))})",
                ids,
            ).fetchall()
        return [
            Head(sid, Fingerprint(lang, np.frombuffer(sig, dtype=np.uint32), frozenset(json.loads(figs)), size, pub), n)
            for sid, lang, sig, figs, size, pub, n in rows
        ]

    # --- the one commit --------------------------------------------------------------------------------------
    def commit(
        self,
        docs: Iterable[RawDocument],
        positions: dict[str, Any],
        watermarks: dict[tuple[str, int], int],
        now: float | None = None,
        pending: Pending | None = None,
    ) -> None:
        """Remember the produced documents (their ids; the stories they open; one more copy for the stories they
        join), advance source positions and watermarks: all or nothing. ``pending`` (the batch's) saves computing
        fingerprints again; without it (recovery) they are computed from the documents."""
        now = now or time.time()
        docs = list(docs)
        prints = pending.stories.prints if pending is not None else {}
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                known = self._known_ids(docs)
                new = [doc for doc in docs if doc.id not in known]  # a document counts once in its story
                heads, copies = [], Counter()
                for doc in new:
                    if doc.story_id == doc.id:
                        print_ = prints[doc.id] if doc.id in prints else Fingerprint.of(doc)
                        if print_ is not None:
                            heads.append((doc.id, print_))
                    elif doc.story_id is not None:
                        copies[doc.story_id] += 1
                db.executemany("INSERT OR REPLACE INTO seen_ids VALUES (?, ?)", [(doc.id, now) for doc in docs])
                # heads before copies: recovery may find a story's copy on the topic before its first document
                db.executemany(
                    "INSERT OR IGNORE INTO stories VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                    [
                        (sid, p.lang, p.signature.tobytes(), json.dumps(sorted(p.figures)), p.size, p.published, now)
                        for sid, p in heads
                    ],
                )
                db.executemany(
                    "INSERT OR IGNORE INTO story_keys VALUES (?, ?, ?, ?)",
                    [(key, p.published, sid, now) for sid, p in heads for key in p.keys],
                )
                db.executemany(
                    "UPDATE stories SET copies = copies + ? WHERE story_id = ?", [(n, s) for s, n in copies.items()]
                )
                db.executemany(
                    "INSERT OR REPLACE INTO positions VALUES (?, ?, ?)",
                    [(src, json.dumps(value), now) for src, value in positions.items()],
                )
                db.executemany(
                    "INSERT INTO watermarks VALUES (?, ?, ?) ON CONFLICT (topic, part) DO UPDATE "
                    "SET next_offset = max(next_offset, excluded.next_offset)",
                    [(topic, part, off) for (topic, part), off in watermarks.items()],
                )
                if now - self._last_prune > _PRUNE_EVERY_S:
                    db.execute("DELETE FROM seen_ids WHERE ts < ?", (now - self.window_s,))
                    for table in ("stories", "story_keys"):
                        db.execute(f"DELETE FROM {table} WHERE ts < ?", (now - self.stories.window_s,))
                    self._last_prune = now
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _known_ids(self, docs: list[RawDocument]) -> set[str]:
        known: set[str] = set()
        ids = [doc.id for doc in docs]
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = self._db.execute(f"SELECT id FROM seen_ids WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            known.update(r[0] for r in rows)
        return known

    def story_count(self) -> int:
        """Stories in the state (heads within the window): for tests and /status."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM stories").fetchone()[0])

    def watermarks(self, topic: str) -> dict[int, int]:
        with self._lock:
            rows = self._db.execute("SELECT part, next_offset FROM watermarks WHERE topic = ?", (topic,)).fetchall()
        return dict(rows)

    def set_watermarks(self, topic: str, offsets: dict[int, int]) -> None:
        self.commit([], {}, {(topic, p): o for p, o in offsets.items()})
