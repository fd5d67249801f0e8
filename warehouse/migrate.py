"""Schema migrations: versioned SQL files in warehouse/migrations, applied in order, recorded once.

Each file is ``NNNN_name.sql``: statements separated by ``;`` at a line end, with ``${database}`` and the TTL
settings (``${documents_ttl_days}``, ...) substituted. Every statement is written to be re-runnable
(``IF NOT EXISTS``), so a run interrupted half-way is finished by the next one. Retention follows the settings on
every run: a changed ``*_ttl_days`` is applied with ALTER ... MODIFY TTL even for tables created long ago.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from finpulse.settings import Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)

# table -> (TTL expression template, setting that holds its days)
TTLS: dict[str, tuple[str, str]] = {
    "documents": ("toDateTime(published_at) + INTERVAL {days} DAY", "documents_ttl_days"),
    "documents_minutely": ("minute + INTERVAL {days} DAY", "rollup_ttl_days"),
    "documents_minutely_latest": ("minute + INTERVAL {days} DAY", "rollup_ttl_days"),
    "document_entities": ("toDateTime(published_at) + INTERVAL {days} DAY", "documents_ttl_days"),
    "alerts": ("window_start + INTERVAL {days} DAY", "alerts_ttl_days"),
    "alert_deliveries": ("toDateTime(delivered_at) + INTERVAL {days} DAY", "alerts_ttl_days"),
    "alert_acks": ("toDateTime(acknowledged_at) + INTERVAL {days} DAY", "alerts_ttl_days"),
    "alert_outbox": ("toDateTime(created_at) + INTERVAL {days} DAY", "alerts_ttl_days"),
}


class MigrationError(RuntimeError):
    """A migration failed; the message names the file and statement."""


@dataclass(frozen=True)
class Migration:
    id: str  # the file name without .sql, e.g. 0001_documents
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def statements(self, variables: dict[str, str]) -> list[str]:
        sql = Template(self.text).substitute(variables)
        lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
        return [part.strip() for part in _STATEMENT_END.split("\n".join(lines)) if part.strip()]


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = [Migration(p.stem, p) for p in sorted(directory.glob("*.sql")) if _FILE.match(p.name)]
    ids = [m.id[:4] for m in migrations]
    if len(ids) != len(set(ids)):
        raise MigrationError(f"two migrations share a number in {directory}: {ids}")
    return migrations


def _quote(name: str) -> str:
    return "`" + name.replace("`", "\\`") + "`"


def variables(settings: Settings) -> dict[str, str]:
    return {
        "database": _quote(settings.clickhouse_database),
        "documents_ttl_days": str(settings.documents_ttl_days),
        "rollup_ttl_days": str(settings.rollup_ttl_days),
        "alerts_ttl_days": str(settings.alerts_ttl_days),
    }


def migrate(settings: Settings, *, client: Any | None = None, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations to ``settings.clickhouse_database`` and return the ids applied now (idempotent:
    a second run returns []). ``client`` defaults to a full-access client of the configured endpoint."""
    own_client = client is None
    if client is None:
        from warehouse.client import create_client

        client = create_client(settings, database=None)
    try:
        return _migrate(client, settings, directory)
    finally:
        if own_client:
            client.close()


def _migrate(client: Any, settings: Settings, directory: Path) -> list[str]:
    db = _quote(settings.clickhouse_database)
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations (id String, checksum String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY id"
    )
    done = {
        row[0]: row[1] for row in client.query(f"SELECT id, checksum FROM {db}.schema_migrations FINAL").result_rows
    }
    values = variables(settings)
    applied: list[str] = []
    for migration in discover(directory):
        if migration.id in done:
            if done[migration.id] != migration.checksum:
                log.warning(
                    "migration changed after it was applied; add a new migration instead of editing it",
                    extra={"migration": migration.id},
                )
            continue
        for number, statement in enumerate(migration.statements(values), 1):
            try:
                client.command(statement)
            except Exception as exc:
                raise MigrationError(f"migration {migration.id}, statement {number} failed: {exc}") from exc
        client.insert(f"{db}.schema_migrations", [[migration.id, migration.checksum]], column_names=["id", "checksum"])
        log.info("migration applied", extra={"migration": migration.id})
        applied.append(migration.id)
    _apply_ttls(client, settings)
    return applied


def _apply_ttls(client: Any, settings: Settings) -> None:
    db = _quote(settings.clickhouse_database)
    rows = client.query(
        "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
        parameters={"db": settings.clickhouse_database},
    ).result_rows
    engines = dict(rows)
    for table, (expression, setting) in TTLS.items():
        days = getattr(settings, setting)
        if table in engines and f"toIntervalDay({days})" not in engines[table]:
            # Old rows are dropped by the next merges; no mutation rewriting every part right now.
            client.command(
                f"ALTER TABLE {db}.{_quote(table)} MODIFY TTL {expression.format(days=days)}",
                settings={"materialize_ttl_after_modify": 0},
            )
            log.info("retention changed", extra={"table": table, "days": days})
