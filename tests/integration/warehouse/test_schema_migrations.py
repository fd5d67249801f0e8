"""The schema in one place, on the real local endpoint: every migration applied leaves the documents table with
exactly the columns warehouse/schema.py derives from the contract (and a drift either way is reported), a derived
row round-trips by name, and migration 0050 renames the alerts' scope_kind/scope_value to group_by/group_value in an
existing data dir, keeping its alerts."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts import repository
from alerts.alert import ALERT_COLUMNS, Alert
from finpulse.contracts import ClassifiedDocument
from tests.stack import local_only
from warehouse.client import create_client
from warehouse.migrate import MIGRATIONS_DIR, Migration, migrate, variables
from warehouse.schema import DOCUMENT_COLUMNS, TABLE_COLUMNS, document_row

from .conftest import Endpoint, start

pytestmark = [pytest.mark.integration]

T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
RENAME = "0050_alert_scope_names"
BEFORE_0050 = {"group_by": "scope_kind", "group_value": "scope_value"}  # the alerts columns' names until 0050


def _columns(client: Any, table: str) -> list[str]:
    result = client.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} ORDER BY position",
        parameters={"t": table},
    )
    return [row[0] for row in result.result_rows]


def schema_drift(client: Any, table: str = "documents") -> dict[str, list[str]]:
    """The columns the migrated table and warehouse.schema disagree on (both lists empty: they agree)."""
    columns = _columns(client, table)
    return {
        "only in the migrations": sorted(set(columns) - set(TABLE_COLUMNS)),
        "only in warehouse.schema": sorted(set(TABLE_COLUMNS) - set(columns)),
    }


def _migrations_before(prefix: str, into: Path) -> Path:
    into.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < prefix:
            shutil.copy(path, into / path.name)
    return into


def _utc(value: Any) -> Any:
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value


def test_the_migrated_documents_table_has_the_contract_columns(endpoint: Endpoint) -> None:
    settings = endpoint.settings.model_copy(update={"clickhouse_database": "schema_contract"})
    migrate(settings)
    client = create_client(settings)
    try:
        no_drift = {"only in the migrations": [], "only in warehouse.schema": []}
        assert schema_drift(client) == no_drift
        assert schema_drift(client, "documents_latest") == no_drift

        # Values exactly representable in Float32 and DateTime64(3): the row read back equals the row written.
        doc = ClassifiedDocument(
            id="schema-doc-0001",
            source="wire",
            kind="news",
            lang="en",
            title="Acme beats estimates",
            body="Revenue rose.",
            url=None,
            author="h:0123456789abcdef",
            published_at=T0,
            ingested_at=T0 + timedelta(milliseconds=250),
            tickers=["ACME", "0700.HK"],
            entities=["Acme Corp"],
            meta={"feed": "wire", "rank": 2},
            story_id="schema-story-01",
            novelty=0.5625,
            topic="earnings",
            topic_score=0.75,
            sentiment="positive",
            sentiment_score=0.5,
            topic_probs={"earnings": 0.75, "macro": 0.25},
            sentiment_probs={"negative": 0.125, "neutral": 0.125, "positive": 0.75},
            model_version="m@1",
            classified_at=T0 + timedelta(seconds=1, milliseconds=500),
        )
        row = document_row(doc)
        client.insert("documents", [row], column_names=list(DOCUMENT_COLUMNS))
        result = client.query("SELECT * FROM documents_latest WHERE id = {id:String}", parameters={"id": doc.id})
        stored = {name: _utc(value) for name, value in zip(result.column_names, result.result_rows[0], strict=True)}
        assert {c: stored[c] for c in DOCUMENT_COLUMNS} == dict(zip(DOCUMENT_COLUMNS, row, strict=True))
        assert stored["relabeled"] == 0  # a column written elsewhere: a stream row leaves it to its default
    finally:
        client.close()


def test_the_check_reports_a_column_only_one_side_has(endpoint: Endpoint, tmp_path: Path) -> None:
    drifted = _migrations_before("9999", tmp_path / "migrations")
    (drifted / "9998_drift.sql").write_text(
        "ALTER TABLE ${database}.documents ADD COLUMN IF NOT EXISTS sentiment_reason String DEFAULT '';\n\n"
        "ALTER TABLE ${database}.documents DROP COLUMN IF EXISTS novelty;\n",
        encoding="utf-8",
    )
    settings = endpoint.settings.model_copy(update={"clickhouse_database": "schema_drift"})
    assert "9998_drift" in migrate(settings, directory=drifted)
    client = create_client(settings)
    try:
        assert schema_drift(client) == {
            "only in the migrations": ["sentiment_reason"],
            "only in warehouse.schema": ["novelty"],
        }
    finally:
        client.close()


@local_only
def test_0050_renames_the_alert_columns_of_an_existing_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    alert = Alert(
        id="alert-0050", fingerprint="fp-0050", rule_id="r-tsla", rule_name="TSLA negative share",
        kind="negative_share", severity="critical", group_by="ticker", group_value="TSLA",
        scope={"topic": "regulation"}, metric="negative_share", value=0.875, threshold=0.5, doc_count=16,
        window_start=T0, window_end=T0 + timedelta(minutes=15), started_at=T0 + timedelta(minutes=15), window_s=900,
        message="TSLA negative share 88% > 50% over 15 min (16 documents)", sample_doc_ids=["d1", "d2"],
    )  # fmt: skip

    # A data dir at the schema before 0050, with an alert, written by a first endpoint that then stops.
    ep = start(data_dir)
    try:
        applied = migrate(ep.settings, directory=_migrations_before(RENAME[:4], tmp_path / "before-0050"))
        assert "0031_alert_evidence" in applied and RENAME not in applied
        client = create_client(ep.settings)
        try:
            old_names = [BEFORE_0050.get(c, c) for c in ALERT_COLUMNS]
            client.insert("alerts", [alert.to_row(T0 + timedelta(minutes=16))], column_names=old_names)
        finally:
            client.close()
    finally:
        assert ep.stop() == 0

    ep = start(data_dir)  # a new process on the same data dir: the upgrade at the next start
    try:
        assert migrate(ep.settings)[-1] == RENAME
        client = create_client(ep.settings)
        try:
            columns = _columns(client, "alerts")
            assert {"group_by", "group_value"} <= set(columns) and not {"scope_kind", "scope_value"} & set(columns)
            assert repository.alert(client, alert.id) == alert
            listed = repository.list_alerts(client)
            assert list(zip(listed["id"], listed["group_by"], listed["group_value"], strict=True)) == [
                (alert.id, "ticker", "TSLA")
            ]

            # Each statement is a no-op once it has run: a migration interrupted half-way is finished by the next one.
            rename = Migration(RENAME, MIGRATIONS_DIR / f"{RENAME}.sql")
            for statement in rename.statements(variables(ep.settings)):
                client.command(statement)
            assert migrate(ep.settings) == []
            assert repository.alert(client, alert.id) == alert

            # and the code writes and reads the renamed columns
            resolved = alert.model_copy(update={"status": "resolved", "resolved_at": T0 + timedelta(minutes=30)})
            repository.write_alerts(client, [resolved])
            assert repository.alert(client, alert.id) == resolved
        finally:
            client.close()
    finally:
        ep.stop()
