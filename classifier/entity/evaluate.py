"""`finpulse evaluate --task entity --data FILE`: an entity model against (text, entity, label) rows.

The file is (text, entity, label) rows (CSV / JSONL / Parquet; optional ``entities`` = the document's entities,
';'-separated, and ``relevance`` 0/1), or a raw FiQA / FinNSP file, converted as convert.py documents. Printed:
accuracy, macro-F1, per-class P/R/F1, negative-class F1 and the majority-class baseline, overall and per source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from classifier.entity.convert import read_entity_rows, split_entities
from classifier.entity.scoring import relevance_figures, score_predictions


def evaluate_entity(engine: Any, path: Path) -> dict[str, Any]:
    rows = read_entity_rows(Path(path))
    others = [split_entities(v) for v in rows["entities"]]
    sentiment, relevance = engine.predict_pairs(list(rows["text"]), list(rows["entity"]), others)
    report = score_predictions(rows["label"].tolist(), sentiment)
    report.update(data=str(path), model_version=getattr(engine, "model_version", "?"))
    sources = sorted({str(s) for s in rows["source"]})
    if len(sources) > 1:
        report["by_source"] = {}
        for source in sources:
            sel = (rows["source"].astype(str) == source).to_numpy()
            report["by_source"][source] = score_predictions(rows["label"][sel].tolist(), sentiment[sel])
    rel = relevance_figures(rows["relevance"].tolist(), np.asarray(relevance))
    if rel:
        report["relevance"] = rel
    return report


def format_report(report: dict[str, Any]) -> str:
    base = report["baseline"]
    lines = [
        f"{report['model_version']} on {report['data']} (entity, {report['mode']}, n={report['n']}): "
        f"accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}, "
        f"negative F1 {report['negative_f1']:.4f}",
        f"majority-class baseline (always {base['label']}): accuracy {base['accuracy']:.4f}, "
        f"macro-F1 {base['macro_f1']:.4f}, negative F1 {base['negative_f1']:.4f}",
        f"{'class':<14}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>10}",
    ]
    for name, m in report["per_class"].items():
        lines.append(f"{name:<14}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['support']:>10}")
    lines.append("confusion (rows true, columns predicted): " + " | ".join(report["labels"]))
    lines += [f"  {name:<14}{row}" for name, row in zip(report["labels"], report["confusion"], strict=True)]
    for source, m in report.get("by_source", {}).items():
        lines.append(
            f"  {source}: n={m['n']} accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f} "
            f"negative F1 {m['negative_f1']:.4f} (baseline accuracy {m['baseline']['accuracy']:.4f})"
        )
    if "relevance" in report:
        r = report["relevance"]
        lines.append(
            f"relevance (>= 0.5 = about it): n={r['n']} accuracy {r['accuracy']:.4f} "
            f"(baseline {r['baseline_accuracy']:.4f})"
        )
    return "\n".join(lines)
