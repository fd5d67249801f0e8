"""Loading labeled text: tables (CSV, JSONL, Parquet) with column mapping, label normalisation, dedupe, split.

Every loader returns one frame shape, ``text, sentiment, topic, source, group, lang, topics``, with ``None`` where
an example carries no label for a task; the trainer masks those losses. ``lang`` is the spec's language (en, zh);
``topics`` is the full mapped gold set (a tuple) of a multi-label row (FinNL), ``None`` elsewhere, while ``topic``
holds its one training label.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from classifier.specs import (
    BUILTIN_SPECS,
    DEFAULT_DATASETS,
    SENTIMENT_ALIASES,
    TOPICS,
    DatasetSpec,
    Task,
    map_topics,
    split_labels,
)
from finpulse.contracts import normalise_text

log = logging.getLogger(__name__)

COLUMNS = ("text", "sentiment", "topic", "source", "group", "lang", "topics")
_TOPIC_BY_KEY = {" ".join(t.casefold().split()): t for t in TOPICS}


class DataError(ValueError):
    """Labeled data is missing, unreadable or does not match its spec."""


class DataLeakError(DataError):
    """Validation texts also occur in the training data."""


def no_data_message(root: Path | None) -> str:
    where = f"{root}" if root else "no shared data dir (../shared/data does not exist)"
    return (
        f"no labeled data found ({where}). Provide labeled data in one of these ways: set FINPULSE_SHARED_DATA_DIR "
        "to a folder holding en/tfns_sentiment_train.csv, en/tfns_topic_train.csv, en/phrasebank_train.csv, "
        "en/fiqa_train.csv (English) or zh/finfe_train.csv, zh/finnl_train.csv (Chinese); or run "
        "`finpulse train --data FILE.csv --task sentiment|topic` on your own CSV/JSONL/"
        "Parquet file with text and label columns; or, with network access, `finpulse train --from-hub`."
    )


def read_table(path: Path, fmt: str = "auto") -> pd.DataFrame:
    """Read CSV, JSONL or Parquet (by suffix unless ``fmt`` says) as strings-or-numbers."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    if fmt == "auto":
        suffix = "".join(path.suffixes[-2:]).lower()
        if suffix.endswith((".jsonl", ".ndjson", ".json")):
            fmt = "jsonl"
        elif suffix.endswith((".parquet", ".pq")):
            fmt = "parquet"
        elif suffix.endswith((".csv", ".csv.gz", ".tsv")):
            fmt = "csv"
        else:
            raise DataError(f"{path}: unknown format (use .csv, .jsonl or .parquet, or name the format)")
    try:
        if fmt == "csv":
            return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", keep_default_na=False, dtype=str)
        if fmt == "jsonl":
            return pd.read_json(path, lines=path.suffix != ".json", dtype=False)
        return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read as {fmt}: {exc}") from exc


def normalise_label(value: Any, task: Task, label_map: dict[str, str] | None = None) -> str:
    """Map a raw label (data set's own name, alias or id) onto the product's label; DataError when unknown."""
    key = str(value).strip()
    if label_map and key in label_map:
        key = label_map[key]
    folded = " ".join(key.casefold().split())
    if task == "sentiment":
        if folded in SENTIMENT_ALIASES:
            return SENTIMENT_ALIASES[folded]
    elif folded in _TOPIC_BY_KEY:
        return _TOPIC_BY_KEY[folded]
    raise DataError(f"unknown {task} label {value!r}")


def score_to_sentiment(score: float, thresholds: tuple[float, float]) -> str:
    low, high = thresholds
    return "negative" if score < low else "positive" if score > high else "neutral"


def frame_from_table(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Apply a spec's column mapping and label normalisation to a raw table."""
    needed = [c for c in (spec.text_column, spec.label_column, spec.score_column, spec.labels_column) if c]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise DataError(f"dataset {spec.name}: missing column(s) {missing}; columns are {list(df.columns)}")
    texts = df[spec.text_column].astype(str).tolist()
    gold: list[tuple[str, ...] | None] = [None] * len(texts)
    if spec.score_column:
        scores = pd.to_numeric(df[spec.score_column], errors="coerce")
        if scores.isna().any():
            raise DataError(f"dataset {spec.name}: non-numeric values in {spec.score_column}")
        labels: list[str | None] = [score_to_sentiment(float(s), spec.score_thresholds) for s in scores]
    elif spec.labels_column:
        labels, gold = _multi_labels(df[spec.labels_column].astype(str).tolist(), texts, spec)
    else:
        label_map = dict(spec.label_map)
        labels, unknown = [], Counter()
        for i, raw in enumerate(df[spec.label_column]):
            if label_map.get(str(raw).strip()) == "":
                labels.append(None)  # the spec says this value carries no label (FinNSP's "not negative")
                continue
            try:
                labels.append(normalise_label(raw, spec.task, label_map))
            except DataError as exc:
                if not spec.drop_unknown_labels:
                    raise DataError(f"dataset {spec.name}, row {i}: {exc}") from exc
                labels.append(None)
                unknown[str(raw)] += 1
        _log_dropped(spec, unknown)
    out = pd.DataFrame({"text": texts})
    out["sentiment"] = labels if spec.task == "sentiment" else None
    out["topic"] = labels if spec.task == "topic" else None
    out["source"] = spec.name
    group = df[spec.group_column].astype(str).tolist() if spec.group_column in df.columns else None
    out["group"] = group
    out["lang"] = spec.lang
    out["topics"] = pd.Series(gold, dtype=object)
    out = out[out["text"].str.strip().astype(bool) & (out["sentiment"].notna() | out["topic"].notna())]
    return out.reset_index(drop=True)


def _multi_labels(
    raws: list[str], texts: list[str], spec: DatasetSpec
) -> tuple[list[str | None], list[tuple[str, ...] | None]]:
    """Map each row's labels with map_topics: one training label (primary) and the full gold set."""
    primary: list[str | None] = []
    gold: list[tuple[str, ...] | None] = []
    unknown: Counter[str] = Counter()
    for i, (raw, text) in enumerate(zip(raws, texts, strict=True)):
        mapped = map_topics(split_labels(raw), text)
        if mapped.unknown and not spec.drop_unknown_labels:
            raise DataError(f"dataset {spec.name}, row {i}: unknown topic label(s) {', '.join(mapped.unknown)}")
        unknown.update(mapped.unknown)
        primary.append(mapped.primary)
        gold.append(mapped.gold or None)
    _log_dropped(spec, unknown)
    return primary, gold


def _log_dropped(spec: DatasetSpec, unknown: Counter[str]) -> None:
    if unknown:
        log.warning(
            "unknown labels dropped",
            extra={"dataset": spec.name, "rows": sum(unknown.values()), "labels": sorted(unknown)},
        )


def resolve_spec_path(spec: DatasetSpec, root: Path | None) -> Path:
    path = Path(spec.path)
    if path.is_absolute():
        return path
    if root is None:
        raise DataError(no_data_message(root))
    return root / path


def load_spec(spec: DatasetSpec, root: Path | None) -> pd.DataFrame:
    path = resolve_spec_path(spec, root)
    return frame_from_table(read_table(path, spec.format), spec)


def load_from_hub(spec: DatasetSpec, revision: str | None = None) -> pd.DataFrame:
    """Load the public release of a built-in set from the Hugging Face hub (needs network access)."""
    if spec.hub is None:
        raise DataError(f"dataset {spec.name} has no hub source")
    from huggingface_hub import hf_hub_download

    frames = []
    for filename in spec.hub.files:
        local = Path(hf_hub_download(spec.hub.repo_id, filename, repo_type="dataset", revision=revision))
        if spec.hub.reader == "phrasebank_txt":
            frames.append(_read_phrasebank_zip(local))
        else:
            frames.append(read_table(local))
    raw = pd.concat(frames, ignore_index=True).rename(columns=dict(spec.hub.rename))
    hub_spec = DatasetSpec(**{**spec.__dict__, "label_map": {**spec.label_map, **spec.hub.label_map}})
    return frame_from_table(raw, hub_spec)


def _read_phrasebank_zip(path: Path) -> pd.DataFrame:
    """The original release: nested level files 'Sentences_50Agree.txt' ... with 'sentence@label' lines."""
    best: dict[str, tuple[str, int]] = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            stem = Path(name).name
            if not stem.startswith("Sentences_") or not stem.endswith(".txt"):
                continue
            level = 100 if "AllAgree" in stem else int(stem.removeprefix("Sentences_").split("Agree")[0])
            text = archive.read(name).decode("latin-1")
            for line in io.StringIO(text):
                sentence, _, label = line.strip().rpartition("@")
                if sentence and (sentence not in best or best[sentence][1] < level):
                    best[sentence] = (label, level)
    return pd.DataFrame(
        [{"text": s, "label": lab, "agreement": str(lvl)} for s, (lab, lvl) in best.items()],
        columns=["text", "label", "agreement"],
    )


def load_datasets(
    names: Sequence[str | DatasetSpec], root: Path | None, *, from_hub: bool = False
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Load several sets; returns the concatenated frame and a fingerprint per set (file hash, rows)."""
    frames, prints = [], {}
    for item in names:
        spec = item if isinstance(item, DatasetSpec) else _builtin(item)
        if from_hub:
            frame = load_from_hub(spec)
            prints[spec.name] = {"hub": spec.hub.repo_id if spec.hub else None, "rows": len(frame)}
        else:
            path = resolve_spec_path(spec, root)
            frame = load_spec(spec, root)
            prints[spec.name] = {"path": str(path), "sha256": file_sha256(path), "rows": len(frame)}
        frame["source"] = spec.name
        frames.append(frame)
        log.info("loaded %s", spec.name, extra={"rows": len(frame)})
    if not frames:
        raise DataError("no datasets named")
    return pd.concat(frames, ignore_index=True), prints


def available_builtin(root: Path | None, names: Sequence[str] = DEFAULT_DATASETS) -> list[str]:
    """The default sets (English and Chinese; opt-in sets such as finnsp only when named) whose files exist."""
    if root is None:
        return []
    return [name for name in names if name in BUILTIN_SPECS and (root / BUILTIN_SPECS[name].path).is_file()]


def _builtin(name: str) -> DatasetSpec:
    try:
        return BUILTIN_SPECS[name]
    except KeyError as exc:
        raise DataError(f"unknown dataset {name!r}; built-in: {', '.join(BUILTIN_SPECS)}") from exc


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _majority(values: Iterable[Any]) -> Any:
    present = [v for v in values if isinstance(v, str)]
    if not present:
        return None
    counts = Counter(present).most_common()
    # A tie between different labels for one text is noise: drop that label rather than guess.
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0]


def _first_gold(values: Iterable[Any]) -> tuple[str, ...] | None:
    return next((v for v in values if isinstance(v, tuple) and v), None)


def dedupe(frame: pd.DataFrame) -> pd.DataFrame:
    """Merge rows whose text is the same up to links, case and whitespace.

    Labels from different sets combine (a tweet in both TFNS sets carries both labels); conflicting labels for one
    task resolve by majority, ties drop the label.
    """
    frame = frame.copy()
    frame["key"] = [normalise_text(t) for t in frame["text"]]
    frame = frame[frame["key"].astype(bool)]
    grouped = frame.groupby("key", sort=False)
    out = pd.DataFrame(
        {
            "text": grouped["text"].first(),
            "sentiment": grouped["sentiment"].agg(_majority),
            "topic": grouped["topic"].agg(_majority),
            "source": grouped["source"].first(),
            "group": grouped["group"].agg(lambda v: max((g for g in v if isinstance(g, str)), default=None)),
            "lang": grouped["lang"].first() if "lang" in frame else "en",
            "topics": grouped["topics"].agg(_first_gold) if "topics" in frame else None,
        }
    ).reset_index()
    out = out[out["sentiment"].notna() | out["topic"].notna()]
    log.info("dedupe", extra={"rows_in": len(frame), "rows_out": len(out)})
    return out.reset_index(drop=True)


def stratified_split(frame: pd.DataFrame, val_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Carve a validation split stratified by source and labels, reproducible for a given seed."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError("val_fraction must be in (0, 1)")
    rng = np.random.default_rng(seed)
    # Built from Python strings: pandas 3 string columns propagate missing values through "+".
    strata = pd.Series(
        [f"{a}|{b}|{c}" for a, b, c in zip(frame["source"], frame["sentiment"], frame["topic"], strict=True)],
        index=frame.index,
    )
    val_idx: list[int] = []
    for _, idx in sorted(frame.groupby(strata).indices.items()):
        idx = np.sort(idx)
        rng.shuffle(idx)
        n_val = math.floor(len(idx) * val_fraction + 0.5) if len(idx) >= 2 else 0
        val_idx.extend(idx[:n_val].tolist())
    is_val = np.zeros(len(frame), dtype=bool)
    is_val[val_idx] = True
    return frame[~is_val].reset_index(drop=True), frame[is_val].reset_index(drop=True)


def check_no_leak(train: pd.DataFrame, val: pd.DataFrame) -> None:
    """Refuse to train when a validation text (up to links, case and spaces) also occurs in training."""
    train_keys = {normalise_text(t) for t in train["text"]}
    leaked = [t for t in val["text"] if normalise_text(t) in train_keys]
    if leaked:
        raise DataLeakError(
            f"{len(leaked)} validation text(s) also occur in the training data, e.g. {leaked[0][:80]!r}; "
            "dedupe before splitting or give a disjoint validation file"
        )


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """Order-independent hash of the texts and labels, to say exactly which examples a model saw."""
    triples = zip(frame["text"], frame["sentiment"], frame["topic"], strict=True)
    rows = sorted(f"{t}\x1f{s}\x1f{p}" for t, s, p in triples)
    return hashlib.sha256("\x1e".join(rows).encode("utf-8")).hexdigest()
