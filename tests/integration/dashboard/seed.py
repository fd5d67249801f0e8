"""Realistic classified documents inserted straight into ClickHouse, with a few rows the tests look for by value.
Rows are warehouse.schema.document_row lists: find a column's value with ``COLUMNS.index(name)``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from finpulse.contracts import ClassifiedDocument, document_id
from warehouse.schema import DOCUMENT_COLUMNS, document_row

TOPICS = ("earnings", "mergers", "macro", "regulation", "markets")
SOURCES = ("reuters-rss", "sina-finance", "stocktwits", "xueqiu")
TICKERS = ("AAPL", "MSFT", "TSLA", "NVDA", "JPM", "0700.HK", "600519.SS")
HEADLINES = {
    "earnings": ("{t} beats quarterly revenue estimates", "{t} cuts full-year guidance", "{t} margins steady"),
    "mergers": ("{t} agrees to buy rival in $4bn deal", "{t} takeover talks collapse", "{t} weighs asset sale"),
    "macro": ("Fed holds rates, signals patience", "China PMI falls below 50", "Euro zone inflation eases"),
    "regulation": ("SEC opens probe into {t} disclosures", "{t} wins approval for new fund", "New rules on margin"),
    "markets": ("{t} shares jump in early trading", "{t} slides as investors sell", "Index flat before data"),
}
MODEL = "minilm-mt-2026.11.20"
COLUMNS = list(DOCUMENT_COLUMNS)


@dataclass(frozen=True)
class Marker:
    """A document the tests find again on the pages: a recent negative TSLA regulation story."""

    title: str = "Regulators raid Tesla Shanghai plant over battery fire reports"
    ticker: str = "TSLA"
    topic: str = "regulation"
    source: str = "reuters-rss"


MARKER = Marker()


def _probs(label: str, confidence: float, labels: tuple[str, ...]) -> dict[str, float]:
    rest = (1.0 - confidence) / (len(labels) - 1)
    return {name: round(confidence if name == label else rest, 4) for name in labels}


def _row(
    rng: random.Random,
    *,
    n: int,
    published: datetime,
    topic: str,
    sentiment: str,
    tickers: list[str],
    source: str,
    title: str,
    confidence: float,
) -> list[Any]:
    sentiment_probs = _probs(sentiment, confidence, ("negative", "neutral", "positive"))
    classified = published + timedelta(seconds=rng.uniform(0.5, 4.0))
    lang = "zh" if source in ("sina-finance", "xueqiu") and rng.random() < 0.5 else "en"
    doc = ClassifiedDocument(
        schema_version=1,  # no story fields: each seeded document is its own story (story_id = id, novelty 1)
        id=document_id(source, f"seed-{n}"),
        source=source,
        kind="news" if source in ("reuters-rss", "sina-finance") else "comment",
        lang=lang,
        title=title,
        body=f"{title}. Analysts said the move could weigh on sentiment in the coming sessions.",
        url=f"https://example.com/{source}/{n}",
        published_at=published,
        ingested_at=published + timedelta(seconds=0.3),
        tickers=tickers,
        meta={"seed": True},
        topic=topic,
        topic_score=round(rng.uniform(0.55, 0.98), 3),
        sentiment=sentiment,
        sentiment_score=round(sentiment_probs["positive"] - sentiment_probs["negative"], 4),
        topic_probs=_probs(topic, 0.8, TOPICS),
        sentiment_probs=sentiment_probs,
        model_version=MODEL,
        classified_at=classified,
    )
    return document_row(doc)


def documents(now: datetime | None = None, *, hours: int = 24, per_hour: int = 30, seed: int = 7) -> list[list[Any]]:
    """About ``hours * per_hour`` documents over the last ``hours``, with a negative TSLA surge in the last hour."""
    rng = random.Random(seed)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    rows: list[list[Any]] = []
    for n in range(hours * per_hour):
        published = now - timedelta(seconds=rng.uniform(60, hours * 3600))
        topic = rng.choice(TOPICS)
        ticker = rng.choice(TICKERS)
        sentiment = rng.choices(("negative", "neutral", "positive"), weights=(2, 5, 3))[0]
        title = rng.choice(HEADLINES[topic]).format(t=ticker)
        rows.append(
            _row(
                rng,
                n=n,
                published=published,
                topic=topic,
                sentiment=sentiment,
                tickers=[ticker] if "{t}" in title or rng.random() < 0.3 else [],
                source=rng.choice(SOURCES),
                title=title,
                confidence=rng.uniform(0.45, 0.97),
            )
        )
    for k in range(12):  # the surge: negative TSLA regulation news in the last 40 minutes
        rows.append(
            _row(
                rng,
                n=100_000 + k,
                published=now - timedelta(minutes=rng.uniform(2, 40)),
                topic="regulation",
                sentiment="negative",
                tickers=["TSLA"],
                source=rng.choice(SOURCES),
                title=f"Tesla faces new regulatory scrutiny ({k + 1})",
                confidence=rng.uniform(0.8, 0.95),
            )
        )
    rows.append(
        _row(
            rng,
            n=999_999,
            published=now - timedelta(minutes=1),
            topic=MARKER.topic,
            sentiment="negative",
            tickers=[MARKER.ticker],
            source=MARKER.source,
            title=MARKER.title,
            confidence=0.93,
        )
    )
    return rows


def insert(client: Any, rows: list[list[Any]]) -> None:
    client.insert("documents", rows, column_names=COLUMNS)
