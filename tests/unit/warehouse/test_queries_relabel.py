"""Relabel safety without a server: migration 0020's statements, the SQL every count reads, the relabel row rules.
The end-to-end proof on a real endpoint is tests/integration/warehouse/test_relabel.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from finpulse.settings import load_settings
from stream.relabel import _labels, _relabeled_row
from warehouse.migrate import discover, variables
from warehouse.queries import alerts, trends


def _migration_0020() -> list[str]:
    (migration,) = [m for m in discover() if m.id.startswith("0020_")]
    return migration.statements(variables(load_settings(clickhouse_database="fp")))


def test_migration_0020_creates_the_table_before_backfilling_and_retires_the_old_view() -> None:
    statements = _migration_0020()
    table = next(
        i for i, s in enumerate(statements) if "CREATE TABLE IF NOT EXISTS `fp`.documents_minutely_latest" in s
    )
    mv = next(i for i, s in enumerate(statements) if s.startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS"))
    backfill = next(i for i, s in enumerate(statements) if s.startswith("INSERT INTO `fp`.documents_minutely_latest"))
    drop = statements.index("DROP VIEW IF EXISTS `fp`.documents_minutely_mv")
    assert table < mv < backfill < drop  # nothing inserted during the migration is missed
    assert "ENGINE = ReplacingMergeTree(classified_at)" in statements[table]
    assert "ORDER BY (minute, id)" in statements[table]
    assert "FROM `fp`.documents FINAL" in statements[backfill]  # the latest label per id, once
    assert any("ADD COLUMN IF NOT EXISTS relabeled UInt8 DEFAULT 0" in s for s in statements)
    counts = next(s for s in statements if "VIEW `fp`.documents_minutely_counts" in s)
    assert counts.startswith("CREATE OR REPLACE VIEW") and "documents_minutely_latest FINAL" in counts
    # every statement can run again after an interruption
    for s in statements:
        assert re.search(r"IF NOT EXISTS|IF EXISTS|OR REPLACE|^INSERT INTO|MODIFY COMMENT", s), s


def _all_count_sql() -> dict[str, str]:
    sql = {f"trends.{n}": v for n, v in vars(trends).items() if n.endswith("_SQL") and isinstance(v, str)}
    sql |= {f"alerts.{n}": v for n, v in vars(alerts).items() if n.endswith("_SQL") and isinstance(v, str)}
    for group_by in alerts.GROUPS:
        sql[f"window_counts({group_by}, documents)"] = alerts._counts_sql(group_by, True)
        if group_by != "lang":
            sql[f"window_counts({group_by}, rollup)"] = alerts._counts_sql(group_by, False)
    return sql


def test_no_query_reads_the_frozen_rollup_and_the_new_table_only_with_final() -> None:
    for name, sql in _all_count_sql().items():
        assert not re.search(r"\bdocuments_minutely\b", sql), f"{name} reads 0002's frozen rollup"
        assert "uniqExactMerge" not in sql, name
        for match in re.finditer(r"documents_minutely_latest(\s+\w+)?", sql):
            assert (match.group(1) or "").strip() == "FINAL", f"{name}: documents_minutely_latest without FINAL"
        # reading documents without FINAL is only for figures about the stream's own rows
        for match in re.finditer(r"FROM documents\b(\s+\w+)?", sql):
            if (match.group(1) or "").strip() != "FINAL":
                assert "relabeled = 0" in sql or "GROUP BY lang" in sql, f"{name} reads every row of documents"


def test_alert_ticker_scope_matches_the_array_joined_ticker_only_when_grouping_by_ticker() -> None:
    by_ticker = alerts._counts_sql("ticker", False)
    assert "ARRAY JOIN tickers AS ticker" in by_ticker and "OR ticker = {ticker:String}" in by_ticker
    by_topic = alerts._counts_sql("topic", False)
    assert "ARRAY JOIN" not in by_topic and "has(tickers, {ticker:String})" in by_topic
    with pytest.raises(ValueError, match="no language"):
        alerts._counts_sql("lang", False)


ROW: dict[str, Any] = {
    "id": "d1",
    "title": "t",
    "body": "b",
    "lang": "en",
    "tickers": ["AAPL"],
    "meta": '{"k": 1}',
    "story_id": "s-9",  # a column added by a later migration: kept as it is
    "topic": "earnings",
    "topic_score": 0.5,
    "sentiment": "negative",
    "sentiment_score": -0.4,
    "topic_probs": {"earnings": 0.5},
    "sentiment_probs": {"negative": 0.6},
    "model_version": "old",
    "classified_at": datetime(2026, 12, 1, 10, tzinfo=UTC),
    "relabeled": 0,
}
LABELS = {
    "topic": "macro",
    "topic_score": 0.9,
    "sentiment": "positive",
    "sentiment_score": 0.8,
    "topic_probs": {"macro": 0.9},
    "sentiment_probs": {"positive": 0.85},
}


def test_relabeled_row_rewrites_only_labels_version_and_time() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    new = _relabeled_row(ROW, LABELS, "v2", now)
    changed = {k for k in ROW if new[k] != ROW[k]}
    assert changed == set(LABELS) | {"model_version", "classified_at", "relabeled"}
    assert new["classified_at"] == now and new["relabeled"] == 1 and new["story_id"] == "s-9"
    # a stored row stamped in the future (another host's clock) is still replaced: 1 ms past it
    ahead = ROW | {"classified_at": now + timedelta(hours=1)}
    assert _relabeled_row(ahead, LABELS, "v2", now)["classified_at"] == now + timedelta(hours=1, milliseconds=1)
    naive = ROW | {"classified_at": datetime(2026, 12, 1, 13)}  # drivers may hand back naive UTC
    assert _relabeled_row(naive, LABELS, "v2", now)["classified_at"] == datetime(2026, 12, 1, 13, 0, 0, 1000, UTC)


@dataclass(frozen=True)
class _Pred:
    topic: str

    def as_fields(self) -> dict[str, Any]:
        return LABELS | {"topic": self.topic}


class _Engine:
    model_version = "v2"

    def supports_language(self, lang: str | None) -> bool:
        return lang == "en"

    def predict(self, texts: list[str]) -> list[_Pred]:
        if any("boom" in t for t in texts):
            raise RuntimeError("boom")
        return [_Pred(t.split("\n")[0]) for t in texts]


def test_labels_isolate_the_documents_the_model_raises_on_and_skip_unsupported_languages() -> None:
    rows = [ROW | {"title": "a"}, ROW | {"title": "boom"}, ROW | {"title": "c", "lang": "de"}, ROW | {"title": "d"}]
    labels, failed = _labels(_Engine(), rows)
    assert failed == 1
    assert [lab["topic"] if lab else "FAILED" for lab in labels] == ["a", "FAILED", None, "d"]
    assert labels[2] is not None and labels[2]["sentiment_probs"] == {}  # unsupported: stored unlabeled, as the stream


def test_document_text_is_what_the_stream_classifies() -> None:
    # Relabel, the entity stage and corrections build a stored row's text with the contract's own function.
    from finpulse.contracts import RawDocument, document_text

    expected = {("Title", "Body"): "Title\nBody", ("", "Body"): "Body", ("Title", ""): "Title", ("", ""): ""}
    for (title, body), text in expected.items():
        assert document_text(title, body) == text == RawDocument.model_construct(title=title, body=body).text
    assert document_text(None, None) == ""


def test_relabel_command_says_what_is_missing_and_never_promotes_or_uses_a_broken_model(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from classifier.registry import META_FILE
    from finpulse.cli import app

    env = {"FINPULSE_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    result = runner.invoke(app, ["relabel", "--hours", "2"], env=env)
    assert result.exit_code == 2 and "no promoted model" in result.output
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / META_FILE).write_text('{"kind": "crystal-ball"}', encoding="utf-8")
    result = runner.invoke(app, ["relabel", "--model", str(broken)], env=env)
    assert result.exit_code == 2 and "failed to load" in result.output and "crystal-ball" in result.output
    result = runner.invoke(app, ["relabel", "--hours", "0"], env=env)
    assert result.exit_code == 2 and "0.001" in result.output  # the range is named
