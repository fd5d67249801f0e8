"""Dedupe memory and positions in SQLite: redeliveries (same id) are dropped; text and near duplicates with other ids
are kept, as copies of a story (tests/unit/ingest/test_stories.py); the window; restarts."""

from __future__ import annotations

from pathlib import Path

from finpulse.contracts import make_raw
from ingest.store import Pending, StateStore


def _doc(text: str, source: str = "s", sid: str | None = None, tickers: list[str] | None = None):
    return make_raw(source=source, kind="news", title=text, source_id=sid, tickers=tickers or [])


def _store(path: Path, window_s: float = 3600.0) -> StateStore:
    return StateStore(path / "state.sqlite", window_s=window_s)


def test_duplicates_are_remembered_across_restarts(tmp_path: Path) -> None:
    store = _store(tmp_path)
    first = _doc("Boeing shares slump after regulators ground the 737 MAX fleet again", sid="1", tickers=["BA"])
    store.commit([store.assign_story(first, Pending())], {"s": {"cursor": "c2"}}, {("t", 0): 10})
    store.close()

    store = _store(tmp_path)  # a new process
    assert store.position("s") == {"cursor": "c2"}
    assert store.watermarks("t") == {0: 10}
    assert store.duplicate_of(first, Pending()) == "id"
    # the same text from another source, and a near copy: not duplicates any more, copies of first's story
    same_text = _doc("Boeing shares slump after regulators ground the 737 MAX fleet again", "other", "9", ["BA"])
    near = _doc("Boeing shares slump after regulators ground the 737-MAX fleet, again", "x", "2", ["BA"])
    for copy in (same_text, near):
        assert store.duplicate_of(copy, Pending()) is None
        assert store.assign_story(copy, Pending()).story_id == first.id
    different = _doc("Airbus deliveries rise as supply chain problems ease in the second quarter", "x", "4", ["BA"])
    assert store.duplicate_of(different, Pending()) is None
    assert store.assign_story(different, Pending()).story_id == different.id


def test_duplicates_within_one_batch(tmp_path: Path) -> None:
    store, pending = _store(tmp_path), Pending()
    a = _doc("Tesla deliveries beat expectations in the third quarter", sid="a")
    store.hold(a, pending)
    assert store.duplicate_of(a, pending) == "id"
    b = _doc("Tesla deliveries beat expectations in the third quarter", sid="b")
    assert store.duplicate_of(b, pending) is None


def test_window_expires(tmp_path: Path) -> None:
    store = _store(tmp_path, window_s=60.0)
    doc = _doc("Nvidia unveils new data-centre chips at its annual conference", sid="n")
    store.commit([doc], {}, {}, now=1_000.0)
    assert store.duplicate_of(doc, Pending(), now=1_030.0) == "id"
    assert store.duplicate_of(doc, Pending(), now=1_100.0) is None


def test_watermarks_never_move_back(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.commit([], {}, {("t", 0): 50, ("t", 1): 5})
    store.commit([], {}, {("t", 0): 40})
    assert store.watermarks("t") == {0: 50, 1: 5}
