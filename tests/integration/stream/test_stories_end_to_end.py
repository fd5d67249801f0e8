"""Stories end to end: the ingest pipeline labels syndicated copies with their story's id and a decaying novelty, the
stream stores both as they are, and ClickHouse counts the story once (documents and the per-minute rollup)."""

from __future__ import annotations

import pytest

from finpulse.kafka_clients import Connection
from ingest.item import Item
from ingest.metrics import IngestMetrics
from ingest.normalise import Normaliser
from ingest.pipeline import Pipeline
from ingest.producer import RawProducer
from ingest.store import StateStore
from ingest.tickers import DEFAULT_COMPANIES
from tests.integration.stream.conftest import StreamEnv

pytestmark = pytest.mark.integration

ITEMS = [
    Item(title="Tesla shares slump 8.2% on weak outlook", source_id="en-1"),
    Item(title="Tesla shares slump 8.2% on weak outlook (Reuters)", source_id="en-2"),
    Item(title="Tesla shares slump 8.2% on weak outlook - Bloomberg", source_id="en-3"),
    Item(title="Apple raises full-year guidance as iPhone demand stays strong", source_id="en-4"),
    Item(title="贵州茅台股价暴跌7.4%，业绩不及预期", source_id="zh-1"),
    Item(title="贵州茅台股价暴跌7.4%，业绩不及预期（新浪财经）", source_id="zh-2"),
    Item(title="比亚迪宣布裁员500人，市场担忧加剧", source_id="zh-3"),
]


def test_copies_reach_clickhouse_with_their_story_and_novelty(stream_env: StreamEnv, tmp_path) -> None:
    settings = stream_env.settings
    stream_env.worker().wait_ready(timeout=300)  # it creates the test's topics (its model loads slowly on 2 cores)
    store = StateStore(tmp_path / "ingest" / "state.sqlite", window_s=3600.0)
    producer = RawProducer(Connection.of(settings), settings.topic_raw, "none", "finpulse-ingest-stories-test")
    normaliser = Normaliser(
        companies=DEFAULT_COMPANIES, max_title_chars=500, max_body_chars=500, worker_id="w-stories", author_key=b"k"
    )
    pipeline = Pipeline(store=store, producer=producer, normaliser=normaliser, metrics=IngestMetrics(), batch_size=50)
    pipeline.start()
    try:
        results = pipeline.submit("wire", "news", ITEMS).result(timeout=60)
        again = pipeline.submit("wire", "news", ITEMS[:2]).result(timeout=60)  # redelivered by the source: dropped
    finally:
        pipeline.stop()
        producer.close()
        store.close()
    assert [r.status for r in results] == ["accepted"] * len(ITEMS)
    assert [r.status for r in again] == ["duplicate"] * 2
    ids = [r.id for r in results]

    stream_env.wait_distinct("wire", len(ITEMS), timeout=90)
    rows = {
        doc_id: (story, round(novelty, 4), lang)
        for doc_id, story, novelty, lang in stream_env.query(
            "SELECT id, story_id, novelty, lang FROM documents_latest WHERE source = 'wire'"
        )
    }
    en, zh = ids[0], ids[4]
    assert rows == {
        ids[0]: (en, 1.0, "en"),
        ids[1]: (en, 0.75, "en"),
        ids[2]: (en, 0.5625, "en"),
        ids[3]: (ids[3], 1.0, "en"),
        ids[4]: (zh, 1.0, "zh"),
        ids[5]: (zh, 0.75, "zh"),
        ids[6]: (ids[6], 1.0, "zh"),
    }
    # the rollup the rules read: 7 documents, 4 stories
    counts = stream_env.query(
        "SELECT count(), uniqExact(story_id) FROM documents_minutely_latest FINAL WHERE id IN {ids:Array(String)}",
        ids=ids,
    )[0]
    assert counts == (7, 4)
