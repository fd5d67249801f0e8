"""A deterministic entity engine for tests: the sentiment toward an entity is read from the words right after its
mention ("Globex warns" -> negative), so tests know the answer without training a model."""

from __future__ import annotations

import re
from collections.abc import Sequence

from classifier.entity import EntityPrediction

NEGATIVE = ("warns", "plunges", "misses", "cuts", "probe")
POSITIVE = ("beats", "soars", "raises", "record")


class ClauseEngine:
    """Sentiment from the clause that follows the entity's mention; relevance 0.9 for the first entity named,
    0.6 for the others (a mentioned entity that the text does not name gets neutral, relevance 0.1)."""

    def __init__(self, version: str = "entity-test@1", languages: tuple[str, ...] = ("en",)) -> None:
        self.model_version = version
        self.languages = languages
        self.calls: list[list[tuple[str, list[str]]]] = []

    def predict(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[EntityPrediction]]:
        self.calls.append([(t, list(e)) for t, e in items])
        out = []
        for text, entities in items:
            preds = []
            for i, entity in enumerate(entities):
                m = re.search(re.escape(entity) + r"\W+(\w+)", text, re.IGNORECASE)
                word = m.group(1).lower() if m else ""
                sentiment = "negative" if word in NEGATIVE else "positive" if word in POSITIVE else "neutral"
                score = {"negative": -0.8, "neutral": 0.0, "positive": 0.8}[sentiment]
                relevance = 0.1 if m is None else 0.9 if i == 0 else 0.6
                preds.append(EntityPrediction(entity, sentiment, score, relevance))
            out.append(sorted(preds, key=lambda p: -p.relevance))
        return out


class BrokenEngine:
    model_version = "entity-broken@1"
    languages = ("en",)

    def predict(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[EntityPrediction]]:
        raise RuntimeError("entity model exploded")
