"""The worker's durable state in one SQLite file: source positions, the dedupe memory and the topic watermarks.

Everything about one produced batch is written in ONE transaction after the broker acknowledged it, so a restart
sees either all of it or none of it; the watermarks tell recovery where to look for acknowledged messages whose
transaction never committed (see recovery.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finpulse.contracts import RawDocument
from ingest import fingerprint as fp

_SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (source TEXT PRIMARY KEY, value TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS seen_ids (id TEXT PRIMARY KEY, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS seen_text (key TEXT PRIMARY KEY, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS near (band INTEGER NOT NULL, val INTEGER NOT NULL, hash INTEGER NOT NULL,
                                 scope TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS near_band ON near (band, val, scope);
CREATE INDEX IF NOT EXISTS seen_ids_ts ON seen_ids (ts);
CREATE INDEX IF NOT EXISTS seen_text_ts ON seen_text (ts);
CREATE INDEX IF NOT EXISTS near_ts ON near (ts);
CREATE TABLE IF NOT EXISTS watermarks (topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset INTEGER NOT NULL,
                                       PRIMARY KEY (topic, part));
"""
_PRUNE_EVERY_S = 60.0


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value  # SQLite integers are signed 64-bit


@dataclass
class Pending:
    """Fingerprints of documents accepted into the current batch, so duplicates within one batch are caught."""

    ids: set[str] = field(default_factory=set)
    texts: set[str] = field(default_factory=set)
    near: list[tuple[int, str]] = field(default_factory=list)


class StateStore:
    def __init__(self, path: Path, *, window_s: float, near_bits: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.window_s = window_s
        self.near_bits = near_bits
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
    def duplicate_of(
        self, doc: RawDocument, pending: Pending, *, content: bool = True, now: float | None = None
    ) -> str | None:
        """'id', 'text' or 'near' when the document was seen within the window (or earlier in this batch).
        content=False checks the id only (generated text repeats by design)."""
        since = (now or time.time()) - self.window_s
        if doc.id in pending.ids:
            return "id"
        if not content:
            with self._lock:
                row = self._db.execute("SELECT 1 FROM seen_ids WHERE id = ? AND ts >= ?", (doc.id, since)).fetchone()
            return "id" if row else None
        key = fp.text_key(doc)
        if key in pending.texts:
            return "text"
        sh = fp.simhash(doc) if self.near_bits else None
        scope = fp.ticker_scope(doc)
        if sh is not None and any(s == scope and fp.distance(sh, h) <= self.near_bits for h, s in pending.near):
            return "near"
        with self._lock:
            if self._db.execute("SELECT 1 FROM seen_ids WHERE id = ? AND ts >= ?", (doc.id, since)).fetchone():
                return "id"
            if self._db.execute("SELECT 1 FROM seen_text WHERE key = ? AND ts >= ?", (key, since)).fetchone():
                return "text"
            if sh is not None:
                for band, val in enumerate(fp.bands(sh, self.near_bits)):
                    rows = self._db.execute(
                        "SELECT hash FROM near WHERE band = ? AND val = ? AND scope = ? AND ts >= ?",
                        (band, val, scope, since),
                    ).fetchall()
                    if any(fp.distance(sh, h & 0xFFFFFFFFFFFFFFFF) <= self.near_bits for (h,) in rows):
                        return "near"
        return None

    def hold(self, doc: RawDocument, pending: Pending, *, content: bool = True) -> None:
        pending.ids.add(doc.id)
        if not content:
            return
        pending.texts.add(fp.text_key(doc))
        sh = fp.simhash(doc) if self.near_bits else None
        if sh is not None:
            pending.near.append((sh, fp.ticker_scope(doc)))

    # --- the one commit --------------------------------------------------------------------------------------
    def commit(
        self,
        docs: Iterable[RawDocument],
        positions: dict[str, Any],
        watermarks: dict[tuple[str, int], int],
        now: float | None = None,
        content_docs: Iterable[RawDocument] | None = None,
    ) -> None:
        """Remember the produced documents (ids of all, text fingerprints of ``content_docs``, default all),
        advance source positions and watermarks: all or nothing."""
        now = now or time.time()
        docs = list(docs)
        ids = [(doc.id, now) for doc in docs]
        texts, near = [], []
        for doc in docs if content_docs is None else content_docs:
            texts.append((fp.text_key(doc), now))
            sh = fp.simhash(doc) if self.near_bits else None
            if sh is not None:
                scope = fp.ticker_scope(doc)
                near.extend(
                    (band, val, _signed(sh), scope, now) for band, val in enumerate(fp.bands(sh, self.near_bits))
                )
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR REPLACE INTO seen_ids VALUES (?, ?)", ids)
                db.executemany("INSERT OR REPLACE INTO seen_text VALUES (?, ?)", texts)
                db.executemany("INSERT INTO near VALUES (?, ?, ?, ?, ?)", near)
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
                    cutoff = now - self.window_s
                    for table in ("seen_ids", "seen_text", "near"):
                        db.execute(f"DELETE FROM {table} WHERE ts < ?", (cutoff,))
                    self._last_prune = now
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def watermarks(self, topic: str) -> dict[int, int]:
        with self._lock:
            rows = self._db.execute("SELECT part, next_offset FROM watermarks WHERE topic = ?", (topic,)).fetchall()
        return dict(rows)

    def set_watermarks(self, topic: str, offsets: dict[int, int]) -> None:
        self.commit([], {}, {(topic, p): o for p, o in offsets.items()})
