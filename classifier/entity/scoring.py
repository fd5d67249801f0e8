"""Entity-level figures: accuracy, macro-F1, per-class P/R/F1, negative-class F1, the majority-class baseline.

Gold labels are negative / neutral / positive (FiQA style) or negative / not_negative (FinNSP style). A file (or
slice) with any not_negative gold is scored as negative vs not_negative: the prediction is negative when the
sentiment head's argmax is negative, else not_negative (and neutral / positive gold count as not_negative).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from classifier.entity.convert import NOT_NEGATIVE
from finpulse.contracts import SENTIMENTS


def _prf(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, float]]:
    out = {}
    for label in labels:
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, pred, strict=True) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, pred, strict=True) if g == label and p != label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return out


def _summary(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    per_class = _prf(gold, pred, labels)
    present = [label for label in labels if per_class[label]["support"] > 0] or list(labels)
    return {
        "n": len(gold),
        "accuracy": float(np.mean([g == p for g, p in zip(gold, pred, strict=True)])) if gold else 0.0,
        "macro_f1": float(np.mean([per_class[label]["f1"] for label in present])),
        "negative_f1": per_class["negative"]["f1"],
        "per_class": per_class,
    }


def score_predictions(gold: Sequence[str], sentiment: np.ndarray) -> dict[str, Any]:
    """Figures for gold labels against sentiment probabilities (n, 3) in SENTIMENTS order."""
    gold = [str(g) for g in gold]
    binary = NOT_NEGATIVE in gold
    argmax = [SENTIMENTS[i] for i in np.asarray(sentiment).argmax(axis=1)] if len(gold) else []
    if binary:
        labels: tuple[str, ...] = ("negative", NOT_NEGATIVE)
        gold = [g if g == "negative" else NOT_NEGATIVE for g in gold]
        pred = [p if p == "negative" else NOT_NEGATIVE for p in argmax]
    else:
        labels, pred = tuple(SENTIMENTS), argmax
    report = _summary(gold, pred, labels)
    majority = Counter(gold).most_common(1)[0][0] if gold else labels[0]
    base = _summary(gold, [majority] * len(gold), labels)
    report.update(
        labels=list(labels),
        mode="negative_vs_not" if binary else "three_class",
        confusion=[
            [sum(1 for g, p in zip(gold, pred, strict=True) if g == a and p == b) for b in labels] for a in labels
        ],
        baseline={"label": majority, **{k: base[k] for k in ("accuracy", "macro_f1", "negative_f1")}},
    )
    return report


def relevance_figures(gold: Sequence[float], relevance: np.ndarray) -> dict[str, Any] | None:
    """Accuracy of relevance >= 0.5 on rows with a known relevance (1 about it, 0 not), and the baseline."""
    known = [(float(g), float(r)) for g, r in zip(gold, relevance, strict=True) if g in (0, 1, 0.0, 1.0)]
    if not known:
        return None
    y = np.array([g for g, _ in known])
    p = np.array([r for _, r in known])
    majority = float(y.mean() >= 0.5)
    return {
        "n": len(known),
        "accuracy": float(np.mean((p >= 0.5) == (y == 1))),
        "positives": int(y.sum()),
        "baseline_accuracy": float(np.mean(y == majority)),
    }


def brief(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("n", "mode", "accuracy", "macro_f1", "negative_f1", "baseline")
    return {k: report[k] for k in keys if k in report}
