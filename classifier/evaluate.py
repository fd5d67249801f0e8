"""`finpulse evaluate`: a model against a labeled file - accuracy, macro-F1, per-class P/R/F1, confusion, ECE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from classifier.data import DataError, normalise_label, read_table
from classifier.engine import ClassifierEngine
from classifier.metrics import classification_report
from classifier.specs import Task, label_names


def load_labeled(path: Path, task: Task, text_column: str = "text", label_column: str = "label") -> tuple[list, list]:
    """Texts and normalised label names; the file may use the data set's own names (bearish, topic names)."""
    table = read_table(path)
    for column in (text_column, label_column):
        if column not in table.columns:
            raise DataError(f"{path}: no column {column!r} (columns: {list(table.columns)})")
    texts = table[text_column].astype(str).tolist()
    labels = []
    for i, raw in enumerate(table[label_column]):
        try:
            labels.append(normalise_label(raw, task))
        except DataError as exc:
            raise DataError(f"{path}, row {i}: {exc}") from exc
    if not texts:
        raise DataError(f"{path} has no rows")
    return texts, labels


def evaluate(
    engine: ClassifierEngine,
    path: Path,
    task: Task,
    *,
    text_column: str = "text",
    label_column: str = "label",
    plot: Path | None = None,
) -> dict[str, Any]:
    texts, labels = load_labeled(path, task, text_column, label_column)
    names = label_names(task)
    topic, sentiment, _ = engine.predict_proba(texts)
    probs = sentiment if task == "sentiment" else topic
    y_true = np.array([names.index(label) for label in labels])
    report = classification_report(y_true, probs, names)
    report.update(task=task, data=str(path), model_version=engine.model_version)
    if plot is not None:
        save_confusion_png(np.array(report["confusion"]), names, plot, title=f"{engine.model_version} - {task}")
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
