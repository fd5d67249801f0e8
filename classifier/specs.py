"""Label spaces and the built-in data set specs (what file, which columns, how labels map onto ours)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
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


# FinNL (BBT-FinCUGE Chinese news) topic labels -> the ONE taxonomy above; the first topic is the training label
# of a document carrying that FinNL label, all of them count as right in evaluation (FinNL's labels are coarser:
# 公司 "company news" covers every company-level TFNS topic). The table and the reasons are in classifier/README.md.
COMPANY_TOPICS: tuple[str, ...] = (
    "Company | Product News",
    "Analyst Update",
    "Dividend",
    "Earnings",
    "IPO",
    "M&A | Investments",
    "Personnel Change",
    "Stock Movement",
)
FINNL_TOPICS: dict[str, tuple[str, ...]] = {
    "中国": (),  # region tags carry no topic
    "外国": (),
    "国际": (),
    "公司": COMPANY_TOPICS,
    "行业": ("Markets",),
    "大盘": ("Markets",),
    "经济": ("Macro",),
    "政策": ("Legal | Regulation",),
    "政治": ("Politics",),
    "债券": ("Treasuries | Corporate Debt",),
    "外汇": ("Currencies",),
    "能源": ("Energy | Oil",),
    "新冠": ("Macro",),
    "房地产": ("Macro",),
    "虚拟货币": ("Currencies",),
    "期货": ("Gold | Metals | Materials",),  # refined by the text: see futures_topic
}
# Misspelt or merged labels seen in FinNL's files, read as the label they clearly mean.
FINNL_ALIASES: dict[str, str] = {
    "汇率": "外汇",
    "转债": "债券",
    "企业": "公司",
    "虚拟火币": "虚拟货币",
    "正政策": "政策",
}
# A document with several mapped labels trains on the most specific one (the rarest in FinNL first).
FINNL_PRIORITY: tuple[str, ...] = (
    "外汇", "虚拟货币", "房地产", "债券", "能源", "期货", "政治", "大盘", "政策", "行业", "公司", "经济", "新冠",
)  # fmt: skip
_ENERGY_WORDS = re.compile(r"原油|石油|燃料油|天然气|煤|WTI|布伦特|Brent|汽油|柴油|沥青", re.IGNORECASE)
_CRYPTO_WORDS = re.compile(r"比特币|以太|加密货币|数字货币|BTC|ETH", re.IGNORECASE)


def futures_topic(text: str) -> str:
    """期货 (futures) news is about oil/gas/coal, crypto or metals/materials; which one is in the text."""
    if _ENERGY_WORDS.search(text):
        return "Energy | Oil"
    if _CRYPTO_WORDS.search(text):
        return "Currencies"
    return "Gold | Metals | Materials"


@dataclass(frozen=True)
class MappedTopics:
    """A multi-label row mapped onto TOPICS: training label, the full gold set, and raw labels not understood."""

    primary: str | None
    gold: tuple[str, ...]
    unknown: tuple[str, ...]


def split_labels(raw: str) -> list[str]:
    """FinNL separates labels by spaces; TFNS topic names contain spaces, so ';' separates them (one name alone
    needs no separator)."""
    if " ".join(raw.casefold().split()) in {" ".join(t.casefold().split()) for t in TOPICS}:
        return [raw.strip()]
    parts = raw.split(";") if ";" in raw else raw.split()
    return [p.strip().strip("、，,。") for p in parts if p.strip().strip("、，,。")]


def _unmerge(labels: Iterable[str]) -> list[str]:
    """'中国大盘' / '经济新冠' (two labels written without a space) -> their parts; anything else unchanged."""
    known = sorted({*FINNL_TOPICS, *FINNL_ALIASES}, key=len, reverse=True)
    out: list[str] = []
    for label in labels:
        parts, rest = [], label
        while rest:
            head = next((k for k in known if rest.startswith(k)), None)
            if head is None:
                break
            parts.append(head)
            rest = rest[len(head) :]
        out.extend(parts if parts and not rest else [label])
    return out


def map_topics(labels: Iterable[str], text: str = "") -> MappedTopics:
    """FinNL labels and/or TFNS topic names (any case) -> MappedTopics; region tags map to nothing."""
    by_key = {" ".join(t.casefold().split()): t for t in TOPICS}
    primary_rank: list[tuple[int, int, str]] = []
    gold: list[str] = []
    unknown: list[str] = []
    for raw in _unmerge(labels):
        label = FINNL_ALIASES.get(raw, raw)
        key = " ".join(label.casefold().split())
        if key in by_key:
            topics: tuple[str, ...] = (by_key[key],)
            rank = -1  # an explicit TFNS topic beats any FinNL label
        elif label in FINNL_TOPICS:
            topics = (futures_topic(text),) if label == "期货" else FINNL_TOPICS[label]
            rank = FINNL_PRIORITY.index(label) if topics else len(FINNL_PRIORITY)
        else:
            unknown.append(raw)
            continue
        if topics:
            primary_rank.append((rank, len(primary_rank), topics[0]))
        gold.extend(t for t in topics if t not in gold)
    primary = min(primary_rank)[2] if primary_rank else None
    return MappedTopics(primary, tuple(gold), tuple(dict.fromkeys(unknown)))


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
    # Multi-label topic column (FinNL: space-separated labels), mapped by map_topics; instead of label_column.
    labels_column: str | None = None
    # Language of every row (metrics are reported per language; the engine labels only the model's languages).
    lang: str = "en"
    # Rows whose label is unknown (FinNL's few junk labels) are dropped and logged instead of failing the load.
    drop_unknown_labels: bool = False
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
        if sum(c is not None for c in (self.label_column, self.score_column, self.labels_column)) != 1:
            raise ValueError(f"dataset {self.name}: give exactly one of label_column, score_column or labels_column")
        if self.labels_column is not None and self.task != "topic":
            raise ValueError(f"dataset {self.name}: labels_column (multi-label) only makes sense for topic")
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
        DatasetSpec(name="finfe", task="sentiment", path="zh/finfe_train.csv", lang="zh"),
        DatasetSpec(
            name="finnl",
            task="topic",
            path="zh/finnl_train.csv",
            label_column=None,
            labels_column="labels",
            lang="zh",
            drop_unknown_labels=True,
        ),
        # FinNSP: negative = 1 when the news is negative about its key entities. 0 is "not negative about them",
        # not "neutral", so those rows carry no sentiment; opt-in only (one-class rows would tilt the sentiment
        # prior of Chinese news). Its entities / key_entities columns are for entity-level sentiment.
        DatasetSpec(
            name="finnsp",
            task="sentiment",
            path="zh/finnsp_train.csv",
            label_column="negative",
            label_map={"1": "negative", "0": ""},
            lang="zh",
        ),
    )
}

# Evaluation files beside the training files (never used for training, early stopping or promotion).
EVAL_FILES: dict[str, str] = {
    "finfe": "zh/finfe_eval.csv",
    "finnl": "zh/finnl_eval.csv",
    "finnsp": "zh/finnsp_eval.csv",
}

DEFAULT_DATASETS: tuple[str, ...] = ("tfns_sentiment", "tfns_topic", "phrasebank", "fiqa", "finfe", "finnl")
