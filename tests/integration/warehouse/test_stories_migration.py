"""Migration 0030 (stories) on the real local endpoint: an existing data dir keeps its rows (each its own story,
novelty 1), a fresh one gets the columns, the rollup and its view carry story_id, and a relabel keeps a document's
story_id and novelty."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from stream.relabel import relabel_recent
from warehouse.client import create_client
from warehouse.migrate import MIGRATIONS_DIR, migrate

from .conftest import Endpoint
from .test_relabel import DOCS, NOW, FakeEngine, _doc, _insert

pytestmark = [pytest.mark.integration]


def _columns(client: Any, table: str) -> dict[str, str]:
    return dict(
        client.query(
            f"SELECT name, default_expression FROM system.columns WHERE table = '{table}' "
            "AND database = currentDatabase()"
        ).result_rows
    )


def test_0030_upgrades_an_existing_database_and_a_fresh_one(endpoint: Endpoint, tmp_path: Path) -> None:
    old_dir = tmp_path / "migrations-before-0030"
    old_dir.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "0030":
            shutil.copy(path, old_dir / path.name)
    settings = endpoint.settings.model_copy(update={"clickhouse_database": "stories_upgrade"})
    applied = migrate(settings, directory=old_dir)
    assert "0020_documents_minutely_latest" in applied and "0030_stories" not in applied
    client = create_client(settings)
    try:
        _insert(client, DOCS[:3])  # rows written before stories existed
        assert "0030_stories" in migrate(settings)
        assert migrate(settings) == []
        old = client.query("SELECT id, story_id, novelty FROM documents_latest ORDER BY id").result_rows
        assert old == sorted((d["id"], d["id"], 1.0) for d in DOCS[:3])
        rollup = client.query("SELECT id, story_id FROM documents_minutely_latest FINAL ORDER BY id").result_rows
        assert rollup == sorted((d["id"], d["id"]) for d in DOCS[:3])

        # new rows: the view carries their story_id into the rollup
        copy = _doc("copy-of-same", hours_ago=1, title="AAPL misses estimates, says wire") | {
            "schema_version": 2,
            "story_id": "same",
            "novelty": 0.75,
        }
        _insert(client, [copy])
        assert client.query("SELECT story_id, novelty FROM documents_latest WHERE id = 'copy-of-same'").result_rows == [
            ("same", 0.75)
        ]
        assert client.command("SELECT story_id FROM documents_minutely_latest FINAL WHERE id = 'copy-of-same'") == (
            "same"
        )
        # two documents, one story, in the rollup the rules count
        stories = client.command(
            "SELECT uniqExact(story_id) FROM documents_minutely_latest FINAL WHERE id IN ('same', 'copy-of-same')"
        )
        assert stories == 1

        # a relabel rewrites labels only: story_id and novelty stay
        report = relabel_recent(settings, engine=FakeEngine(), client=client, hours=24, now=NOW + timedelta(1 / 24))
        assert report.relabeled >= 1
        after = client.query(
            "SELECT model_version, relabeled, story_id, novelty FROM documents_latest WHERE id = 'copy-of-same'"
        ).result_rows
        assert after == [(FakeEngine().model_version, 1, "same", 0.75)]
        assert client.command("SELECT story_id FROM documents_minutely_latest FINAL WHERE id = 'copy-of-same'") == (
            "same"
        )
    finally:
        client.close()

    fresh = endpoint.settings.model_copy(update={"clickhouse_database": "stories_fresh"})
    assert "0030_stories" in migrate(fresh)
    client = create_client(fresh)
    try:
        documents = _columns(client, "documents")
        assert (documents["story_id"], documents["novelty"]) == ("id", "1")
        assert _columns(client, "documents_minutely_latest")["story_id"] == "id"
        assert {"story_id", "novelty"} <= set(_columns(client, "documents_latest"))
        _insert(client, [DOCS[0]])  # an insert that names no story columns: its own story
        assert client.query("SELECT story_id, novelty FROM documents_latest").result_rows == [(DOCS[0]["id"], 1.0)]
        assert client.command("SELECT story_id FROM documents_minutely_latest FINAL") == DOCS[0]["id"]
    finally:
        client.close()
