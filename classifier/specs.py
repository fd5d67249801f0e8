"""Label spaces and the built-in data set specs (what file, which columns, how labels map onto ours)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from finpulse.contracts import SENTIMENTS

Task = Literal["sentiment", "topic"]
TASKS: tuple[Task, ...] = ("sentiment", "topic")

# Twitter Financial News Topic, in the order of the public release's label ids 0..19.
TOPICS: tuple[str, ...] = (
    "Analyst Update",
    "Fed | Central Banks",
    "Company | Product News",
    "Treasuries | Corporate Debt",
    "Dividend",
    "Earnings",
    "Energy | Oil",
    "Financials",
    "Currencies",
    "General News | Opinion",
    "Gold | Metals | Materials",
    "IPO",
    "Legal | Regulation",
    "M&A | Investments",
    "Macro",
    "Markets",
    "Politics",
    "Personnel Change",
    "Stock Commentary",
    "Stock Movement",
)

# The product's one sentiment vocabulary: bearish = negative, bullish = positive.
SENTIMENT_ALIASES: dict[str, str] = {
    "negative": "negative",
    "neg": "negative",
    "bearish": "negative",
    "neutral": "neutral",
    "neu": "neutral",
    "positive": "positive",
    "pos": "positive",
    "bullish": "positive",
}


def label_names(task: Task) -> tuple[str, ...]:
    return SENTIMENTS if task == "sentiment" else TOPICS


@dataclass(frozen=True)
class HubSource:
    """Where the same public set lives on the Hugging Face hub (used only by users with a network)."""

    repo_id: str
    files: tuple[str, ...]
    # How the hub release encodes labels when they differ from the local CSV (e.g. integer ids).
    label_map: Mapping[str, str] = field(default_factory=dict)
    # Hub column name -> the local CSV's column name.
    rename: Mapping[str, str] = field(default_factory=dict)
    reader: Literal["table", "phrasebank_txt"] = "table"


@dataclass(frozen=True)
class DatasetSpec:
    """One labeled file and how to read it; ``path`` is relative to the shared data dir unless absolute."""

    name: str
    task: Task
    path: str
    text_column: str = "text"
    label_column: str | None = "label"
    # Continuous sentiment scores (FiQA) become labels by thresholds: < low negative, > high positive.
    score_column: str | None = None
    score_thresholds: tuple[float, float] = (-0.15, 0.15)
    label_map: Mapping[str, str] = field(default_factory=dict)
    # A column reported separately in validation metrics (PhraseBank annotator agreement).
    group_column: str | None = None
    format: Literal["auto", "csv", "jsonl", "parquet"] = "auto"
    hub: HubSource | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"dataset {self.name}: task must be one of {', '.join(TASKS)}, not {self.task!r}")
        if (self.label_column is None) == (self.score_column is None):
            raise ValueError(f"dataset {self.name}: give exactly one of label_column or score_column")
        if self.score_column is not None and self.task != "sentiment":
            raise ValueError(f"dataset {self.name}: score_column only makes sense for sentiment")
        low, high = self.score_thresholds
        if low > high:
            raise ValueError(f"dataset {self.name}: score_thresholds must be (low, high) with low <= high")


BUILTIN_SPECS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="tfns_sentiment",
            task="sentiment",
            path="en/tfns_sentiment_train.csv",
            hub=HubSource(
                "zeroshot/twitter-financial-news-sentiment",
                ("sent_train.csv",),
                label_map={"0": "negative", "1": "positive", "2": "neutral"},
            ),
        ),
        DatasetSpec(
            name="tfns_topic",
            task="topic",
            path="en/tfns_topic_train.csv",
            hub=HubSource(
                "zeroshot/twitter-financial-news-topic",
                ("topic_train.csv",),
                label_map={str(i): name for i, name in enumerate(TOPICS)},
            ),
        ),
        DatasetSpec(
            name="phrasebank",
            task="sentiment",
            path="en/phrasebank_train.csv",
            group_column="agreement",
            hub=HubSource(
                "takala/financial_phrasebank",
                ("data/FinancialPhraseBank-v1.0.zip",),
                reader="phrasebank_txt",
            ),
        ),
        DatasetSpec(
            name="fiqa",
            task="sentiment",
            path="en/fiqa_train.csv",
            label_column=None,
            score_column="score",
            hub=HubSource(
                "pauri32/fiqa-2018",
                ("data/train-00000-of-00001.parquet",),
                rename={"sentence": "text", "sentiment_score": "score"},
            ),
        ),
    )
}

DEFAULT_DATASETS: tuple[str, ...] = ("tfns_sentiment", "tfns_topic", "phrasebank", "fiqa")
