"""The CPU precision guard: a faster precision is served only when its accuracy on the model's validation split is
within ``TOLERANCE_POINTS`` of fp32 on every head and language; otherwise fp32 (ONNX Runtime).

Candidates, in a fixed order of preference: bf16 (torch, only on CPUs with native bf16: AVX512-BF16/AMX), then
int8 (ONNX Runtime, dynamic quantization), then fp32 (ONNX Runtime, the reference). The order is fixed, not
measured at load, so the choice never depends on wall-clock time or on what else the machine runs; it follows
the measured figures on this 2-core AVX512-BF16 machine (e5-small, 2 threads, docs/s, see classifier/README.md):
torch bf16 about 1.7-2x ONNX Runtime int8, which is about 2x ONNX Runtime fp32.

Every candidate's accuracy, the sample sizes, the time each measurement took and the decision are recorded
(guard.json beside the export, and ``onnx`` in the model's meta.json), keyed by the weights' fingerprint and
``GUARD_FORMAT``: the guard runs once per set of weights and can be audited.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from classifier.onnx_export import OnnxArtifacts, file_lock, write_atomic
from classifier.registry import META_FILE

log = logging.getLogger(__name__)

TOLERANCE_POINTS = 0.5
# Rows per head and language, a fixed seeded sample: bounds the one-off cost at the first load. The guard's time
# is inference (fp32 ONNX Runtime ~30-50 rows/s on 2 cores); 1000 rows per group took ~19 min with the export
# on a loaded machine. 500 keeps a step of 0.2 points, under the 0.5-point tolerance.
GUARD_MAX_ROWS = 500
GUARD_FORMAT = 2  # bump when the sample or the candidates change: older records are measured again
PREFERENCE = ("bf16", "int8")  # served in this order when they pass; fp32 otherwise

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


def passes(fp32: dict[str, float], candidate: dict[str, float], tolerance_points: float = TOLERANCE_POINTS) -> bool:
    """True when ``candidate`` loses at most ``tolerance_points`` accuracy points on every group fp32 was measured
    on (a group it was not measured on is not a pass)."""
    if not fp32 or set(fp32) != set(candidate):
        return False
    return all(100 * (fp32[g] - candidate[g]) <= tolerance_points + 1e-9 for g in fp32)


int8_passes = passes  # the rule is the same for every candidate


def candidates_here() -> tuple[str, ...]:
    """The precisions worth guarding on this machine, in order of preference: bf16 only where the CPU runs it
    natively (emulated bf16 is slower than fp32) and torch is installed."""
    from classifier.device import cpu_has_bf16

    bf16 = cpu_has_bf16() and importlib.util.find_spec("torch") is not None
    return tuple(p for p in PREFERENCE if p != "bf16" or bf16)


def decide(record: dict[str, Any] | None, available: tuple[str, ...]) -> str:
    """The first candidate in PREFERENCE that is available here and passed against fp32 in ``record``; else fp32.
    Decided from the recorded accuracies, so a record made on another CPU decides right on this one."""
    fp32 = (record or {}).get("fp32_accuracy")
    for precision in PREFERENCE:
        measured = (record or {}).get(f"{precision}_accuracy")
        if precision in available and fp32 and measured and passes(fp32, measured):
            return precision
    return "fp32"


def fresh(record: dict[str, Any] | None, fingerprint: str, wanted: tuple[str, ...]) -> bool:
    """A record measured for these weights, in this format, on every candidate ``wanted``."""
    if not record or record.get("fingerprint") != fingerprint or record.get("guard_format") != GUARD_FORMAT:
        return False
    return all(f"{p}_accuracy" in record for p in wanted)


def run_guard(
    engine: Any, artifacts: OnnxArtifacts, data_root: Path | None, candidates: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """Measure fp32 and every candidate on the validation split with the engine's own batching; returns the record.

    fp32 and int8 run on ``engine`` (an ONNX Runtime engine, its session swapped); bf16 on a torch engine over the
    same model directory and threads.
    """
    from classifier.onnx_session import make_session

    candidates = candidates_here() if candidates is None else candidates
    heads = {"topic": engine.topics, "sentiment": engine.sentiments}
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    sets = validation_sets(engine.model_dir, data_root, heads)
    seconds["validation_split"] = time.perf_counter() - start
    scores = {}
    for precision in ("fp32", *candidates):
        start = time.perf_counter()
        if precision == "bf16":
            from classifier.engine import ClassifierEngine

            torch_engine = ClassifierEngine.load(
                engine.model_dir, device="cpu", backend="torch", precision="bf16", threads=engine.threads
            )
            scores[precision] = accuracy_by_group(torch_engine.predict_proba, sets, heads)
            torch_engine.close()
            del torch_engine
        else:
            engine.session = make_session(
                artifacts.int8 if precision == "int8" else artifacts.fp32, engine.threads or 1
            )
            engine._empty = engine._empty_answer()
            scores[precision] = accuracy_by_group(engine.predict_proba, sets, heads)
        seconds[precision] = time.perf_counter() - start
        log.info("precision guard: %s measured in %.1f s", precision, seconds[precision])
    engine.session = None
    record: dict[str, Any] = {
        "fingerprint": artifacts.fingerprint,
        "guard_format": GUARD_FORMAT,
        "tolerance_points": TOLERANCE_POINTS,
        "preference": [*PREFERENCE, "fp32"],
        "candidates": list(candidates),
        "rows": {name: len(texts) for name, (texts, _) in sets.items()},
        **{f"{p}_accuracy": acc for p, acc in scores.items()},
        "passed": {p: passes(scores["fp32"], scores[p]) for p in candidates},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},  # for the record only: never decides anything
    }
    record["decision"] = decide(record, candidates)
    return record


def _record(engine: Any, artifacts: OnnxArtifacts, record: dict[str, Any]) -> None:
    with file_lock(artifacts.directory / ".lock"):
        write_atomic(artifacts.guard, json.dumps(record, indent=2) + "\n")
        meta_path = Path(engine.model_dir) / META_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            meta["onnx"] = {**record, "export": str(artifacts.directory)}
            write_atomic(meta_path, json.dumps(meta, indent=2) + "\n")
        except OSError as exc:  # a read-only registry: guard.json (maybe in the cache dir) still has it
            log.warning("cannot record the precision guard in %s: %s", meta_path, exc)


def choose_precision(
    engine: Any,
    artifacts: OnnxArtifacts,
    requested: str,
    data_root: Path | None,
    available: tuple[str, ...] | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """fp32, int8 (ONNX Runtime) or bf16 (torch), and the guard record behind the choice."""
    if requested in ("fp32", "int8", "bf16"):
        return requested, artifacts.read_guard()  # asked for by name: served without the guard
    candidates = candidates_here()
    record = artifacts.read_guard()
    if not fresh(record, artifacts.fingerprint, candidates):
        try:
            record = run_guard(engine, artifacts, data_root, candidates)
        except Exception as exc:  # any failure of the guard must not stop serving: fp32 is the safe answer
            # Not cached: the data may be there next time.
            log.warning("precision guard cannot run (%s: %s): serving fp32", type(exc).__name__, exc)
            return "fp32", {"decision": "fp32", "reason": str(exc)}
        _record(engine, artifacts, record)
        log.info("precision guard: %s", record["decision"], extra={"guard": record})
    assert record is not None
    return decide(record, candidates if available is None else available), record
