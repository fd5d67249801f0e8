"""The serving API the stream codes against: EntityPrediction, load_entity_engine(settings), engine.predict."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EntityPrediction:
    """Sentiment toward one entity of a document: sentiment in negative | neutral | positive,
    sentiment_score = P(positive) - P(negative) in [-1, 1], relevance in [0, 1] (is the document about it?)."""

    entity: str
    sentiment: str
    sentiment_score: float
    relevance: float


class EntityInputError(TypeError):
    """An item is not (text, list of entity strings); ``index`` says which one."""

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        super().__init__(f"items[{index}]: {reason}; expected (text: str, entities: list[str])")


def check_items(items: Any) -> list[tuple[str, list[str]]]:
    """Validated items: entities stripped, blanks dropped, case-insensitive duplicates dropped (first kept)."""
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise TypeError("predict takes a list of (text, entities) pairs")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise EntityInputError(i, f"got {type(item).__name__}")
        text, entities = item
        if not isinstance(text, str):
            raise EntityInputError(i, f"text is {type(text).__name__}")
        if isinstance(entities, (str, bytes)) or not isinstance(entities, Sequence):
            raise EntityInputError(i, f"entities is {type(entities).__name__}")
        seen: set[str] = set()
        clean = []
        for entity in entities:
            if not isinstance(entity, str):
                raise EntityInputError(i, f"an entity is {type(entity).__name__}")
            name = entity.strip()
            if name and name.casefold() not in seen:
                seen.add(name.casefold())
                clean.append(name)
        out.append((text, clean))
    return out


def load_entity_engine(settings: Any, device: str | None = None) -> Any:
    """The promoted entity model's engine, or None when no entity model is promoted yet.

    A promoted model that does not load raises classifier.model.ModelLoadError (a broken model is never
    silently replaced by nothing)."""
    from classifier.entity.linear import KIND, EntityEngine, entity_registry

    info = entity_registry(settings).promoted()
    if info is None:
        return None
    if info.kind != KIND:
        from classifier.model import ModelLoadError

        raise ModelLoadError(f"{info.path}: entity model kind {info.kind!r} is not served (expected {KIND!r})")
    engine = EntityEngine.load(info.path, max_per_doc=settings.entity_max_per_doc)
    log.info("entity model loaded", extra={"model": info.name, "max_per_doc": engine.max_per_doc})
    return engine
