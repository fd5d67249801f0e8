"""FiQA and FinNSP -> (text, entity, label, relevance) rows, and the seeded held-out splits of both.

Row columns: ``text``, ``entity``, ``label`` (negative | neutral | positive | not_negative | None), ``relevance``
(1 = the document is about the entity, 0 = it is not, None = unknown), ``entities`` (every entity of the document,
';'-joined: the other entities are masked apart from the target), ``source``, ``lang``, ``split``.

- FiQA (en/fiqa_train.csv: text, score, target): label from the score with thresholds fixed before any training:
  score < -0.1 negative, score > 0.1 positive, else neutral (FIQA_NEGATIVE_BELOW / FIQA_POSITIVE_ABOVE); every row
  is about its target: relevance 1. Relevance 0: each text paired with a target of another text of the same split
  that it does not name (no sentiment label).
- FinNSP (zh/finnsp_train.csv, finnsp_eval.csv: title, text, entities, negative, key_entities): negative news ->
  (text, key entity, negative, relevance 1) and (text, other listed entity, not_negative, relevance 0: named,
  but not what the negative news is about); news that is not negative -> (text, entity, not_negative, relevance
  unknown) for each listed entity; plus absent-entity pairs as for FiQA (relevance 0).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from classifier.data import DataError, read_table
from classifier.specs import SENTIMENT_ALIASES

FIQA_NEGATIVE_BELOW = -0.1
FIQA_POSITIVE_ABOVE = 0.1
NOT_NEGATIVE = "not_negative"
ENTITY_LABELS = ("negative", "neutral", "positive", NOT_NEGATIVE)
LABEL_ALIASES = {  # the product's sentiment vocabulary, plus FinNSP's "not the subject of negative news"
    **SENTIMENT_ALIASES,
    "not_negative": NOT_NEGATIVE,
    "not-negative": NOT_NEGATIVE,
    "not negative": NOT_NEGATIVE,
    "non_negative": NOT_NEGATIVE,
}
ROW_COLUMNS = ("text", "entity", "label", "relevance", "entities", "source", "lang")
# Seeded split by text (all rows of one text land in one split): train / early stopping (model selection) / holdout.
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
SPLITS = ("train", "val", "holdout")
FIQA_FILE = "en/fiqa_train.csv"
FINNSP_TRAIN_FILE = "zh/finnsp_train.csv"
FINNSP_EVAL_FILE = "zh/finnsp_eval.csv"


def fiqa_label(score: float) -> str:
    if score < FIQA_NEGATIVE_BELOW:
        return "negative"
    if score > FIQA_POSITIVE_ABOVE:
        return "positive"
    return "neutral"


def split_entities(value: object) -> list[str]:
    """';'-separated entities, stripped, empty and duplicates dropped, order kept."""
    if not isinstance(value, str):
        return []
    out: list[str] = []
    for part in value.split(";"):
        part = part.strip()
        if part and part not in out:
            out.append(part)
    return out


def split_of(text: str, seed: int) -> str:
    """The split of a text: a seeded hash, so a text (and every entity row of it) always lands in one split."""
    digest = hashlib.blake2b(f"{seed}\x00{text.strip()}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    if u < SPLIT_FRACTIONS[0]:
        return "train"
    return "val" if u < SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1] else "holdout"


def is_fiqa(frame: pd.DataFrame) -> bool:
    return {"text", "score", "target"} <= set(frame.columns)


def is_finnsp(frame: pd.DataFrame) -> bool:
    return {"text", "entities", "negative", "key_entities"} <= set(frame.columns)


def mentions(text: str, entity: str) -> bool:
    return entity.casefold() in text.casefold()


def fiqa_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """FiQA rows -> entity rows (relevance 1), targets of one text listed together in ``entities``."""
    frame = frame.dropna(subset=["text", "target", "score"])
    targets = frame.groupby("text")["target"].agg(lambda s: ";".join(dict.fromkeys(str(t).strip() for t in s)))
    rows = [
        {
            "text": str(r.text),
            "entity": str(r.target).strip(),
            "label": fiqa_label(float(r.score)),
            "relevance": 1,
            "entities": targets[r.text],
            "source": "fiqa",
            "lang": "en",
        }
        for r in frame.itertuples(index=False)
    ]
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS)).drop_duplicates(["text", "entity"])


def finnsp_text(title: object, text: object) -> str:
    """The news text, with its title in front when the text does not already start with it."""
    body = text if isinstance(text, str) else ""
    if isinstance(title, str) and title.strip() and title.strip() not in body:
        return f"{title.strip()}。{body}"
    return body


def finnsp_rows(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in frame.itertuples(index=False):
        text = finnsp_text(getattr(r, "title", None), r.text)
        if not text.strip():
            continue
        listed = split_entities(r.entities)
        key = split_entities(r.key_entities)
        negative = str(r.negative).strip() in ("1", "1.0", "True", "true")
        everything = listed + [k for k in key if k not in listed]
        for entity in everything:
            if negative and entity in key:
                label, relevance = "negative", 1
            elif negative:
                label, relevance = NOT_NEGATIVE, 0
            else:
                label, relevance = NOT_NEGATIVE, None
            rows.append(
                {
                    "text": text,
                    "entity": entity,
                    "label": label,
                    "relevance": relevance,
                    "entities": ";".join(everything),
                    "source": "finnsp",
                    "lang": "zh",
                }
            )
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS)).drop_duplicates(["text", "entity"])


def absent_pairs(rows: pd.DataFrame, seed: int, per_text: int = 1) -> pd.DataFrame:
    """Relevance negatives: each text paired with ``per_text`` entities of other texts (same frame) it does not
    name. Honest by construction: the text does not discuss an entity it never mentions."""
    rng = random.Random(seed)
    pool = sorted(set(rows["entity"]))
    # plain Python over the rows (pandas groupby + iloc per text cost seconds on FinNSP)
    groups: dict[str, tuple[set[str], dict]] = {}
    for record in rows.to_dict("records"):
        own_set, _ = groups.setdefault(record["text"], (set(), record))
        own_set.add(record["entity"])
    out = []
    for text in sorted(groups):
        own, first = groups[text]
        picked: list[str] = []
        for _ in range(20 * per_text):
            if len(picked) >= per_text or not pool:
                break
            candidate = rng.choice(pool)
            if candidate not in own and candidate not in picked and not mentions(str(text), candidate):
                picked.append(candidate)
        out += [
            {
                "text": text,
                "entity": entity,
                "label": None,
                "relevance": 0,
                "entities": f"{first['entities']};{entity}" if first["entities"] else entity,
                "source": first["source"],
                "lang": first["lang"],
            }
            for entity in picked
        ]
    return pd.DataFrame(out, columns=list(ROW_COLUMNS))


def with_splits(rows: pd.DataFrame, seed: int) -> pd.DataFrame:
    rows = rows.copy()
    rows["split"] = [split_of(t, seed) for t in rows["text"]]
    return rows


def builtin_rows(root: Path, seed: int) -> pd.DataFrame:
    """Every entity row from the shared data (FiQA + FinNSP train), with seeded splits and relevance negatives
    (drawn within each split). FinNSP training texts that also occur in finnsp_eval.csv are dropped."""
    frames = []
    fiqa = Path(root) / FIQA_FILE
    if fiqa.is_file():
        frames.append(fiqa_rows(read_table(fiqa)))
    nsp = Path(root) / FINNSP_TRAIN_FILE
    if nsp.is_file():
        rows = finnsp_rows(read_table(nsp))
        nsp_eval = Path(root) / FINNSP_EVAL_FILE
        if nsp_eval.is_file():
            held = set(finnsp_rows(read_table(nsp_eval))["text"])
            rows = rows[~rows["text"].isin(held)]
        frames.append(rows)
    if not frames:
        raise DataError(
            f"no entity data under {root}: expected {FIQA_FILE} and/or {FINNSP_TRAIN_FILE} "
            "(set FINPULSE_SHARED_DATA_DIR or pass --data-dir)"
        )
    return add_absent(pd.concat(frames, ignore_index=True), seed)


def add_absent(rows: pd.DataFrame, seed: int) -> pd.DataFrame:
    rows = with_splits(rows, seed)
    parts = [rows]
    for (source, split), group in rows.groupby(["source", "split"], sort=True):
        extra = absent_pairs(group, seed + sum(map(ord, f"{source}{split}")))
        extra["split"] = split
        parts.append(extra)
    return pd.concat(parts, ignore_index=True)


def normalise_entity_label(value: object) -> str | None:
    if _blank(value):
        return None
    return LABEL_ALIASES.get(" ".join(str(value).casefold().split()))


def _blank(value: object) -> bool:
    """No label: a missing value or an empty cell (relevance-only rows)."""
    return value is None or (isinstance(value, float) and pd.isna(value)) or not str(value).strip()


def read_entity_rows(path: Path, seed: int | None = None) -> pd.DataFrame:
    """An evaluation file as entity rows: (text, entity, label) rows (CSV/JSONL/Parquet; optional ``entities``,
    ``relevance``, ``lang``), or a raw FiQA / FinNSP file, converted as above (without absent pairs).

    Unknown labels are an error naming them; rows without a label are skipped (relevance-only rows).
    """
    table = read_table(path)
    if table.empty:
        raise DataError(f"{path} has no rows")
    if is_fiqa(table):
        rows = fiqa_rows(table)
    elif is_finnsp(table):
        rows = finnsp_rows(table)
    else:
        missing = [c for c in ("text", "entity", "label") if c not in table.columns]
        if missing:
            raise DataError(
                f"{path}: no column(s) {missing} (columns: {list(table.columns)}); an entity file has "
                "text, entity, label rows (or is a raw FiQA / FinNSP file)"
            )
        rows = table.copy()
        rows["text"] = rows["text"].astype(str)
        rows["entity"] = rows["entity"].astype(str).str.strip()
        if "entities" not in rows.columns:
            rows["entities"] = rows.groupby("text")["entity"].transform(lambda s: ";".join(dict.fromkeys(s)))
        for column, default in (("relevance", None), ("source", Path(path).stem), ("lang", None)):
            if column not in rows.columns:
                rows[column] = default
        rows["relevance"] = pd.to_numeric(rows["relevance"], errors="coerce")
        raw = rows["label"]
        unknown = sorted({str(v) for v in raw if not _blank(v) and normalise_entity_label(v) is None})
        if unknown:
            counts = {u: int((raw.astype(str) == u).sum()) for u in unknown}
            listed = ", ".join(f"{u!r} ({n} row{'s' if n > 1 else ''})" for u, n in list(counts.items())[:20])
            raise DataError(
                f"{path}: unknown entity label(s) in column 'label': {listed}. Known: "
                f"{', '.join(ENTITY_LABELS)} (and the aliases bearish / bullish)"
            )
        rows["label"] = [normalise_entity_label(v) for v in raw]
    rows = rows[rows["label"].notna()].reset_index(drop=True)
    if rows.empty:
        raise DataError(f"{path}: no labeled entity row to score")
    return rows


def write_rows(rows: pd.DataFrame, path: Path, columns: Iterable[str] = ROW_COLUMNS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.loc[:, [c for c in columns if c in rows.columns]].to_csv(path, index=False)
    return path


def label_counts(labels: Sequence[object]) -> dict[str, int]:
    return {str(k): int(v) for k, v in pd.Series(list(labels)).value_counts(dropna=False).items()}
