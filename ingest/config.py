"""Typed, frozen configuration of the ingest worker, built once from Settings and an optional sources.toml."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from finpulse.settings import Settings
from ingest.stories import StoryConfig

Kind = Literal["news", "comment"]


class SourceConfigError(ValueError):
    """sources.toml is missing, malformed, or names a bad value; the message names the table and key."""


@dataclass(frozen=True)
class RssFeed:
    name: str
    url: str
    interval_s: float = 300.0
    timeout_s: float = 10.0
    kind: Kind = "news"
    backoff_max_s: float = 3600.0


@dataclass(frozen=True)
class Pagination:
    type: Literal["none", "cursor", "page"] = "none"
    param: str = "cursor"  # query parameter carrying the cursor or page number
    next_path: str = "next"  # cursor: where the next cursor is in the response body
    start: int = 1  # page: first page number
    size_param: str | None = None
    size: int | None = None
    max_pages: int = 100  # per poll, so one endless API cannot starve the rest


@dataclass(frozen=True)
class HttpJsonSource:
    name: str
    url: str
    items_path: str = ""  # dotted path to the list of items; "" = the body is the list
    mapping: dict[str, str] = field(default_factory=dict)  # contract field -> dotted path in an item
    pagination: Pagination = field(default_factory=Pagination)
    interval_s: float = 60.0
    timeout_s: float = 10.0
    rate_limit_per_s: float = 5.0
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    kind: Kind = "news"
    backoff_max_s: float = 3600.0


@dataclass(frozen=True)
class ReplaySource:
    name: str
    path: Path
    mapping: dict[str, str] = field(default_factory=dict)  # contract field -> column
    speed: float = 0.0  # 0 = as fast as possible; 600 = ten minutes of history per second
    max_gap_s: float | None = None  # cap one wait (history has nights and weekends)
    kind: Kind = "news"
    format: Literal["auto", "csv", "jsonl", "parquet"] = "auto"
    order: Literal["time", "file"] = "time"
    limit: int | None = None


@dataclass(frozen=True)
class GeneratorSource:
    name: str = "generator"
    rate: float = 5.0
    scenario: str = "default"
    seed: int = 7
    count: int | None = None  # stop after this many documents (load tests)


@dataclass(frozen=True)
class IngestConfig:
    """Everything the worker needs; the pipeline and sources never look at Settings or the environment."""

    topic: str
    kafka_servers: str
    compression: str
    host: str
    port: int
    state_dir: Path
    worker_id: str
    api_keys: frozenset[str]
    dedupe_window_s: float
    stories: StoryConfig
    max_title_chars: int
    max_body_chars: int
    max_fetch_bytes: int
    batch_size: int
    companies: dict[str, str]
    rss: tuple[RssFeed, ...] = ()
    http_json: tuple[HttpJsonSource, ...] = ()
    replay: tuple[ReplaySource, ...] = ()
    generator: tuple[GeneratorSource, ...] = ()
    push_enabled: bool = True
    push_max_records: int = 1000
    push_rate_per_s: float = 20.0
    push_burst: int = 40

    @property
    def source_names(self) -> list[str]:
        return [s.name for group in (self.rss, self.http_json, self.replay, self.generator) for s in group]


def state_dir(settings: Settings) -> Path:
    return (settings.ingest_state_dir or settings.data_dir / "ingest").expanduser().resolve()


def _load_companies(path: Path | None) -> dict[str, str]:
    from ingest.tickers import DEFAULT_COMPANIES

    companies = dict(DEFAULT_COMPANIES)
    if path is None:
        return companies
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceConfigError(f"companies file {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".json":
            import json

            extra = json.loads(text)
        else:
            extra = tomllib.loads(text)
    except ValueError as exc:
        raise SourceConfigError(f"companies file {path} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    for name, ticker in extra.items():
        if not isinstance(ticker, str) or not ticker.strip():
            raise SourceConfigError(f"companies file {path}: {name!r} must map to a ticker string")
        companies[name] = ticker.strip().upper()
    return companies


def _build(cls: type, table: str, raw: dict[str, Any], base_dir: Path) -> Any:
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SourceConfigError(f"[{table}] {raw.get('name', '?')}: unknown key(s) {', '.join(unknown)}")
    values = dict(raw)
    if cls is HttpJsonSource and isinstance(values.get("pagination"), dict):
        values["pagination"] = _build(Pagination, f"{table}.pagination", values["pagination"], base_dir)
    if cls is ReplaySource and "path" in values:
        path = Path(values["path"]).expanduser()
        values["path"] = path if path.is_absolute() else base_dir / path
        values.setdefault("name", f"replay:{values['path'].stem}")
    try:
        obj = cls(**values)
    except TypeError as exc:
        raise SourceConfigError(f"[{table}] {raw.get('name', '?')}: {exc}") from exc
    _validate(obj, table)
    return obj


def _validate(obj: Any, table: str) -> None:
    name = getattr(obj, "name", "?")
    for attr in ("interval_s", "timeout_s", "rate_limit_per_s", "rate"):
        value = getattr(obj, attr, None)
        if value is not None and (not isinstance(value, int | float) or value <= 0):
            raise SourceConfigError(f"[{table}] {name}: {attr} must be a number > 0, got {value!r}")
    if getattr(obj, "kind", "news") not in ("news", "comment"):
        raise SourceConfigError(f"[{table}] {name}: kind must be 'news' or 'comment'")
    url = getattr(obj, "url", None)
    if url is not None and not str(url).startswith(("http://", "https://")):
        raise SourceConfigError(f"[{table}] {name}: url must start with http:// or https://, got {url!r}")
    if isinstance(obj, ReplaySource) and obj.speed < 0:
        raise SourceConfigError(f"[{table}] {name}: speed must be >= 0")


def load_sources(path: Path) -> dict[str, Any]:
    """Parse sources.toml into typed source tuples: tables [[rss]], [[http_json]], [[replay]], [[generator]], [push]."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SourceConfigError(f"sources file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SourceConfigError(f"sources file {path} is not valid TOML: {exc}") from exc
    tables = {"rss": RssFeed, "http_json": HttpJsonSource, "replay": ReplaySource, "generator": GeneratorSource}
    unknown = sorted(set(raw) - set(tables) - {"push"})
    if unknown:
        raise SourceConfigError(f"sources file {path}: unknown table(s) {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for table, cls in tables.items():
        entries = raw.get(table, [])
        if not isinstance(entries, list):
            raise SourceConfigError(f"sources file {path}: use [[{table}]] (an array of tables)")
        out[table] = tuple(_build(cls, table, entry, path.parent) for entry in entries)
    out["push_enabled"] = bool(raw.get("push", {}).get("enabled", True))
    names = [s.name for group in tables for s in out[group]]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SourceConfigError(f"sources file {path}: source names must be unique, repeated: {', '.join(dupes)}")
    return out


def build_config(settings: Settings, sources_file: Path | None = None, **overrides: Any) -> IngestConfig:
    """The worker's config: settings + sources file (else the default scenario generator) + explicit overrides."""
    path = sources_file or settings.ingest_sources_file
    if path is not None:
        sources = load_sources(Path(path).expanduser())
    else:
        gen = GeneratorSource(rate=settings.ingest_generator_rate, scenario=settings.ingest_generator_scenario)
        sources = {"rss": (), "http_json": (), "replay": (), "generator": (gen,), "push_enabled": True}
    sdir = state_dir(settings)
    values: dict[str, Any] = dict(
        topic=settings.topic_raw,
        kafka_servers=settings.kafka_servers,
        compression=settings.ingest_compression,
        host=settings.ingest_host,
        port=settings.ingest_port,
        state_dir=sdir,
        # Stable across restarts of the worker on one state dir: recovery recognises its own messages by it.
        worker_id="w-" + hashlib.sha256(str(sdir).encode()).hexdigest()[:12],
        api_keys=frozenset(k.strip() for k in settings.ingest_api_keys.split(",") if k.strip()),
        dedupe_window_s=settings.ingest_dedupe_window_h * 3600.0,
        stories=StoryConfig(
            window_s=settings.story_window_h * 3600.0,
            decay=settings.story_novelty_decay,
            similarity=settings.story_similarity,
        ),
        max_title_chars=settings.ingest_max_title_chars,
        max_body_chars=settings.ingest_max_body_chars,
        max_fetch_bytes=settings.ingest_max_fetch_bytes,
        batch_size=settings.ingest_batch_size,
        push_max_records=settings.ingest_push_max_records,
        push_rate_per_s=settings.ingest_push_rate_per_s,
        push_burst=settings.ingest_push_burst,
        companies=_load_companies(settings.ingest_companies_file),
        **sources,
    )
    values.update(overrides)
    return IngestConfig(**values)
