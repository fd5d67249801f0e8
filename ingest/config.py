"""Typed, frozen configuration of the ingest worker, built once from Settings and an optional sources.toml."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finpulse.kafka_clients import Connection
from finpulse.settings import Settings
from finpulse.toml_config import load_toml
from ingest.sources.base import SourceConfig, SourceConfigError, from_table
from ingest.stories import StoryConfig

__all__ = ["IngestConfig", "SourceConfigError", "build_config", "load_sources", "state_dir"]


@dataclass(frozen=True)
class IngestConfig:
    """Everything the worker needs; the pipeline and sources never look at Settings or the environment."""

    topic: str
    kafka: Connection  # brokers and security, from the settings
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
    sources: tuple[SourceConfig, ...] = ()  # each a registered kind's Config (ingest/sources/<kind>.py)
    push_enabled: bool = True
    push_max_records: int = 1000
    push_rate_per_s: float = 20.0
    push_burst: int = 40

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]


def state_dir(settings: Settings) -> Path:
    return (settings.ingest_state_dir or settings.data_dir / "ingest").expanduser().resolve()


def _load_companies(path: Path | None) -> dict[str, str]:
    from ingest.tickers import DEFAULT_COMPANIES

    companies = dict(DEFAULT_COMPANIES)
    if path is None:
        return companies
    if path.suffix != ".json":
        extra = load_toml(path, error=SourceConfigError, what="companies file")
    else:
        import json

        try:
            extra = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SourceConfigError(f"companies file {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise SourceConfigError(f"companies file {path} is not valid JSON: {exc}") from exc
        if not isinstance(extra, dict):
            raise SourceConfigError(f"companies file {path}: expected an object of name -> ticker")
    for name, ticker in extra.items():
        if not isinstance(ticker, str) or not ticker.strip():
            raise SourceConfigError(f"companies file {path}: {name!r} must map to a ticker string")
        companies[name] = ticker.strip().upper()
    return companies


def load_sources(path: Path) -> dict[str, Any]:
    """Parse sources.toml: one array of tables per source kind (``[[rss]]``, ``[[http_json]]``, ``[[replay]]``,
    ``[[generator]]``, or any kind registered in ingest/sources/), and ``[push]``. Returns the IngestConfig
    fields it sets: ``sources`` (in file order) and ``push_enabled``."""
    from ingest.sources import kinds

    raw = load_toml(path, error=SourceConfigError, what="sources file")
    known = kinds()
    unknown = sorted(set(raw) - set(known) - {"push"})
    if unknown:
        tables = ", ".join(f"[[{name}]]" for name in sorted(known))
        raise SourceConfigError(f"sources file {path}: unknown table(s) {', '.join(unknown)}; known: {tables}, [push]")
    sources: list[SourceConfig] = []
    for table, entries in raw.items():
        if table == "push":
            continue
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise SourceConfigError(f"sources file {path}: use [[{table}]] (an array of tables)")
        sources += [from_table(known[table].config, table, entry, path.parent) for entry in entries]
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SourceConfigError(f"sources file {path}: source names must be unique, repeated: {', '.join(dupes)}")
    return {"sources": tuple(sources), "push_enabled": bool(raw.get("push", {}).get("enabled", True))}


def build_config(settings: Settings, sources_file: Path | None = None, **overrides: Any) -> IngestConfig:
    """The worker's config: settings + sources file (else the default scenario generator) + explicit overrides."""
    path = sources_file or settings.ingest_sources_file
    if path is not None:
        sources = load_sources(Path(path).expanduser())
    else:
        from ingest.sources import generator

        gen = generator.Config(rate=settings.ingest_generator_rate, scenario=settings.ingest_generator_scenario)
        sources = {"sources": (gen,), "push_enabled": True}
    sdir = state_dir(settings)
    values: dict[str, Any] = dict(
        topic=settings.topic_raw,
        kafka=Connection.of(settings),
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
