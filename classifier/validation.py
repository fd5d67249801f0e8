"""Re-create a model's validation split from its saved recipe, to evaluate it with `finpulse evaluate`.

The split is deterministic (seed + data), and the export checks the result against the fingerprint saved with
the model, so the rows written are exactly the ones the model was validated on. Files go where the user says
(never into the repository: the data licenses forbid copying the sets).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from classifier.config import TrainingArguments
from classifier.data import DataError, frame_fingerprint
from classifier.train import prepare_data


def export_validation(model_dir: Path, out_dir: Path, data_root: Path | None) -> dict[str, Path]:
    """Write one CSV (text,label,lang; text,labels,lang for multi-label topics) per source and task, plus
    phrasebank_agree100; returns name -> path."""
    args = TrainingArguments.from_dict(
        json.loads((model_dir / "training_args.json").read_text(encoding="utf-8")), origin=str(model_dir)
    )
    expected = json.loads((model_dir / "data.json").read_text(encoding="utf-8"))["validation_sha256"]
    _, val, _ = prepare_data(args, data_root)
    if frame_fingerprint(val) != expected:
        raise DataError(f"the data under {data_root} differs from what {model_dir.name} was trained on")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for source in sorted(val["source"].unique()):
        rows = val[val["source"] == source]
        for task in ("sentiment", "topic"):
            sel = rows[rows[task].notna()]
            if len(sel):
                written[f"{source}_{task}"] = _write(sel, task, out_dir / f"{source}_{task}.csv")
        if source == "phrasebank":
            sel = rows[(rows["group"] == "100") & rows["sentiment"].notna()]
            written["phrasebank_agree100_sentiment"] = _write(sel, "sentiment", out_dir / "phrasebank_agree100.csv")
    return written


def _write(rows: pd.DataFrame, task: str, path: Path) -> Path:
    out = pd.DataFrame({"text": rows["text"], "label": rows[task]})
    if task == "topic" and "topics" in rows and rows["topics"].notna().any():
        # Multi-label gold (FinNL): the mapped TFNS topics, ';'-separated, scored top-1-in-gold by evaluate.
        # The training label goes first: evaluate reads the first listed topic as the primary one.
        gold = [
            ";".join([label, *(t for t in g if t != label)]) if isinstance(g, tuple) else label
            for g, label in zip(rows["topics"], out["label"], strict=True)
        ]
        out = pd.DataFrame({"text": rows["text"], "labels": gold})
    if "lang" in rows:
        out["lang"] = rows["lang"].to_numpy()
    out.to_csv(path, index=False)
    return path
