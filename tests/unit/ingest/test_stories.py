"""Story clustering in ingest: copies share a story id and decaying novelty, distinct stories do not (English and
Chinese); the story memory survives restarts, a redelivery changes nothing, and the work per document is bounded."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from finpulse.contracts import RawDocument, make_raw, parse_raw
from ingest import fingerprint as fp
from ingest.metrics import IngestMetrics
from ingest.normalise import Normaliser
from ingest.pipeline import Pipeline
from ingest.producer import SendResult
from ingest.sources.generator import SCENARIOS, generate
from ingest.store import Pending, StateStore
from ingest.stories import Fingerprint, StoryConfig
from ingest.tickers import DEFAULT_COMPANIES

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _doc(title: str, source: str, *, lang: str = "en", minutes: float = 0.0, body: str = "") -> RawDocument:
    return make_raw(
        source=source,
        kind="news",
        title=title,
        body=body,
        source_id=f"{source}:{title}:{minutes}",
        lang=lang,
        published_at=T0 + timedelta(minutes=minutes),
    )


def _store(path: Path, **story: float) -> StateStore:
    return StateStore(path / "state.sqlite", window_s=72 * 3600.0, stories=StoryConfig(**story))


def _ingest(store: StateStore, docs: list[RawDocument], now: float = 1_000.0) -> list[RawDocument]:
    """What the pipeline does with one batch: drop redeliveries, assign stories, commit."""
    pending, out = Pending(), []
    for doc in docs:
        if store.duplicate_of(doc, pending, now=now):
            continue
        store.hold(doc, pending)
        out.append(store.assign_story(doc, pending))
    store.commit(out, {}, {}, now=now, pending=pending)
    return out


EN_COPIES = [
    ("Tesla shares slump 8.2% on weak outlook", "wire"),
    ("Tesla shares slump 8.2% on weak outlook (Reuters)", "reuters"),
    ("TESLA SHARES SLUMP 8.2% ON WEAK OUTLOOK - Yahoo Finance", "yahoo"),
    ("Breaking: Tesla shares slump 8.2% on weak outlook", "marketwatch"),
]
EN_OTHERS = [
    ("Tesla shares slump 3.1% on weak outlook", "wire"),  # the same wording, other figures: another event
    ("Regulators open probe into Tesla accounting, $TSLA falls", "wire"),  # another story about the company
    ("Apple raises full-year guidance as iPhone demand stays strong", "wire"),
]
ZH_COPIES = [
    ("贵州茅台(600519.SH)股价暴跌7.4%，业绩不及预期", "sina"),
    ("贵州茅台(600519.SH)股价暴跌7.4%，业绩不及预期（新浪财经）", "sina2"),
    ("【财联社】贵州茅台(600519.SH)股价暴跌7.4%, 业绩不及预期", "cls"),
]
ZH_OTHERS = [
    ("贵州茅台(600519.SH)股价暴跌2.9%，业绩不及预期", "sina"),  # other figure
    ("贵州茅台遭监管问询，股价下挫7.4%", "sina"),  # other story, same figure
    ("比亚迪宣布裁员500人，市场担忧加剧", "sina"),
]


@pytest.mark.parametrize(
    ("copies", "others", "lang"), [(EN_COPIES, EN_OTHERS, "en"), (ZH_COPIES, ZH_OTHERS, "zh")], ids=["en", "zh"]
)
def test_copies_share_a_story_and_distinct_stories_do_not(
    tmp_path: Path, copies: list[tuple[str, str]], others: list[tuple[str, str]], lang: str
) -> None:
    store = _store(tmp_path)
    docs = _ingest(store, [_doc(t, s, lang=lang, minutes=i) for i, (t, s) in enumerate(copies + others)])
    assert len(docs) == len(copies) + len(others)  # nothing dropped: copies are kept
    head = docs[0]
    assert head.story_id == head.id and head.novelty == 1.0
    assert [d.story_id for d in docs[: len(copies)]] == [head.id] * len(copies)
    rest = docs[len(copies) :]
    assert [d.story_id for d in rest] == [d.id for d in rest]  # each its own story
    assert len({head.id, *(d.id for d in rest)}) == 1 + len(others)
    assert all(d.novelty == 1.0 for d in rest)


def test_chinese_shingles_are_character_bigrams() -> None:
    toks = fp.tokens("茅台股价大跌 ETF基金 600519.SH涨3.5%")
    assert toks == ["茅", "台", "股", "价", "大", "跌", "etf", "基", "金", "600519", "sh", "涨", "3.5"]
    assert fp.figures(toks) == {"600519", "3.5"}
    assert "茅\x1f台" in fp.shingles(toks) and len(fp.shingles(toks)) == len(toks) - 1


def test_languages_never_share_a_story(tmp_path: Path) -> None:
    store = _store(tmp_path)
    en, und = _ingest(store, [_doc(EN_COPIES[0][0], "a"), _doc(EN_COPIES[0][0], "b", lang="und")])
    assert (en.story_id, und.story_id) == (en.id, und.id)


def test_novelty_decays_per_copy(tmp_path: Path) -> None:
    store = _store(tmp_path)
    docs = _ingest(store, [_doc(EN_COPIES[0][0] + f" ({outlet})", outlet) for outlet in "ABCDE"])
    assert [d.novelty for d in docs] == pytest.approx([1.0, 0.75, 0.5625, 0.421875, 0.31640625])
    halves = _ingest(_store(tmp_path / "b", decay=0.5), [_doc(ZH_COPIES[0][0] + f"（{o}）", o) for o in "甲乙丙"])
    assert [d.novelty for d in halves] == [1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match="decay"):
        StoryConfig(decay=0.0)
    with pytest.raises(ValueError, match="similarity"):
        StoryConfig(similarity=1.5)


def test_story_state_survives_a_restart_and_batches(tmp_path: Path) -> None:
    store = _store(tmp_path)
    first = _ingest(store, [_doc(t, s) for t, s in EN_COPIES[:2]])
    store.close()
    store = _store(tmp_path)  # a new process on the same state file
    later = _ingest(store, [_doc(EN_COPIES[2][0], "yahoo", minutes=30)])[0]
    assert later.story_id == first[0].id and later.novelty == pytest.approx(0.5625)  # the third document
    store.close()
    store = _store(tmp_path)
    assert _ingest(store, [_doc(EN_COPIES[3][0], "mw", minutes=60)])[0].novelty == pytest.approx(0.421875)


def test_redelivery_is_dropped_and_keeps_its_story(tmp_path: Path) -> None:
    store = _store(tmp_path)
    head, copy = _ingest(store, [_doc(t, s) for t, s in EN_COPIES[:2]])
    again = _ingest(store, [_doc(*EN_COPIES[1]), _doc(*EN_COPIES[0])])  # the same source items (same ids) again
    assert again == []
    nxt = _ingest(store, [_doc(EN_COPIES[2][0], "yahoo", minutes=5)])[0]
    assert nxt.novelty == pytest.approx(0.5625)  # the redeliveries counted no copy

    # Recovery commits documents it read back from Kafka: their story fields are kept as they are, and one that
    # was committed already counts once.
    from_kafka = parse_raw(copy.to_json())
    assert (from_kafka.story_id, from_kafka.novelty) == (head.id, 0.75)
    store.commit([from_kafka], {}, {}, now=1_001.0)
    assert _ingest(store, [_doc(EN_COPIES[3][0], "mw", minutes=6)])[0].novelty == pytest.approx(0.421875)


def test_recovered_copy_before_its_head_still_counts(tmp_path: Path) -> None:
    lost = _store(tmp_path / "lost")  # the batch that was acknowledged but never committed
    head, copy = _ingest(lost, [_doc(t, s) for t, s in EN_COPIES[:2]])
    store = _store(tmp_path)
    store.commit([copy, head], {}, {}, now=1_000.0)  # recovery: partition order, the copy first
    assert _ingest(store, [_doc(EN_COPIES[2][0], "yahoo", minutes=1)])[0].novelty == pytest.approx(0.5625)


def test_window_limits_a_story(tmp_path: Path) -> None:
    store = _store(tmp_path, window_s=3600.0)
    head = _ingest(store, [_doc(*EN_COPIES[0])])[0]
    inside = _ingest(store, [_doc(EN_COPIES[1][0], "reuters", minutes=59)])[0]
    outside = _ingest(store, [_doc(EN_COPIES[2][0], "yahoo", minutes=61)])[0]
    assert inside.story_id == head.id and outside.story_id == outside.id
    # and the state forgets heads older than the window (wall clock), so it stays bounded
    assert store.story_count() == 2
    _ingest(store, [_doc("Nvidia unveils new data-centre chips at its annual conference", "x")], now=1_000.0 + 7200)
    assert store.story_count() == 1


def test_bounded_work_when_many_stories_share_band_keys(tmp_path: Path) -> None:
    store = _store(tmp_path)
    # 300 stories with one wording and different figures: every one shares band keys with the next document
    template = "Bank stocks fall {n} points as bond yields climb to a new high"
    _ingest(store, [_doc(template.format(n=n), "wire", minutes=n / 100) for n in range(300)])
    assert store.story_count() == 300
    probe = Fingerprint.of(_doc(template.format(n=999), "wire", minutes=2))
    assert probe is not None
    heads = store._heads(probe)
    assert 0 < len(heads) <= store.stories.candidates_per_band * fp.NUM_BANDS
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    assert store.assign_story(_doc(template.format(n=999), "wire", minutes=2), Pending()).story_id is not None
    store._db.set_trace_callback(None)
    assert len(statements) == 2  # one band lookup and one read of the candidate heads, however many stories exist
    plan = " ".join(r[-1] for r in store._db.execute("EXPLAIN QUERY PLAN " + statements[0].split(" UNION ")[0]))
    assert "USING PRIMARY KEY" in plan or "USING INDEX" in plan, plan  # an index range, not a scan


def test_signatures_estimate_jaccard() -> None:
    rng = random.Random(3)
    words = [f"w{i}" for i in range(400)]
    a = set(rng.sample(words, 200))
    b = set(list(a)[:150]) | set(rng.sample(words, 50))
    true = len(a & b) / len(a | b)
    est = fp.similarity(fp.minhash(a), fp.minhash(b))
    assert abs(est - true) < 0.2
    assert fp.similarity(fp.minhash(a), fp.minhash(set(a))) == 1.0
    assert fp.minhash(a).dtype == np.uint32


class _Producer:
    def __init__(self) -> None:
        self.sent: list[RawDocument] = []

    def send(self, docs: list[RawDocument]) -> SendResult:
        self.sent.extend(docs)
        return SendResult(watermarks={("t", 0): len(self.sent)})


def test_generator_default_scenario_gives_one_story_id_per_story(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite", window_s=3600.0)
    producer = _Producer()
    normaliser = Normaliser(
        companies=DEFAULT_COMPANIES, max_title_chars=500, max_body_chars=500, worker_id="w-test", author_key=b"k"
    )
    pipeline = Pipeline(
        store=store,
        producer=producer,  # type: ignore[arg-type]
        normaliser=normaliser,
        metrics=IngestMetrics(),
        batch_size=200,
    )
    pipeline.start()
    try:
        sc, n = SCENARIOS["default"], 0
        for second in range(110, 230, 4):  # the first negative burst (120 s .. 210 s) and a little around it
            items = []
            for _ in range(20):
                item, _, _ = generate(sc, random.Random(f"7:{n}"), float(second))
                item.source_id = f"7:{n}"
                items.append(item)
                n += 1
            pipeline.process("generator", "news", items)
    finally:
        pipeline.stop()
        store.close()
    ids_of: dict[str, set[str]] = defaultdict(set)
    for doc in producer.sent:
        if "gen_story" in doc.meta:
            ids_of[doc.meta["gen_story"]].add(doc.story_id or "")
    assert len(ids_of) >= 16  # most of the burst's 32 distinct stories appear in 90 s
    assert all(len(ids) == 1 for ids in ids_of.values()), ids_of  # one story id per story
    assert len({next(iter(ids)) for ids in ids_of.values()}) == len(ids_of)  # and distinct stories differ
    copies = [d for d in producer.sent if "gen_story" in d.meta]
    assert len(copies) > 40 and min(d.novelty or 1.0 for d in copies) < 0.5  # syndicated many times: decayed
