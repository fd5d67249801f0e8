"""`finpulse evaluate`: a model against a labeled file - accuracy, macro-F1, per-class P/R/F1, confusion, ECE.

Single-label files have a ``label`` column. Topic files may instead carry multi-label gold (a ``labels`` column,
FinNL style, space-separated; ';'-separated TFNS topic names also work): each document's labels are mapped onto the
TFNS topics (specs.map_topics) and a prediction is right when it is one of them (top-1-in-gold). Rows whose labels
map to no topic (region tags only) are excluded and counted. Metrics are also reported per language (the file's
``lang`` column, else detected per text).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classifier.data import DataError, normalise_label, read_table
from classifier.metrics import classification_report, grouped_brief, in_gold_targets
from classifier.specs import Task, label_names, map_topics, split_labels

MULTI_LABEL_COLUMN = "labels"


@dataclass
class LabeledRows:
    """An evaluation file, read: texts with their gold label ids (one or several per row) and language."""

    texts: list[str]
    gold: list[list[int]]  # first id = the primary label
    langs: list[str]
    multi_label: bool
    excluded_no_gold: int = 0
    dropped_labels: dict[str, int] = field(default_factory=dict)


def text_language(text: str) -> str:
    """'zh' when CJK ideographs make up a fifth of the letters, else 'en' (the languages FinPulse labels)."""
    letters = [c for c in text if c.isalpha()]
    cjk = sum(1 for c in letters if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    return "zh" if letters and cjk >= 0.2 * len(letters) else "en"


def load_labeled(
    path: Path,
    task: Task,
    text_column: str = "text",
    label_column: str = "label",
    *,
    ignore_unknown: bool = False,
) -> LabeledRows:
    """Read and map the gold labels; unknown labels fail with their names unless ``ignore_unknown``."""
    table = read_table(path)
    if label_column == "label" and "label" not in table.columns and MULTI_LABEL_COLUMN in table.columns:
        label_column = MULTI_LABEL_COLUMN
    for column in (text_column, label_column):
        if column not in table.columns:
            raise DataError(f"{path}: no column {column!r} (columns: {list(table.columns)})")
    if table.empty:
        raise DataError(f"{path} has no rows")
    multi = label_column == MULTI_LABEL_COLUMN
    if multi and task != "topic":
        raise DataError(f"{path}: a multi-label '{MULTI_LABEL_COLUMN}' column is only for --task topic")
    names = label_names(task)
    texts = table[text_column].astype(str).tolist()
    langs = table["lang"].astype(str).tolist() if "lang" in table.columns else [text_language(t) for t in texts]
    unknown: Counter[str] = Counter()
    rows: list[tuple[str, list[int], str]] = []
    excluded = 0
    for text, raw, lang in zip(texts, table[label_column], langs, strict=True):
        if multi:
            mapped = map_topics(split_labels(str(raw)), text)
            unknown.update(mapped.unknown)
            if mapped.unknown and not ignore_unknown:
                continue
            if not mapped.gold:
                excluded += 1
                continue
            order = [mapped.primary] + [t for t in mapped.gold if t != mapped.primary]
            rows.append((text, [names.index(t) for t in order], lang))
        else:
            try:
                rows.append((text, [names.index(normalise_label(raw, task))], lang))
            except DataError:
                unknown[str(raw)] += 1
    if unknown and not ignore_unknown:
        listed = ", ".join(f"{label!r} ({n} row{'s' if n > 1 else ''})" for label, n in unknown.most_common(20))
        more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
        raise DataError(
            f"{path}: unknown {task} label(s) in column {label_column!r}: {listed}{more}. Known: "
            + (", ".join(names) if not multi else "the TFNS topics and FinNL's labels (classifier/README.md)")
            + "; fix the file or pass --ignore-unknown-labels to skip them"
        )
    if not rows:
        raise DataError(
            f"{path}: no row left to score ({excluded} row(s) have no label that maps to a {task}, "
            f"{sum(unknown.values())} unknown label(s) skipped)"
        )
    return LabeledRows(
        texts=[r[0] for r in rows],
        gold=[r[1] for r in rows],
        langs=[r[2] for r in rows],
        multi_label=multi,
        excluded_no_gold=excluded,
        dropped_labels=dict(unknown),
    )


def evaluate(
    engine: Any,
    path: Path,
    task: Task,
    *,
    text_column: str = "text",
    label_column: str = "label",
    ignore_unknown: bool = False,
    plot: Path | None = None,
) -> dict[str, Any]:
    """Score ``engine`` (anything with ``predict_proba(texts) -> (topic, sentiment, ...)``) on a labeled file."""
    rows = load_labeled(path, task, text_column, label_column, ignore_unknown=ignore_unknown)
    names = label_names(task)
    topic, sentiment, *_ = engine.predict_proba(rows.texts)
    probs = np.asarray(sentiment if task == "sentiment" else topic)
    primary = np.array([g[0] for g in rows.gold], dtype=np.int64)
    y_true = in_gold_targets(probs.argmax(axis=1), rows.gold) if rows.multi_label else primary
    report = classification_report(y_true, probs, names)
    report.update(
        task=task,
        data=str(path),
        model_version=getattr(engine, "model_version", "?"),
        multi_label=rows.multi_label,
        by_lang=grouped_brief(y_true, probs, names, rows.langs),
        excluded_no_gold=rows.excluded_no_gold,
        dropped_labels=rows.dropped_labels,
    )
    if rows.multi_label:
        # accuracy above is top-1-in-gold; this is the stricter match against each row's training label.
        report["primary_accuracy"] = float((probs.argmax(axis=1) == primary).mean())
    if plot is not None:
        save_confusion_png(np.array(report["confusion"]), names, plot, title=f"{report['model_version']} - {task}")
        report["plot"] = str(plot)
    return report


def save_confusion_png(confusion: np.ndarray, labels: tuple[str, ...] | list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: evaluation runs on servers and in CI
    import matplotlib.pyplot as plt

    size = max(5.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    high = confusion.max() if confusion.size else 0
    for (row, col), value in np.ndenumerate(confusion):
        if value:
            color = "white" if value > high / 2 else "black"
            ax.text(col, row, str(value), ha="center", va="center", fontsize=7, color=color)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
