"""The int8 accuracy guard: int8 is served only when its accuracy on the model's validation split is within
``TOLERANCE_POINTS`` of fp32 on every head and language; otherwise fp32. Both are recorded (guard.json beside the
export, and ``onnx`` in the model's meta.json), so the choice is made once per set of weights and can be audited.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from classifier.onnx_export import OnnxArtifacts, file_lock, write_atomic
from classifier.registry import META_FILE

log = logging.getLogger(__name__)

TOLERANCE_POINTS = 0.5
GUARD_MAX_ROWS = 1000  # per head and language: bounds the one-off cost at load on a small CPU

GOLD_SEPARATOR = ";"

# (head, language) -> (texts, labels); a label may list several gold answers, GOLD_SEPARATOR-separated
GuardSets = dict[str, tuple[list[str], list[str]]]


def validation_sets(model_dir: Path, data_root: Path | None, heads: dict[str, tuple[str, ...]]) -> GuardSets:
    """The model's own validation split (re-created and checked against its fingerprint), by head and language."""
    import pandas as pd  # here, not at import: a serving worker that reads a cached guard record never needs it

    from classifier.evaluate import text_language
    from classifier.validation import export_validation

    if data_root is None:
        raise LookupError("no shared data dir: the validation split cannot be re-created")
    groups: dict[str, tuple[list[str], list[str]]] = {}
    with tempfile.TemporaryDirectory(prefix="finpulse-guard-") as tmp:
        for key, path in export_validation(model_dir, Path(tmp), data_root).items():
            head = key.rsplit("_", 1)[-1]
            if key.startswith("phrasebank_agree100") or head not in heads:
                continue  # agree100 is a subset of phrasebank, counted there already
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            # Multi-label gold (FinNL topics) comes as a ';'-separated `labels` column: right when one of them.
            column = "label" if "label" in frame else "labels"
            for text, label in zip(frame["text"], frame[column], strict=True):
                if any(g in heads[head] for g in label.split(GOLD_SEPARATOR)):
                    texts, labels = groups.setdefault(f"{head}/{text_language(text)}", ([], []))
                    texts.append(text)
                    labels.append(label)
    rng = np.random.default_rng(0)
    for name, (texts, labels) in groups.items():
        if len(texts) > GUARD_MAX_ROWS:
            keep = np.sort(rng.choice(len(texts), GUARD_MAX_ROWS, replace=False))
            groups[name] = ([texts[i] for i in keep], [labels[i] for i in keep])
    if not groups:
        raise LookupError(f"{model_dir.name}: its validation split has no labeled rows")
    return groups


def accuracy_by_group(
    predict_proba: Callable[[list[str]], tuple[np.ndarray, np.ndarray, np.ndarray]],
    sets: GuardSets,
    heads: dict[str, tuple[str, ...]],
) -> dict[str, float]:
    out = {}
    for name, (texts, labels) in sets.items():
        head = name.split("/")[0]
        topic, sentiment, _ = predict_proba(texts)
        probs = topic if head == "topic" else sentiment
        predicted = np.asarray(heads[head])[probs.argmax(1)]
        out[name] = float(np.mean([p in gold.split(GOLD_SEPARATOR) for p, gold in zip(predicted, labels, strict=True)]))
    return out


def int8_passes(fp32: dict[str, float], int8: dict[str, float], tolerance_points: float = TOLERANCE_POINTS) -> bool:
    """True when int8 loses at most ``tolerance_points`` accuracy points on every group fp32 was measured on."""
    if not fp32 or set(fp32) != set(int8):
        return False
    return all(100 * (fp32[g] - int8[g]) <= tolerance_points + 1e-9 for g in fp32)


def run_guard(engine: Any, artifacts: OnnxArtifacts, data_root: Path | None) -> dict[str, Any]:
    """Measure fp32 and int8 on the validation split with the engine's own batching; returns the record."""
    from classifier.onnx_session import make_session

    heads = {"topic": engine.topics, "sentiment": engine.sentiments}
    sets = validation_sets(engine.model_dir, data_root, heads)
    scores = {}
    for precision, path in (("fp32", artifacts.fp32), ("int8", artifacts.int8)):
        engine.session = make_session(path, engine.threads or 1)
        engine._empty = engine._empty_answer()
        scores[precision] = accuracy_by_group(engine.predict_proba, sets, heads)
    engine.session = None
    passed = int8_passes(scores["fp32"], scores["int8"])
    return {
        "fingerprint": artifacts.fingerprint,
        "tolerance_points": TOLERANCE_POINTS,
        "rows": {name: len(texts) for name, (texts, _) in sets.items()},
        "fp32_accuracy": scores["fp32"],
        "int8_accuracy": scores["int8"],
        "decision": "int8" if passed else "fp32",
    }


def _record(engine: Any, artifacts: OnnxArtifacts, record: dict[str, Any]) -> None:
    with file_lock(artifacts.directory / ".lock"):
        write_atomic(artifacts.guard, json.dumps(record, indent=2) + "\n")
        meta_path = Path(engine.model_dir) / META_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            meta["onnx"] = {**record, "export": str(artifacts.directory)}
            write_atomic(meta_path, json.dumps(meta, indent=2) + "\n")
        except OSError as exc:  # a read-only registry: guard.json (maybe in the cache dir) still has it
            log.warning("cannot record the int8 guard in %s: %s", meta_path, exc)


def choose_precision(
    engine: Any, artifacts: OnnxArtifacts, requested: str, data_root: Path | None
) -> tuple[str, dict[str, Any] | None]:
    """fp32 or int8 for ONNX Runtime, and the guard record behind the choice."""
    if requested == "fp32":
        return "fp32", artifacts.read_guard()
    if requested == "int8":
        return "int8", artifacts.read_guard()  # asked for by name: served without the guard
    record = artifacts.read_guard()
    if record is None or record.get("fingerprint") != artifacts.fingerprint:
        try:
            record = run_guard(engine, artifacts, data_root)
        except Exception as exc:  # any failure of the guard must not stop serving: fp32 is the safe answer
            # Not cached: the data may be there next time.
            log.warning("int8 accuracy guard cannot run (%s: %s): serving fp32", type(exc).__name__, exc)
            return "fp32", {"decision": "fp32", "reason": str(exc)}
        _record(engine, artifacts, record)
        log.info("int8 accuracy guard: %s", record["decision"], extra={"guard": record})
    return record["decision"], record
