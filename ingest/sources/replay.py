"""File replay for backtests and demos: CSV, JSONL or Parquet, a column mapping, and a speed factor that keeps
the original time gaps (speed 600 = ten minutes of history per second; 0 = as fast as possible). The offset in
replay order is checkpointed after acknowledgement, so a restarted replay continues where it stopped. Each run
counts what it read and what became of it (accepted, duplicate, rejected) for the final line the user sees."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from finpulse.timeutil import utcnow
from ingest.item import Item, Rejected
from ingest.pipeline import Stopped
from ingest.sources import register
from ingest.sources.base import Kind, SourceConfig, SourceConfigError, SourceContext
from ingest.timestamps import parse_timestamp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(SourceConfig):
    """One file: a ``[[replay]]`` table, or what `finpulse ingest replay` was given."""

    name: str
    path: Path
    mapping: dict[str, str] = field(default_factory=dict)  # contract field -> column
    speed: float = 0.0  # 0 = as fast as possible; 600 = ten minutes of history per second
    max_gap_s: float | None = None  # cap one wait (history has nights and weekends)
    kind: Kind = "news"
    format: Literal["auto", "csv", "jsonl", "parquet"] = "auto"
    order: Literal["time", "file"] = "time"
    limit: int | None = None

    @classmethod
    def prepare(cls, values: dict[str, Any], table: str, base_dir: Path) -> dict[str, Any]:
        if "path" in values:  # relative to the sources file; the name defaults to the file's
            path = Path(values["path"]).expanduser()
            values["path"] = path if path.is_absolute() else base_dir / path
            values.setdefault("name", f"replay:{values['path'].stem}")
        return values

    def validate(self, table: str) -> None:
        super().validate(table)
        if self.speed < 0:
            raise SourceConfigError(f"[{table}] {self.name}: speed must be >= 0")


# Contract field -> column names tried when the mapping does not name one.
DEFAULT_COLUMNS = {
    "source_id": ("id", "source_id", "doc_id"),
    "title": ("title", "headline"),
    "body": ("body", "text", "content", "summary"),
    "url": ("url", "link"),
    "author": ("author", "user", "username"),
    "published_at": ("published_at", "date", "time", "timestamp", "datetime", "created_at"),
    "tickers": ("tickers", "ticker", "symbol", "symbols", "stock"),
    "kind": ("kind",),
}


class ReplayError(ValueError):
    """The file cannot be replayed (missing, unknown format, mapping names absent columns)."""


@dataclass(frozen=True)
class Row:
    line: int  # 1-based record number in the file
    values: dict[str, Any] | None  # None: the record could not be read
    error: str = ""


def _format(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    suffixes = "".join(path.suffixes).lower()
    for fmt, ends in (
        ("parquet", (".parquet", ".pq")),
        ("jsonl", (".jsonl", ".ndjson", ".json")),
        ("csv", (".csv", ".tsv", ".csv.gz")),
    ):
        if suffixes.endswith(ends):
            return fmt
    raise ReplayError(f"{path}: cannot tell the format from the name; pass format csv, jsonl or parquet")


def read_rows(path: Path, fmt: str) -> Iterator[Row]:
    if fmt == "csv":
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
            dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
            for i, rec in enumerate(csv.DictReader(fh, dialect=dialect), start=1):
                yield Row(i, {k: v for k, v in rec.items() if k is not None})
    elif fmt == "jsonl":
        with path.open("rb") as fh:
            for i, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    yield Row(i, None, f"bad_json: {exc}")
                    continue
                yield Row(i, value) if isinstance(value, dict) else Row(i, None, "not_object")
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        for i, rec in enumerate(table.to_pylist(), start=1):
            yield Row(i, rec)
    else:
        raise ReplayError(f"unknown format {fmt!r}")


def inspect(cfg: Config, sample: int = 100) -> dict[str, str]:
    """The column mapping, from the file's first records only: a cheap check, before a replay starts, that the
    file exists, has a known format and a text column. Raises ReplayError with the reason."""
    if not cfg.path.is_file():
        raise ReplayError(f"{cfg.path} does not exist or is not a file")
    fmt = _format(cfg.path, cfg.format)
    header: set[str] = set()
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            header = set(pq.read_schema(cfg.path).names)
        else:
            bad = 0
            for n, row in enumerate(read_rows(cfg.path, fmt)):
                if n >= sample:
                    break
                header |= set(row.values or {})
                bad += row.values is None
            if fmt == "jsonl" and bad and not header:
                raise ReplayError(f"{cfg.path}: not JSON lines (no JSON object in the first {sample} lines)")
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise ReplayError(f"{cfg.path}: cannot be read as {fmt}: {exc}") from exc
    except ReplayError:
        raise
    except Exception as exc:  # pyarrow's errors for a file that is not Parquet
        raise ReplayError(f"{cfg.path}: cannot be read as {fmt}: {exc}") from exc
    if not header:
        raise ReplayError(f"{cfg.path}: no records (empty, or not {fmt})")
    return _columns(cfg, header)


def _columns(cfg: Config, header: set[str]) -> dict[str, str]:
    mapping = {("source_id" if k == "id" else k): v for k, v in cfg.mapping.items()}
    missing = sorted(f"{k}={v}" for k, v in mapping.items() if v not in header)
    if missing:
        raise ReplayError(f"{cfg.path}: mapped column(s) not in the file: {', '.join(missing)} (has {sorted(header)})")
    for field_name, candidates in DEFAULT_COLUMNS.items():
        if field_name not in mapping:
            for col in candidates:
                if col in header:
                    mapping[field_name] = col
                    break
    if "title" not in mapping and "body" not in mapping:
        raise ReplayError(f"{cfg.path}: no text column; map title= or body= to one of {sorted(header)}")
    return mapping


def file_tag(path: Path) -> str:
    """Identifies the file's content: a replay position belongs to one version of one file."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        h.update(fh.read(1 << 20))
    h.update(str(path.stat().st_size).encode())
    return h.hexdigest()[:16]


@dataclass
class ReplayCounts:
    """One run of a replay: rows of the file (after --limit), the row it started at, and what became of each."""

    rows: int = 0
    start: int = 0
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0

    def add(self, status: str, n: int = 1) -> None:
        if status == "accepted":
            self.accepted += n
        elif status == "duplicate":
            self.duplicates += n
        else:
            self.rejected += n

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def older_than(cfg: Config, cutoff: float, *, shift_to_now: bool = False) -> tuple[int, int]:
    """(rows with a time before ``cutoff``, as replayed: shifted or not; rows) of the file: reads it once, to warn
    before a replay whose rows the warehouse's retention would drop. ReplayError as for a replay."""
    source = Source(cfg, shift_to_now=shift_to_now)
    rows, _, times = source._load()
    return sum(1 for t in times if t is not None and t + source._shift_s < cutoff), len(rows)


class Source:
    def __init__(
        self,
        cfg: Config,
        batch_size: int = 500,
        *,
        rerun_finished: bool = False,
        shift_to_now: bool = False,
        on_progress: Callable[[ReplayCounts], None] | None = None,
    ) -> None:
        """rerun_finished: a file replayed to its end is read again from its first row (an explicit
        `finpulse ingest replay`; the dedupe memory drops what was produced before). A configured source keeps
        the default: finished stays finished across restarts. shift_to_now: every time moves by one offset so
        that the newest row is now (gaps kept; the file's own time goes to meta.original_published_at), for
        demos on a live dashboard: history older than the documents' retention is dropped by ClickHouse."""
        self.cfg = cfg
        self.name = cfg.name
        self.batch_size = batch_size
        self.rerun_finished = rerun_finished
        self.shift_to_now = shift_to_now
        self._shift_s = 0.0
        self.on_progress = on_progress
        self.done = False
        self.error: str | None = None  # why the file could not be replayed
        self.counts = ReplayCounts()

    def _load(self) -> tuple[list[Row], dict[str, str], list[float | None]]:
        if not self.cfg.path.is_file():
            raise ReplayError(f"{self.cfg.path} does not exist")
        rows = list(read_rows(self.cfg.path, _format(self.cfg.path, self.cfg.format)))
        header: set[str] = set()
        for row in rows[:100]:
            header |= set(row.values or {})
        mapping = _columns(self.cfg, header)
        now = utcnow()
        times: list[float | None] = []
        for row in rows:
            value = (row.values or {}).get(mapping.get("published_at", ""))
            try:
                times.append(parse_timestamp(value, now).timestamp() if value not in (None, "") else None)
            except Rejected:
                times.append(None)
        if self.cfg.order == "time":
            # Stable sort; a row without a usable time keeps its place after the row before it.
            keys, last = [], float("-inf")
            for t in times:
                last = t if t is not None else last
                keys.append(last)
            order = sorted(range(len(rows)), key=lambda i: keys[i])
            rows = [rows[i] for i in order]
            times = [times[i] for i in order]
        if self.cfg.limit is not None:
            rows, times = rows[: self.cfg.limit], times[: self.cfg.limit]
        known = [t for t in times if t is not None]
        if self.shift_to_now and known:
            self._shift_s = now.timestamp() - max(known)
        return rows, mapping, times

    def _item(self, row: Row, mapping: dict[str, str], tag: str, t: float | None = None) -> Item:
        values = row.values or {}
        item = Item(meta={"file_row": row.line})
        for field_name, col in mapping.items():
            value = values.get(col)
            if isinstance(value, datetime | str | int | float | list) or value is None:
                setattr(item, field_name, value)
            else:
                setattr(item, field_name, str(value))
        if item.source_id in (None, ""):
            item.source_id = f"{tag}:{row.line}"
        if self._shift_s and t is not None:
            item.meta["original_published_at"] = datetime.fromtimestamp(t, UTC).isoformat()
            item.published_at = datetime.fromtimestamp(t + self._shift_s, UTC)
        return item

    def _schedule(self, times: list[float | None], start: int) -> list[float]:
        """Seconds after the (re)start at which each row from `start` is due."""
        due, offset, prev = [], 0.0, None
        for t in times[start:]:
            if self.cfg.speed > 0 and t is not None and prev is not None and t > prev:
                gap = t - prev
                if self.cfg.max_gap_s is not None:
                    gap = min(gap, self.cfg.max_gap_s)
                offset += gap / self.cfg.speed
            prev = t if t is not None else prev
            due.append(offset)
        return due

    def run(self, ctx: SourceContext) -> None:
        try:
            rows, mapping, times = self._load()
        except (ReplayError, OSError, csv.Error) as exc:
            ctx.error(self.name, "bad_file", str(exc))
            self.error = str(exc)
            self.done = True
            return
        tag = file_tag(self.cfg.path)
        position = ctx.position(self.name) or {}
        start = int(position.get("offset", 0)) if position.get("file") == tag else 0
        if position and position.get("file") != tag:
            log.warning("%s: %s changed since the last replay; starting from the first row", self.name, self.cfg.path)
        if self.rerun_finished and start >= len(rows):
            start = 0
        self.counts = ReplayCounts(rows=len(rows), start=start)
        due = self._schedule(times, start)
        t0 = time.monotonic()
        i = start
        log.info("%s: replaying %d of %d rows from %s", self.name, len(rows) - start, len(rows), self.cfg.path)
        while i < len(rows):
            if ctx.stopping.is_set():  # checked per batch: at --speed 0 nothing below waits
                return
            wait = due[i - start] - (time.monotonic() - t0)
            if wait > 0 and not ctx.sleep(min(wait, 1.0)):
                return
            if wait > 1.0:
                continue
            now = time.monotonic() - t0
            j = i
            while j < len(rows) and j - i < self.batch_size and due[j - start] <= now:
                j += 1
            j = max(j, i + 1)
            batch = rows[i:j]
            for row in batch:
                if row.values is None:
                    ctx.metrics.rejected.labels(self.name, row.error.split(":")[0]).inc()
                    log.info("%s: row %d skipped: %s", self.name, row.line, row.error)
            items = [self._item(rows[k], mapping, tag, times[k]) for k in range(i, j) if rows[k].values is not None]
            try:
                results = ctx.pipeline.process(self.name, self.cfg.kind, items, {"file": tag, "offset": j})
            except Stopped:
                return
            ctx.ok(self.name)
            self.counts.read += len(batch)
            self.counts.add("rejected", len(batch) - len(items))
            for result in results:
                self.counts.add(result.status)
            if self.on_progress is not None:
                self.on_progress(self.counts)
            if i == start:
                # The schedule runs from the first acknowledged batch: rows due while the worker recovered and
                # connected to Kafka would otherwise go out in one burst, losing the file's first gaps.
                t0 = time.monotonic() - due[j - 1 - start]
            i = j
        self.done = True
        log.info("%s: replay finished (%d rows)", self.name, len(rows))


register("replay", Config, Source)
