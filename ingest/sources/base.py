"""What every source kind shares: its Config's base (read from its sources.toml table and checked), the Source
protocol, and the context each source runs with (the pipeline to submit to, its stored position, metrics, a stop
signal)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

if TYPE_CHECKING:  # the config side (ingest.config, sources.toml) must not load Kafka, SQLite or HTTP clients
    from ingest.metrics import IngestMetrics
    from ingest.pipeline import Pipeline
    from ingest.store import StateStore

log = logging.getLogger("ingest.sources")

Kind = Literal["news", "comment"]  # what a source's documents are
T = TypeVar("T")


class SourceConfigError(ValueError):
    """sources.toml is missing, malformed, or names a bad value; the message names the table and key."""


@dataclass
class SourceContext:
    pipeline: Pipeline
    store: StateStore
    metrics: IngestMetrics
    stopping: threading.Event
    max_fetch_bytes: int

    def position(self, source: str) -> Any:
        return self.store.position(source)

    def sleep(self, seconds: float) -> bool:
        """Wait; False when the worker is stopping."""
        return not self.stopping.wait(max(0.0, seconds))

    def error(self, source: str, reason: str, detail: str, retry_in: float | None = None) -> None:
        self.metrics.errors.labels(source, reason).inc()
        if retry_in is None:
            log.warning("%s: %s: %s", source, reason, detail, extra={"source": source, "reason": reason})
        else:
            log.warning(
                "%s: %s: %s; next attempt in %.0fs",
                source,
                reason,
                detail,
                retry_in,
                extra={"source": source, "reason": reason},
            )

    def ok(self, source: str) -> None:
        self.metrics.last_success.labels(source).set(time.time())


class Source(Protocol):
    name: str

    def run(self, ctx: SourceContext) -> None:
        """Fetch and submit until ctx.stopping is set (or, for finite sources, until done)."""


class SourceConfig:
    """Base of every kind's ``Config`` (a frozen dataclass with a unique ``name``), built from one entry of its
    ``[[<kind>]]`` table. The checks here apply to every kind by field name; a kind adds its own in ``prepare``
    (before the dataclass is built) and ``validate`` (after)."""

    name: str

    @classmethod
    def prepare(cls, values: dict[str, Any], table: str, base_dir: Path) -> dict[str, Any]:
        """The table's values as the dataclass takes them (nested tables, paths relative to the sources file)."""
        return values

    def validate(self, table: str) -> None:
        """SourceConfigError naming the table and source when a value is out of range."""
        for attr in ("interval_s", "timeout_s", "rate_limit_per_s", "rate"):
            value = getattr(self, attr, None)
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise SourceConfigError(f"[{table}] {self.name}: {attr} must be a number > 0, got {value!r}")
        if getattr(self, "kind", "news") not in ("news", "comment"):
            raise SourceConfigError(f"[{table}] {self.name}: kind must be 'news' or 'comment'")
        url = getattr(self, "url", None)
        if url is not None and not str(url).startswith(("http://", "https://")):
            raise SourceConfigError(f"[{table}] {self.name}: url must start with http:// or https://, got {url!r}")


def from_table(cls: type[T], table: str, raw: dict[str, Any], base_dir: Path) -> T:
    """A dataclass from one TOML table: unknown keys and wrong arguments are SourceConfigErrors naming the table
    (and the source, when the table has a name); a SourceConfig also gets its prepare and validate steps."""
    if not is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    unknown = sorted(set(raw) - {f.name for f in fields(cls)})
    if unknown:
        raise SourceConfigError(f"[{table}] {raw.get('name', '?')}: unknown key(s) {', '.join(unknown)}")
    values = dict(raw)
    if issubclass(cls, SourceConfig):
        values = cls.prepare(values, table, base_dir)
    try:
        obj = cls(**values)
    except TypeError as exc:
        raise SourceConfigError(f"[{table}] {raw.get('name', '?')}: {exc}") from exc
    if isinstance(obj, SourceConfig):
        obj.validate(table)
    return obj


def backoff_s(interval_s: float, failures: int, cap_s: float) -> float:
    """Next poll after `failures` failures in a row: the interval, doubled per failure, capped."""
    return min(interval_s * (2 ** max(0, failures)), cap_s) if failures else interval_s
