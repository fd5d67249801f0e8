"""The ClickHouse sink: one insert per batch into `documents` (ReplacingMergeTree by id, so a redelivered
document collapses into one row and every dedup-safe query counts it once), then, with an entity stage, the
batch's entity rows into `document_entities` (stream/entities.py: the same collapse by (document_id, entity))."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from finpulse.settings import Settings
from stream.entities import ENTITY_COLUMNS, EntityStage
from stream.entities import TABLE as ENTITY_TABLE
from stream.sinks import RowsRejectedError, SinkUnavailableError
from warehouse.queries.corrections import overlay_columns, overlay_entity_columns
from warehouse.schema import DOCUMENT_COLUMNS

log = logging.getLogger(__name__)

TABLE = "documents"

# Errors about the rows themselves: the same insert would fail again, so the runner isolates the bad rows instead.
_DATA_ERRORS = frozenset(
    {
        "CANNOT_PARSE_TEXT",
        "CANNOT_PARSE_DATETIME",
        "CANNOT_PARSE_NUMBER",
        "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
        "TYPE_MISMATCH",
        "ILLEGAL_COLUMN",
        "INCORRECT_DATA",
        "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        "NO_SUCH_COLUMN_IN_TABLE",
        "THERE_IS_NO_COLUMN",
        "TOO_LARGE_STRING_SIZE",
        "VIOLATED_CONSTRAINT",  # a CHECK constraint of the table refuses the row
        "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO",  # a materialized view's throwIf() refuses it
        "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
    }
)


def _batch_shape_error(exc: Exception) -> bool:
    """TOO_MANY_PARTS for a batch spanning more monthly partitions than one insert may write (a replay of old
    documents): the content's fault, cured by splitting the batch, where the same code about merges falling behind
    is an overload to wait out."""
    return getattr(exc, "name", None) == "TOO_MANY_PARTS" and "partitions for single insert" in str(exc).lower()


class ClickHouseSink:
    """Thread-confined: the runner calls ``write`` from one sink thread, never from the event loop."""

    name = "clickhouse"

    def __init__(self, settings: Settings, table: str = TABLE, *, entities: EntityStage | None = None) -> None:
        self.settings = settings
        self.table = table
        self.entities = entities
        self._client: Any = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        from warehouse.client import create_client

        if self._client is None:
            # A short connect timeout: an endpoint that is down should be noticed fast and retried by the runner.
            self._client = create_client(self.settings, connect_timeout=2, send_receive_timeout=60)
        return self._client

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        """Insert every row (warehouse.schema.document_row) in one request; returns only once ClickHouse acknowledged
        it."""
        from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError, ProgrammingError

        if not rows:
            return
        with self._lock:
            try:
                client = self._connect()
                # A redelivered document keeps an analyst's corrected labels (warehouse/queries/corrections.py).
                columns, out = overlay_columns(client, DOCUMENT_COLUMNS, rows)
                client.insert(self.table, out, column_names=columns)
                if self.entities is not None:
                    self._write_entities(client, rows)
            except OperationalError as exc:
                self._reset()
                raise SinkUnavailableError(self.name, str(exc).splitlines()[0][:300]) from exc
            except (DataError, ProgrammingError, TypeError, ValueError) as exc:
                raise RowsRejectedError(f"ClickHouse insert refused: {str(exc)[:500]}") from exc
            except DatabaseError as exc:
                if getattr(exc, "name", None) in _DATA_ERRORS or _batch_shape_error(exc):
                    raise RowsRejectedError(f"ClickHouse insert refused: {str(exc)[:500]}") from exc
                self._reset()
                raise SinkUnavailableError(self.name, str(exc).splitlines()[0][:300]) from exc
            except OSError as exc:
                self._reset()
                raise SinkUnavailableError(self.name, str(exc)[:300]) from exc

    def _write_entities(self, client: Any, rows: Sequence[Sequence[Any]]) -> None:
        """The documents are stored: their entity rows. An outage raises (the caller maps it to
        SinkUnavailableError and the runner retries the batch, whose document rows collapse); entity rows ClickHouse
        refuses as data are skipped and counted, never the documents."""
        from clickhouse_connect.driver.exceptions import DatabaseError, DataError, ProgrammingError

        assert self.entities is not None
        entity_rows: Sequence[Sequence[Any]] = self.entities.rows(rows)
        if not entity_rows:
            return
        # A redelivered document keeps an analyst's corrected entity sentiment (warehouse/queries/corrections.py).
        columns, entity_rows = overlay_entity_columns(client, ENTITY_COLUMNS, entity_rows)
        try:
            client.insert(ENTITY_TABLE, entity_rows, column_names=columns)
        except (DataError, ProgrammingError, TypeError, ValueError, DatabaseError) as exc:
            refused = isinstance(exc, (DataError, ProgrammingError, TypeError, ValueError)) or (
                getattr(exc, "name", None) in _DATA_ERRORS
            )
            if not refused:
                raise
            documents = len({r[0] for r in entity_rows})
            self.entities.metrics.skipped.labels("refused").inc(documents)
            log.error("ClickHouse refused the entity rows of %d documents (documents stored): %s", documents,
                      str(exc)[:500])  # fmt: skip
            return
        self.entities.metrics.written.inc(len(entity_rows))

    def _reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # a broken client may fail to close; it is dropped either way
                log.debug("closing a failed ClickHouse client raised", exc_info=True)

    def close(self) -> None:
        with self._lock:
            self._reset()
