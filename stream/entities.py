"""Entity-level sentiment in the stream: for each stored document with tickers, the sentiment toward each of them
(at most ``settings.entity_max_per_doc``, the most relevant first) from the promoted entity model, written to
``document_entities`` (migration 0040) in the same sink call as the document rows.

Semantics, the same as the documents insert: the rows are built from the document rows (deterministic for one
model), so a redelivered batch writes the same (document_id, entity) keys again and they collapse under the
ReplacingMergeTree. An outage of ClickHouse while writing them raises SinkUnavailableError, and the runner retries
the whole batch (its document rows are identical and collapse too). Anything else that goes wrong with entities -
no entity model promoted, the engine raising, ClickHouse refusing the entity rows as data - never loses or wedges a
document: the documents are stored, the entity rows are skipped, logged with the reason and counted
(``finpulse_stream_entity_rows_skipped{reason}``).

A newly promoted entity model is picked up like the document model (stream/model.py): the registry is polled every
``stream_model_poll_s`` and the new engine is swapped in between batches; a batch is scored by one entity model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from finpulse.contracts import document_text
from warehouse.schema import DOCUMENT_COLUMNS as COLUMNS

log = logging.getLogger(__name__)

TABLE = "document_entities"
ENTITY_COLUMNS: tuple[str, ...] = (
    "document_id", "entity", "rank", "published_at", "source", "lang", "sentiment", "sentiment_score", "relevance",
    "model_version", "classified_at",
)  # fmt: skip
"""The columns the stream writes; label_source keeps its DEFAULT 'model' (analyst corrections write 'analyst')."""

SKIP_REASONS = ("no_model", "model_unloadable", "language", "engine_error", "refused")
_INFERENCE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_AT = {name: i for i, name in enumerate(COLUMNS)}  # document row column -> index


def companies_by_ticker(companies: Mapping[str, str]) -> dict[str, list[str]]:
    """ticker -> the company names that map to it (the ingest dictionary: name as in text -> ticker)."""
    out: dict[str, list[str]] = {}
    for name, ticker in companies.items():
        out.setdefault(ticker, []).append(name)
    return out


def load_companies(settings: Any) -> dict[str, str]:
    """The dictionary ingest uses (built-in plus settings.ingest_companies_file); the built-in one if that file
    cannot be read (the names only help find a ticker's mention, so entities still get scored)."""
    from ingest.tickers import DEFAULT_COMPANIES

    try:
        from ingest.config import _load_companies

        return _load_companies(getattr(settings, "ingest_companies_file", None))
    except Exception as exc:  # a broken companies file is ingest's error to report; here it only costs mentions
        log.warning("companies file unreadable, entity mentions use the built-in names: %s", exc)
        return dict(DEFAULT_COMPANIES)


def mention_for(ticker: str, text: str, entities: Sequence[str], names: Mapping[str, Sequence[str]]) -> str:
    """The string the model should find in the text for ``ticker``: the ticker if the text has it (cashtags,
    'Globex'), else a company name of that ticker that the text names (ingest's entities first, e.g. 'Apple' for
    AAPL), else the ticker itself."""
    from classifier.entity.features import raw_spans

    if raw_spans(text, ticker):
        return ticker
    own = names.get(ticker, ())
    for name in [*(e for e in entities if e in own), *own]:
        if raw_spans(text, name):
            return name
    return ticker


def targets(
    tickers: Sequence[str], entities: Sequence[str], text: str, names: Mapping[str, Sequence[str]], limit: int
) -> list[tuple[str, str]]:
    """(key, mention) pairs to score, at most ``limit``, in ingest's relevance order: every ticker (key = the
    ticker, what ticker rules and rankings join on), then entity names that map to no ticker of the document."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    covered: set[str] = set()
    for ticker in tickers:
        key = ticker.strip()
        if not key or key.casefold() in seen:
            continue
        mention = mention_for(key, text, entities, names)
        seen.add(key.casefold())
        seen.add(mention.casefold())
        covered.update(names.get(key, ()))
        out.append((key, mention))
    for name in entities:
        key = name.strip()
        if key and key not in covered and key.casefold() not in seen:
            seen.add(key.casefold())
            out.append((key, key))
    return out[:limit]


class EntityMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.registry = r
        self.written = Counter("finpulse_stream_entity_rows", "Entity rows written to document_entities", registry=r)
        self.skipped = Counter(
            "finpulse_stream_entity_rows_skipped",
            "Documents whose entity rows were skipped, by reason (the documents themselves are stored)",
            ["reason"],
            registry=r,
        )
        self.inference = Histogram(
            "finpulse_stream_entity_inference_seconds",
            "Entity model time per batch",
            buckets=_INFERENCE_BUCKETS,
            registry=r,
        )
        self.model_info = Gauge(
            "finpulse_stream_entity_model_info", "The entity model version served (value 1)", ["model_version"],
            registry=r,
        )  # fmt: skip
        self.swaps = Counter("finpulse_stream_entity_model_swaps", "Newly promoted entity models picked up", registry=r)
        for reason in SKIP_REASONS:
            self.skipped.labels(reason)


def _promoted_version(settings: Any) -> str | None:
    from classifier.entity.linear import entity_registry

    info = entity_registry(settings).promoted()
    return info.model_version if info is not None else None


def _load(settings: Any) -> Any:
    from classifier.entity import load_entity_engine

    return load_entity_engine(settings)


class EntityStage:
    """The entity engine served now and the rows it gives; called from the ClickHouse sink's thread.

    ``engine`` injects a fixed engine (tests, benches): then the registry is never polled."""

    def __init__(
        self,
        settings: Any,
        registry: CollectorRegistry | None = None,
        *,
        engine: Any = None,
        probe: Callable[[Any], str | None] = _promoted_version,
        loader: Callable[[Any], Any] = _load,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.metrics = EntityMetrics(registry)
        self.max_per_doc = int(settings.entity_max_per_doc)
        self._engine = engine
        self._fixed = engine is not None
        self._probe = probe
        self._loader = loader
        self._clock = clock
        self._polled_at: float | None = None
        self._failed_version: str | None = None
        self._lock = threading.Lock()
        self._names = companies_by_ticker(load_companies(settings))
        if engine is not None:
            self.metrics.model_info.labels(str(getattr(engine, "model_version", "?"))).set(1)

    @property
    def model_version(self) -> str | None:
        return getattr(self._engine, "model_version", None) if self._engine is not None else None

    def engine(self) -> Any:
        """The engine for the next batch: polls the registry at most every stream_model_poll_s."""
        if self._fixed:
            return self._engine
        now = self._clock()
        with self._lock:
            if self._polled_at is None or now - self._polled_at >= float(self.settings.stream_model_poll_s):
                self._polled_at = now
                self.refresh()
            return self._engine

    def refresh(self) -> bool:
        """Load the promoted entity model if it is not the one served; True when one was swapped in. A model that
        does not load is logged once and the one served (if any) stays."""
        try:
            version = self._probe(self.settings)
        except Exception as exc:  # an unreadable registry: keep serving what we have
            log.error("entity model registry unreadable: %s", exc)
            return False
        if version is None or version == self.model_version or version == self._failed_version:
            return False
        try:
            engine = self._loader(self.settings)
        except Exception as exc:
            self._failed_version = version
            log.error("entity model %s does not load; entity rows %s: %s", version,
                      "keep the previous model" if self._engine is not None else "are skipped", exc)  # fmt: skip
            return False
        if engine is None:
            return False
        old, self._engine = self._engine, engine
        self._failed_version = None
        if old is not None:
            self.metrics.swaps.inc()
        self.metrics.model_info.clear()
        self.metrics.model_info.labels(str(engine.model_version)).set(1)
        log.info("serving entity model %s", engine.model_version,
                 extra={"previous": getattr(old, "model_version", None)})  # fmt: skip
        return True

    def rows(self, doc_rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
        """The document_entities rows of these document rows (COLUMNS order). Never raises: what cannot be scored
        is skipped, counted and logged."""
        wanted: list[tuple[Sequence[Any], str, list[tuple[str, str]]]] = []
        for row in doc_rows:
            text = document_text(str(row[_AT["title"]] or ""), str(row[_AT["body"]] or ""))
            found = targets(list(row[_AT["tickers"]] or []), list(row[_AT["entities"]] or []), text, self._names,
                            self.max_per_doc)  # fmt: skip
            if found:
                wanted.append((row, text, found))
        if not wanted:
            return []
        engine = self.engine()
        if engine is None:
            reason = "model_unloadable" if self._failed_version else "no_model"
            self.metrics.skipped.labels(reason).inc(len(wanted))
            return []
        languages = tuple(getattr(engine, "languages", ()) or ())
        if languages:
            unsupported = [w for w in wanted if w[0][_AT["lang"]] not in languages]
            if unsupported:
                self.metrics.skipped.labels("language").inc(len(unsupported))
                wanted = [w for w in wanted if w[0][_AT["lang"]] in languages]
        if not wanted:
            return []
        started = time.perf_counter()
        try:
            predictions = self._predict(engine, wanted)
        except Exception as exc:
            self.metrics.skipped.labels("engine_error").inc(len(wanted))
            log.error("entity model raised %s: entity rows of %d documents skipped (documents stored): %s",
                      type(exc).__name__, len(wanted), exc, extra={"entity_model": self.model_version})  # fmt: skip
            return []
        finally:
            self.metrics.inference.observe(time.perf_counter() - started)
        version = str(engine.model_version)
        out: list[list[Any]] = []
        for (row, _, found), preds in zip(wanted, predictions, strict=True):
            key_of = {mention.casefold(): key for key, mention in found}
            for rank, p in enumerate(preds):
                key = key_of.get(str(p.entity).strip().casefold())
                if key is None:
                    continue  # the engine answered about a name it was not asked about
                out.append([
                    row[_AT["id"]], key, min(rank, 255), row[_AT["published_at"]], row[_AT["source"]],
                    row[_AT["lang"]], str(p.sentiment), float(p.sentiment_score), float(p.relevance), version,
                    row[_AT["classified_at"]],
                ])  # fmt: skip
        return out

    @staticmethod
    def _predict(engine: Any, wanted: list[tuple[Sequence[Any], str, list[tuple[str, str]]]]) -> list[list[Any]]:
        items = [(text, [mention for _, mention in found]) for _, text, found in wanted]
        predictions = engine.predict(items)
        if len(predictions) != len(items):
            raise ValueError(f"the engine answered {len(predictions)} documents for {len(items)}")
        return list(predictions)
