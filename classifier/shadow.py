"""Shadow evaluation: score a candidate model and the serving one on the same promotion rows, promote the better.

"Beats" means: the candidate's score exceeds the serving model's by more than ``settings.promotion_min_delta``
(default 0: strictly greater). A model's score is the mean macro-F1 over the (language, head) slices of the
promotion split - English sentiment, English topic, Chinese sentiment, Chinese topic where present - so every
language weighs the same whatever its row count.

The promotion split is re-created from the candidate's saved recipe (seeded, fingerprint-checked). Rows that
either model was trained on (their ``train_keys.npy``) are dropped, so a serving model trained on another data
version is never scored on its own training rows. A candidate that cannot be loaded through
``serving.load_engine`` and classify two texts is never promoted.

Analysts' corrections (classifier/corrections.py): when the candidate's held-out corrections slice (saved with it,
minus documents either model trained on) is non-empty, the rule becomes "no regression on the standard promotion
rows (candidate score >= serving score; a tie is no regression) AND a gain on the corrections slice": the
candidate's slice accuracy (share of held-out corrected labels it agrees with) exceeds the serving model's by more
than ``settings.correction_min_gain`` (default 0: strictly greater; a tie is no gain, so not promoted).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from classifier.config import TrainingArguments
from classifier.registry import TRAIN_KEYS_FILE, ModelInfo, Registry
from finpulse.settings import Settings

log = logging.getLogger(__name__)

SMOKE_TEXTS = ["Acme shares jump after record quarterly profit", "央行宣布下调存款准备金率"]
RULE = "candidate score > serving score + min_delta; score = mean macro-F1 over (language, head) slices"
RULE_CORRECTIONS = (
    "candidate score >= serving score (no regression on the promotion rows) and candidate corrections-slice "
    "accuracy > serving corrections-slice accuracy + correction_min_gain"
)


def _train_keys(path: Path) -> np.ndarray:
    file = path / TRAIN_KEYS_FILE
    return np.load(file, allow_pickle=False) if file.is_file() else np.zeros(0, dtype=np.uint64)


def promotion_rows(candidate: ModelInfo, serving: ModelInfo | None, data_root: Path | None) -> tuple[pd.DataFrame, int]:
    """The candidate's promotion split minus rows either model trained on; returns (rows, rows dropped)."""
    from classifier.train import prepare_splits, text_key

    args = TrainingArguments.from_dict(
        json.loads((candidate.path / "training_args.json").read_text(encoding="utf-8")), origin=str(candidate.path)
    )
    frame = prepare_splits(args, data_root).promotion.reset_index(drop=True)
    seen = np.union1d(_train_keys(candidate.path), _train_keys(serving.path) if serving is not None else [])
    keys = np.array([text_key(t) for t in frame["text"]], dtype=np.uint64)
    keep = ~np.isin(keys, seen.astype(np.uint64))
    return frame[keep].reset_index(drop=True), int((~keep).sum())


def corrections_rows(candidate: ModelInfo, serving: ModelInfo | None) -> tuple[pd.DataFrame, int]:
    """The candidate's held-out corrections slice minus documents either model trained on; (rows, dropped)."""
    from classifier.corrections import load_slice
    from classifier.train import text_key

    frame = load_slice(candidate.path)
    if not len(frame):
        return frame, 0
    seen = np.union1d(_train_keys(candidate.path), _train_keys(serving.path) if serving is not None else [])
    keys = np.array([text_key(t) for t in frame["text"]], dtype=np.uint64)
    keep = ~np.isin(keys, seen.astype(np.uint64))
    return frame[keep].reset_index(drop=True), int((~keep).sum())


def score_model(engine: Any, frame: pd.DataFrame) -> dict[str, Any]:
    from classifier.quick import frame_languages, split_metrics

    topic, sentiment, _ = engine.predict_proba(list(frame["text"]))
    return split_metrics(frame, topic, sentiment, frame_languages(frame))


def load_checked(path: Path, settings: Settings) -> Any:
    """Load through the stream's own loader and classify two texts; raises when either fails."""
    from classifier.serving import load_engine

    options = {"threads": settings.trainer_threads} if _is_transformer(path) else {}
    engine = load_engine(path, settings, "cpu", **options)
    predictions = engine.predict(SMOKE_TEXTS)
    if len(predictions) != len(SMOKE_TEXTS):
        raise RuntimeError(f"{path}: predict returned {len(predictions)} results for {len(SMOKE_TEXTS)} texts")
    return engine


def _is_transformer(path: Path) -> bool:
    from classifier.serving import model_kind

    return model_kind(path) == "transformer"


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {
        k: {"n": v["n"], "accuracy": round(v["accuracy"], 4), "macro_f1": round(v["macro_f1"], 4)}
        for k, v in metrics.items()
        if isinstance(v, dict) and "accuracy" in v and "/" in k and k.split("/")[0] in ("en", "zh")
    }
    out["score"] = round(float(metrics.get("score", 0.0)), 4)
    return out


def shadow_promote(
    settings: Settings, candidate_name: str, *, data_root: Path | None = None, hook: bool = True
) -> dict[str, Any]:
    """Evaluate ``candidate_name`` against the promoted model and promote it when it beats it.

    Returns the decision (also written into the candidate's meta.json as ``shadow`` and into its model card).
    """
    registry = Registry.from_settings(settings)
    candidate = registry.get(candidate_name)
    serving = registry.promoted()
    if serving is not None and serving.kind == "none":
        serving = None  # the no-data placeholder labels nothing: anything that loads beats it
    root = data_root if data_root is not None else settings.shared_data_dir
    decision: dict[str, Any] = {
        "candidate": candidate.name,
        "serving": serving.name if serving is not None else None,
        "rule": RULE,
        "min_delta": settings.promotion_min_delta,
    }
    try:
        cand_engine = load_checked(candidate.path, settings)
    except Exception as exc:  # any load failure means: not servable, keep what is served
        log.error("candidate %s does not load; not promoted: %s", candidate.name, exc, exc_info=True)
        decision.update(promoted=False, reason=f"candidate failed to load or predict: {type(exc).__name__}: {exc}")
        return _record(registry, candidate, decision)
    from classifier.corrections import score_slice

    rows, dropped = promotion_rows(candidate, serving, root)
    slice_rows, slice_dropped = corrections_rows(candidate, serving)
    decision.update(rows=len(rows), rows_dropped_as_trained_on=dropped)
    decision.update(corrections_rows=len(slice_rows), corrections_rows_dropped_as_trained_on=slice_dropped)
    if len(slice_rows):
        decision.update(rule=RULE_CORRECTIONS, min_gain=settings.correction_min_gain)
    cand_metrics = score_model(cand_engine, rows) if len(rows) else {"score": 0.0}
    cand_slice = score_slice(cand_engine, slice_rows)
    cand_engine.close()
    decision["candidate_corrections_score"] = cand_slice["score"]
    decision["candidate_score"] = round(float(cand_metrics["score"]), 4)
    decision["candidate_metrics"] = _headline(cand_metrics)
    if serving is None:
        decision.update(promoted=True, serving_score=None, reason="no trained model is served")
    else:
        try:
            serv_engine = load_checked(serving.path, settings)
            serv_metrics = score_model(serv_engine, rows) if len(rows) else {"score": 0.0}
            serv_slice = score_slice(serv_engine, slice_rows)
            serv_engine.close()
        except Exception as exc:  # the served model no longer loads: a loadable candidate is better than it
            log.error("serving model %s does not load: %s", serving.name, exc)
            serv_metrics, serv_slice = {"score": -1.0}, {"n": len(slice_rows), "score": -1.0}
        decision["serving_score"] = round(float(serv_metrics["score"]), 4)
        decision["serving_metrics"] = _headline(serv_metrics)
        decision["serving_corrections_score"] = serv_slice["score"]
        if len(slice_rows):
            beats, decision["reason"] = _with_corrections(
                cand_metrics["score"], serv_metrics["score"], cand_slice, serv_slice, settings.correction_min_gain
            )
            beats = beats and len(rows) > 0
            decision["reason"] += "" if len(rows) else " (no promotion rows left)"
        else:
            beats = len(rows) > 0 and cand_metrics["score"] > serv_metrics["score"] + settings.promotion_min_delta
            decision["reason"] = (
                f"candidate {cand_metrics['score']:.4f} {'>' if beats else '<='} serving {serv_metrics['score']:.4f}"
                + (f" + {settings.promotion_min_delta}" if settings.promotion_min_delta else "")
                + ("" if len(rows) else " (no promotion rows left)")
            )
        decision["promoted"] = bool(beats)
    result = _record(registry, candidate, decision)
    if decision["promoted"]:
        info = registry.promote(candidate.name)
        log.info("promoted %s: %s", candidate.name, decision["reason"])
        if hook:
            on_promoted(settings, info)
    else:
        log.info("kept %s: %s", decision["serving"], decision["reason"])
    return result


def _with_corrections(
    cand: float, serv: float, cand_slice: dict[str, Any], serv_slice: dict[str, Any], min_gain: float
) -> tuple[bool, str]:
    """No regression on the promotion rows and a gain on the corrections slice; (promote?, reason)."""
    c_slice, s_slice = float(cand_slice["score"]), float(serv_slice["score"])
    no_regression = cand >= serv
    gain = c_slice > s_slice + min_gain
    reason = (
        f"promotion rows: candidate {cand:.4f} {'>=' if no_regression else '<'} serving {serv:.4f} "
        f"({'no regression' if no_regression else 'regression'}); corrections slice (n={cand_slice['n']}): "
        f"candidate {c_slice:.4f} {'>' if gain else '<='} serving {s_slice:.4f}"
        + (f" + {min_gain}" if min_gain else "")
        + f" ({'gain' if gain else 'no gain'})"
    )
    return no_regression and gain, reason


def _record(registry: Registry, candidate: ModelInfo, decision: dict[str, Any]) -> dict[str, Any]:
    registry.update_meta(candidate.name, shadow=decision)
    card = candidate.path / "README.md"
    lines = [
        "",
        "## Shadow evaluation (promotion split)",
        "",
        f"- rule: {decision['rule']} (min_delta {decision['min_delta']})",
        f"- serving model: {decision['serving'] or 'none'}",
        f"- rows: {decision.get('rows', 0)} (dropped as trained on by either model: "
        f"{decision.get('rows_dropped_as_trained_on', 0)})",
        f"- candidate score: {decision.get('candidate_score')}; serving score: {decision.get('serving_score')}",
        f"- corrections slice: {decision.get('corrections_rows', 0)} held-out corrected documents; candidate "
        f"accuracy {decision.get('candidate_corrections_score')}; serving accuracy "
        f"{decision.get('serving_corrections_score')}",
        f"- decision: {'promoted' if decision['promoted'] else 'not promoted'} ({decision['reason']})",
        "",
    ]
    with open(card, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    return decision


def on_promoted(settings: Settings, info: ModelInfo) -> None:
    """After a promotion: relabel the recent documents (settings.relabel_hours) with the new model."""
    from stream.relabel import relabel_recent

    try:
        relabel_recent(settings, hours=None, progress=False)
    except Exception:  # the promotion stands; the backfill is idempotent and can be run again by hand
        log.exception("relabel after promoting %s failed; run `finpulse relabel` again", info.name)
