"""alerts.repository is the one module with SQL on the alert tables, and what it writes it reads back unchanged."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from alerts import repository
from alerts.outbox import OutboxEntry
from alerts.repository import SeriesState
from alerts.rules import Rule
from alerts.targets import WebhookTarget

ROOT = Path(__file__).resolve().parents[3]
ALERT_TABLES = ("alerts", "alert_acks", "alert_silences", "alert_rules", "alert_targets", "alert_state",
                "alert_outbox", "alert_deliveries")  # fmt: skip
_TABLE_SQL = re.compile(r"\b(?:FROM|JOIN|INTO)\s+(" + "|".join(ALERT_TABLES) + r")\b|\.insert\(\s*\"(alert\w*)\"")


def test_no_other_alert_or_warehouse_query_module_has_sql_on_the_alert_tables() -> None:
    offenders = []
    for path in sorted([*ROOT.glob("alerts/*.py"), *ROOT.glob("warehouse/queries/*.py")]):
        if path.name == "repository.py":
            continue
        text = path.read_text(encoding="utf-8")
        for match in _TABLE_SQL.finditer(text):  # on the whole text: an insert's table name may be on the next line
            offenders.append(f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)}")
    assert offenders == []
    # the check itself finds what the repository holds
    assert _TABLE_SQL.search(repository.LIST_ALERTS_SQL) and _TABLE_SQL.search('client.insert("alert_state", rows)')


class FakeTables:
    """Stands in for a clickhouse-connect client: inserts are kept per table; a SELECT of the repository returns the
    columns it names (in its order) from the newest version of each row, as FINAL would."""

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {}

    def insert(self, table: str, rows: list[list[Any]], column_names: list[str]) -> None:
        assert all(len(row) == len(column_names) for row in rows)
        self.tables.setdefault(table, []).extend(dict(zip(column_names, row, strict=True)) for row in rows)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> SimpleNamespace:
        select = re.match(r"\s*SELECT (.*?) FROM (\w+)", sql, re.S)
        assert select is not None, sql
        columns = [c.strip() for c in select.group(1).split(",")]
        key = {"alert_outbox": "delivery_id", "alert_state": "fingerprint", "alert_targets": "name",
               "alert_rules": "id"}[select.group(2)]  # fmt: skip
        latest: dict[str, dict[str, Any]] = {}
        for row in sorted(self.tables.get(select.group(2), []), key=lambda r: r["version"]):
            latest[row[key]] = row
        rows = [r for r in latest.values() if not r.get("deleted")]
        if "status = 'pending'" in sql:
            rows = [r for r in rows if r["status"] == "pending"]
        if "{id:String}" in sql:
            rows = [r for r in latest.values() if r[key] == (parameters or {})["id"]]
        return SimpleNamespace(result_rows=[tuple(r[c] for c in columns) for r in rows], column_names=columns)


def test_outbox_entries_and_their_new_versions_read_back_field_for_field() -> None:
    client = FakeTables()
    first = OutboxEntry.new(alert_id="a1", event="firing", channel="webhook", target="ops", payload='{"id":"a1"}')
    other = OutboxEntry.new(alert_id="a2", event="firing", channel="kafka", target="finpulse.alerts", payload="{}")
    repository.write_outbox(client, [first, other])
    retry_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    repository.write_outbox(client, [first.updated(attempts=1, last_error="HTTP 503", next_attempt_at=retry_at)])
    repository.write_outbox(client, [other.updated(status="delivered", attempts=1)])
    assert repository.pending_outbox(client) == [first.updated(attempts=1, last_error="HTTP 503",
                                                               next_attempt_at=retry_at)]  # fmt: skip
    repository.write_outbox(client, [])  # nothing to write: no insert at all
    assert len(client.tables["alert_outbox"]) == 4


def test_series_states_read_back_with_utc_times_and_the_latest_version_wins() -> None:
    client = FakeTables()
    naive = datetime(2026, 1, 1, 9, 30)  # ClickHouse may hand back naive UTC times
    pending = SeriesState("fp1", "r1", "AAPL", "pending", pending_since=naive)
    repository.write_series_states(client, [pending, SeriesState("fp2", "r1", "MSFT")])
    fired = SeriesState("fp1", "r1", "AAPL", "firing", alert_id="x", fired_at=naive + timedelta(minutes=5))
    repository.write_series_states(client, [fired])
    states = {s.fingerprint: s for s in repository.series_states(client)}
    assert states["fp1"].state == "firing" and states["fp1"].alert_id == "x"
    assert states["fp1"].fired_at == datetime(2026, 1, 1, 9, 35, tzinfo=UTC)
    assert states["fp2"] == SeriesState("fp2", "r1", "MSFT")


def test_rules_and_targets_round_trip_and_secrets_stay_out_of_the_rows(tmp_path: Path) -> None:
    client = FakeTables()
    rule = Rule(id="neg", name="Negative", kind="negative_share", threshold=0.5, window_s=600)
    repository.write_rule(client, rule)
    assert repository.rules(client) == [rule] and repository.rule(client, "neg") == rule
    repository.write_rule(client, rule, deleted=True)
    assert repository.rules(client) == [] and repository.rule(client, "neg") is None
    assert repository.rule(client, "never-stored") is None

    slack = WebhookTarget(name="chat", url="https://hooks.slack.com/services/T/B/credential", format="slack",
                          secret="s3cret")  # fmt: skip
    repository.write_target(client, slack, data_dir=tmp_path)
    row = client.tables["alert_targets"][0]
    assert "credential" not in row["url"] and "s3cret" not in row["secret"]
    assert repository.targets(client, data_dir=tmp_path) == [slack]
    repository.write_target(client, slack, data_dir=tmp_path, deleted=True)
    assert repository.targets(client, data_dir=tmp_path) == []


def test_an_invalid_stored_target_is_skipped_or_refused_as_asked(tmp_path: Path) -> None:
    client = FakeTables()
    client.insert(
        "alert_targets",
        [["broken", "http://x:99999/", "generic", "", 1, "ui", 0, datetime.now(UTC), repository.next_version()]],
        column_names=["name", "url", "format", "secret", "enabled", "origin", "deleted", "updated_at", "version"],
    )
    assert repository.targets(client, data_dir=tmp_path) == []
    with pytest.raises(ValueError, match="99999"):
        repository.targets(client, data_dir=tmp_path, skip_invalid=False)


def test_versions_strictly_increase_even_within_one_clock_tick() -> None:
    versions = [repository.next_version() for _ in range(1_000)]
    assert versions == sorted(set(versions))
    times = [repository.version_time() for _ in range(50)]
    assert all(a < b for a, b in itertools.pairwise(times))
    assert all(t.microsecond % 1_000 == 0 and t.tzinfo is UTC for t in times)  # ms resolution, DateTime64(3)
