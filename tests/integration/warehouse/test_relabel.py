"""Relabeling on the real local endpoint: a relabeled document counts once, under its new label, in every query the
dashboard and the alert engine read; a second run changes nothing; migration 0020 upgrades a data dir that has 0002's
rollup."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.stack import local_only
from warehouse import queries
from warehouse.client import create_client
from warehouse.migrate import MIGRATIONS_DIR, migrate
from warehouse.queries import alerts as q
from warehouse.queries.trends import _epoch

from .conftest import Endpoint, start

pytestmark = [pytest.mark.integration, local_only]

OLD, NEW = "old-model-1", "fake-v2"
NOW = datetime.now(UTC).replace(microsecond=0)


def _doc(
    doc_id: str,
    *,
    hours_ago: float,
    title: str,
    lang: str = "en",
    topic: str | None = "earnings",
    sentiment: str | None = "negative",
    tickers: list[str] | None = None,
) -> dict[str, Any]:
    published = NOW - timedelta(hours=hours_ago)
    labeled = topic is not None
    return {
        "id": doc_id,
        "source": "wire" if lang == "en" else "sina",
        "kind": "news",
        "lang": lang,
        "title": title,
        "body": f"body of {doc_id}",
        "url": f"https://example.com/{doc_id}",
        "author": "reporter",
        "published_at": published,
        "ingested_at": published + timedelta(milliseconds=300),
        "tickers": tickers or [],
        "entities": ["Entity " + doc_id],
        "meta": json.dumps({"feed": doc_id}),
        "topic": topic,
        "topic_score": 0.7 if labeled else None,
        "sentiment": sentiment,
        "sentiment_score": -0.6 if labeled else None,
        "topic_probs": {topic: 0.7} if labeled else {},
        "sentiment_probs": {"negative": 0.8, "neutral": 0.1, "positive": 0.1} if labeled else {},
        "model_version": OLD,
        "classified_at": published + timedelta(seconds=1),
        "schema_version": 1,
    }


DOCS = [
    # the one whose labels change: regulation/negative -> macro/positive
    _doc(
        "flip",
        hours_ago=2,
        title="flip: regulator clears AAPL and MSFT deal",
        topic="regulation",
        tickers=["AAPL", "MSFT"],
    ),
    _doc("same", hours_ago=2, title="AAPL misses estimates", tickers=["AAPL"]),  # same labels, new model version
    _doc("dup", hours_ago=2.5, title="Another earnings miss"),  # delivered twice by the stream
    _doc("zh", hours_ago=1.5, title="市场 大跌", lang="zh", topic=None, sentiment=None),  # the old model had no zh
    _doc("de", hours_ago=1.5, title="Markt fällt", lang="de", topic=None, sentiment=None),  # unsupported by both
    _doc("old", hours_ago=30, title="AAPL warns", tickers=["AAPL"]),  # outside the 24 h window: not relabeled
]


@dataclass(frozen=True)
class Pred:
    topic: str
    sentiment: str

    def as_fields(self) -> dict[str, Any]:
        score = 0.9 if self.sentiment == "positive" else -0.9
        return {
            "topic": self.topic,
            "topic_score": 0.95,
            "sentiment": self.sentiment,
            "sentiment_score": score,
            "topic_probs": {self.topic: 0.95},
            "sentiment_probs": {self.sentiment: 0.9, "neutral": 0.1},
        }


@dataclass
class FakeEngine:
    """The predict API of classifier.engine.ClassifierEngine, deterministic and instant."""

    model_version: str = NEW
    texts: list[str] = field(default_factory=list)

    def supports_language(self, lang: str | None) -> bool:
        return lang in ("en", "zh")

    def predict(self, texts: list[str]) -> list[Pred]:
        self.texts.extend(texts)
        if any("boom" in t for t in texts):
            raise ValueError("model exploded")
        return [
            Pred("macro", "positive")
            if t.startswith("flip")
            else Pred("markets" if "市场" in t else "earnings", "negative")
            for t in texts
        ]


def _insert(client: Any, docs: list[dict[str, Any]]) -> None:
    names = list(docs[0])
    client.insert("documents", [[d[n] for n in names] for d in docs], column_names=names)


@pytest.fixture(scope="module")
def db(endpoint: Endpoint) -> Any:
    settings = endpoint.settings.model_copy(update={"clickhouse_database": "relabel_test", "relabel_batch_size": 2})
    migrate(settings)
    client = create_client(settings)
    _insert(client, DOCS)
    _insert(client, [DOCS[2]])  # at-least-once: the same document again
    yield settings, client
    client.close()


def _col(df: Any, name: str) -> list[Any]:
    return [] if df.empty else list(df[name])  # a backend may answer no rows with no columns either


def _by(df: Any, key: str, *cols: str) -> dict[str, tuple]:
    """Columns summed per key (over time buckets: the 48 h may straddle two)."""
    if df.empty:
        return {}
    sums = df.groupby(key)[list(cols)].sum()
    return {str(k): tuple(int(v) for v in row) for k, row in sums.iterrows()}


def _none(value: Any) -> Any:
    return None if pd.isna(value) else value


def observed(client: Any) -> dict[str, Any]:
    """Everything the dashboard pages and the alert engine read, for the seeded 48 h (one bucket)."""
    end = _epoch(None)
    start = end - 48 * 3600
    bucket = 48 * 60
    out: dict[str, Any] = {
        "volume": _by(
            queries.volume_sentiment(client, hours=48, bucket_minutes=bucket), "topic", "docs", "negative", "positive"
        ),
        "heatmap": _by(queries.topic_heatmap(client, hours=48, bucket_minutes=bucket), "topic", "docs", "negative"),
        "window": _by(
            queries.window_vs_baseline(client, window_minutes=180, baseline_hours=45), "topic", "window_docs"
        ),
        "window_neg": {
            r["topic"]: round(float(r["window_negative_share"]), 3)
            for _, r in queries.window_vs_baseline(client, window_minutes=180, baseline_hours=45).iterrows()
        },
        "tickers": {
            r["ticker"]: (int(r["window_docs"]), round(float(r["window_negative_share"]), 3))
            for _, r in queries.ticker_shift(client, window_minutes=180, baseline_hours=45, min_docs=1).iterrows()
        },
        "options": queries.filter_options(client, hours=48),
        "drill_regulation": _col(queries.drilldown(client, start=start, end=end, topics=["regulation"]), "id"),
        "drill_macro": _col(queries.drilldown(client, start=start, end=end, topics=["macro"]), "sentiment"),
        "feed": sorted(
            (r["id"], _none(r["topic"]), _none(r["sentiment"]), r["model_version"])
            for _, r in queries.latest_documents(client, hours=48, limit=100).iterrows()
        ),
        "models": _by(queries.model_versions(client, hours=48), "model_version", "docs"),
        "confidence_docs": int(queries.confidence_over_time(client, hours=48, bucket_minutes=bucket)["docs"].sum()),
        "throughput_docs": int(queries.throughput(client, hours=48, bucket_minutes=bucket)["docs"].sum()),
        "fresh_last_hour": queries.freshness(client, hours=48)["docs_last_hour"],
        "counts_view": sorted(
            tuple(row)
            for row in client.query(
                "SELECT topic, sentiment, ticker, sum(docs) FROM documents_minutely_counts GROUP BY ALL"
            ).result_rows
        ),
        "watchlist": {
            k: v[0]
            for k, v in q.watchlist_hits(
                client, start=start, end=end, tickers=["AAPL", "MSFT"], keywords=["flip"]
            ).items()
        },
        "samples_regulation": q.sample_document_ids(
            client, start=start, end=end, group_by="topic", group="regulation", negative_only=False
        ),
        "samples_macro": q.sample_document_ids(
            client, start=start, end=end, group_by="topic", group="macro", negative_only=False
        ),
    }
    for group_by in ("none", "topic", "ticker", "source"):
        for use_documents in (False, True):
            rows = q.window_counts(
                client, start=start, end=end, bucket_s=48 * 3600, group_by=group_by, use_documents=use_documents
            )
            out[f"alerts_{group_by}_{'docs' if use_documents else 'rollup'}"] = {
                r.group: (r.total, r.negative, r.positive, r.classified) for r in rows
            }
    msft = q.window_counts(client, start=start, end=end, bucket_s=48 * 3600, scope={"ticker": "MSFT"})
    out["alerts_scope_msft"] = [(r.total, r.negative, r.positive) for r in msft]
    return out


EXPECTED_AFTER = {
    "volume": {"(unclassified)": (1, 0, 0), "earnings": (3, 3, 0), "macro": (1, 0, 1), "markets": (1, 1, 0)},
    "heatmap": {"earnings": (3, 3), "macro": (1, 0), "markets": (1, 1)},
    "window": {"earnings": (2,), "macro": (1,), "markets": (1,)},
    "window_neg": {"earnings": 1.0, "macro": 0.0, "markets": 1.0},
    "tickers": {"AAPL": (2, 0.5), "MSFT": (1, 0.0)},
    "options": {
        "topic": ["earnings", "macro", "markets"],
        "source": ["wire", "sina"],
        "ticker": ["AAPL", "MSFT"],
        "lang": ["en", "de", "zh"],
    },
    "drill_regulation": [],
    "drill_macro": ["positive"],
    "feed": sorted(
        [
            ("flip", "macro", "positive", NEW),
            ("same", "earnings", "negative", NEW),
            ("dup", "earnings", "negative", NEW),
            ("zh", "markets", "negative", NEW),
            ("de", None, None, NEW),
            ("old", "earnings", "negative", OLD),
        ]
    ),
    "models": {NEW: (5,), OLD: (1,)},
    "confidence_docs": 5,  # one per document with sentiment probabilities (de has none)
    "throughput_docs": 6,  # the stream's rows only: relabel rows are not stream throughput
    "fresh_last_hour": 0,  # ditto: the stream classified nothing in the last hour
    "counts_view": sorted(
        [
            ("", "", "", 1),
            ("earnings", "negative", "", 1),
            ("earnings", "negative", "AAPL", 2),
            ("macro", "positive", "AAPL", 1),
            ("macro", "positive", "MSFT", 1),
            ("markets", "negative", "", 1),
        ]
    ),
    "watchlist": {"ticker:AAPL": 2},
    "samples_regulation": [],
    "samples_macro": ["flip"],
    "alerts_scope_msft": [(1, 0, 1)],
}
for _kind in ("rollup", "docs"):
    EXPECTED_AFTER |= {
        f"alerts_none_{_kind}": {"": (6, 4, 1, 5)},
        f"alerts_topic_{_kind}": {
            "": (1, 0, 0, 0),
            "earnings": (3, 3, 0, 3),
            "macro": (1, 0, 1, 1),
            "markets": (1, 1, 0, 1),
        },
        f"alerts_ticker_{_kind}": {"AAPL": (3, 2, 1, 3), "MSFT": (1, 0, 1, 1)},
        f"alerts_source_{_kind}": {"wire": (4, 3, 1, 4), "sina": (2, 1, 0, 1)},
    }


def test_relabel_counts_once_under_the_new_label_everywhere_and_twice_is_idempotent(db: Any) -> None:
    from stream.relabel import relabel_recent

    settings, client = db
    before = observed(client)
    assert before["drill_regulation"] == ["flip"] and before["models"] == {OLD: (6,)}  # the seed is what we think
    originals = {r[0]: r for r in client.query("SELECT * FROM documents_latest ORDER BY id").result_rows}
    progress: list[tuple[int, int]] = []
    engine = FakeEngine()

    report = relabel_recent(settings, engine=engine, client=client, on_batch=lambda d, t: progress.append((d, t)))

    assert (report.in_window, report.already_current, report.relabeled, report.changed, report.failed) == (
        5,
        0,
        5,
        2,
        0,
    )
    assert report.model_version == NEW and report.hours == 24
    assert progress == [(2, 5), (4, 5), (5, 5)]  # batches of relabel_batch_size = 2, counted as they land
    assert sorted(engine.texts) == sorted(
        [
            "flip: regulator clears AAPL and MSFT deal\nbody of flip",
            "AAPL misses estimates\nbody of same",
            "Another earnings miss\nbody of dup",
            "市场 大跌\nbody of zh",
        ]
    )
    after = observed(client)
    assert {k: after[k] for k in EXPECTED_AFTER} == EXPECTED_AFTER

    # Only the label fields, model_version, classified_at and relabeled changed; ingest fields are the same.
    columns = [c for c in client.query("SELECT * FROM documents_latest LIMIT 0").column_names]
    rows = {
        r[0]: dict(zip(columns, r, strict=True)) for r in client.query("SELECT * FROM documents_latest").result_rows
    }
    relabel_fields = {
        "topic",
        "topic_score",
        "sentiment",
        "sentiment_score",
        "topic_probs",
        "sentiment_probs",
        "model_version",
        "classified_at",
        "relabeled",
    }
    for doc_id, old in originals.items():
        old_row = dict(zip(columns, old, strict=True))
        new = rows[doc_id]
        assert {c: new[c] for c in columns if c not in relabel_fields} == {
            c: old_row[c] for c in columns if c not in relabel_fields
        }, doc_id
        if doc_id == "old":
            assert new == old_row
        else:
            assert new["relabeled"] == 1 and new["classified_at"] > old_row["classified_at"]
    assert rows["flip"]["sentiment_probs"] == {"positive": pytest.approx(0.9), "neutral": pytest.approx(0.1)}

    # A second run with the same model finds nothing to do: no model call, no row written, every figure the same.
    stored = client.command("SELECT count() FROM documents")
    idle = FakeEngine()
    again = relabel_recent(settings, engine=idle, client=client)
    assert idle.texts == []
    assert (again.in_window, again.already_current, again.relabeled, again.batches) == (5, 5, 0, 0)
    assert client.command("SELECT count() FROM documents") == stored
    assert observed(client) == after


def test_relabel_keeps_documents_the_model_raises_on(endpoint: Endpoint) -> None:
    from stream.relabel import relabel_recent

    settings = endpoint.settings.model_copy(update={"clickhouse_database": "relabel_boom"})
    migrate(settings)
    client = create_client(settings)
    try:
        _insert(client, [_doc("ok", hours_ago=1, title="fine"), _doc("bad", hours_ago=1, title="boom", topic="macro")])
        report = relabel_recent(settings, engine=FakeEngine(), client=client, hours=2)
        assert (report.relabeled, report.failed) == (1, 1)
        got = dict(client.query("SELECT id, tuple(topic, model_version) FROM documents_latest").result_rows)
        assert got == {"ok": ("earnings", NEW), "bad": ("macro", OLD)}
        with pytest.raises(ValueError, match="hours must be > 0"):
            relabel_recent(settings, engine=FakeEngine(), client=client, hours=0)
    finally:
        client.close()


def test_migration_0020_upgrades_a_data_dir_with_the_old_rollup(tmp_path: Path) -> None:
    old_dir = tmp_path / "migrations-before-0020"
    old_dir.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "0020":
            shutil.copy(path, old_dir / path.name)
    ep = start(tmp_path / "data")
    try:
        settings = ep.settings
        applied = migrate(settings, directory=old_dir)
        assert "0002_documents_minutely" in applied and "0020_documents_minutely_latest" not in applied
        client = create_client(settings)
        _insert(client, DOCS[:3])  # rolled up by 0002's materialized view
        _insert(client, [DOCS[0] | {"topic": "macro", "classified_at": DOCS[0]["classified_at"] + timedelta(1)}])
        # 0002's rollup counts the redelivered document under both topics: the bug 0020 fixes
        old_topics = dict(
            client.query("SELECT topic, uniqExactMerge(docs) FROM documents_minutely GROUP BY topic").result_rows
        )
        assert old_topics == {"earnings": 2, "regulation": 1, "macro": 1}

        assert "0020_documents_minutely_latest" in migrate(settings)
        assert migrate(settings) == []
        # backfilled: every document once, under its latest label
        new_topics = dict(
            client.query("SELECT topic, count() FROM documents_minutely_latest FINAL GROUP BY topic").result_rows
        )
        assert new_topics == {"earnings": 2, "macro": 1}
        assert client.command("SELECT sum(docs) FROM documents_minutely_counts WHERE ticker = 'MSFT'") == 1
        assert client.command("SELECT max(relabeled) FROM documents_latest") == 0
        # new inserts feed the new table only; 0002's view is gone
        _insert(client, DOCS[3:])
        assert client.command("SELECT count() FROM documents_minutely_latest FINAL") == 6
        assert client.command("SELECT uniqExactMerge(docs) FROM documents_minutely") == 3
        views = client.command(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = 'documents_minutely_mv'",
            parameters={"db": settings.clickhouse_database},
        )
        assert views == 0
        client.close()
    finally:
        if ep.process.poll() is None:
            ep.stop()
