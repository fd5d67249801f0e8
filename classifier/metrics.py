"""Classification metrics shared by validation during training and `finpulse evaluate`."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width confidence bins (top-label calibration)."""
    if len(y_true) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def classification_report(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """accuracy, macro-F1 (over classes present in y_true or predicted), per-class P/R/F1, confusion, ECE, n."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = probs.argmax(axis=1) if len(y_true) else np.zeros(0, dtype=np.int64)
    ids = list(range(len(labels)))
    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
        if len(y_true)
        else 0.0,
        "ece": expected_calibration_error(probs, y_true),
        "per_class": {
            labels[i]: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in ids
        },
        "labels": list(labels),
        "confusion": confusion_matrix(y_true, y_pred, labels=ids).tolist() if len(y_true) else [],
    }


def in_gold_targets(y_pred: np.ndarray, gold: Sequence[Sequence[int]]) -> np.ndarray:
    """Multi-label gold, scored top-1-in-gold: a row's target is its prediction when that is one of its gold
    labels, else its first (primary) gold label. Accuracy on these targets is the top-1-in-gold rate, and per-class
    scores / macro-F1 credit a prediction exactly when it is in the gold set."""
    if any(len(g) == 0 for g in gold):
        raise ValueError("every row needs at least one gold label (exclude rows without one first)")
    return np.array([p if p in g else g[0] for p, g in zip(y_pred.tolist(), gold, strict=True)], dtype=np.int64)


def grouped_brief(
    y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str], groups: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """n / accuracy / macro-F1 per group value (e.g. per language)."""
    groups_arr = np.asarray(groups)
    out = {}
    for value in sorted(set(groups_arr.tolist())):
        sel = groups_arr == value
        report = classification_report(y_true[sel], probs[sel], labels)
        out[value] = {k: report[k] for k in ("n", "accuracy", "macro_f1")}
    return out
