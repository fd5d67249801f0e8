"""Analysts' corrections as training data: training rows, the held-out "corrections" slice, and its score.

Corrections are read only through ``warehouse.queries.corrections`` (``latest_corrections``/``count_corrections``:
the latest correction per (document, field, entity) wins). Document-level fields (``sentiment``, ``topic``) train
the topic + sentiment model here; ``entity_sentiment`` corrections belong to the entity model and are skipped.

Leak rules, all checked by ``check_no_leak`` before training:
- a document is held out when a hash of its id falls under ``settings.correction_holdout_share``: it is on the
  same side in every run, whatever else changes. Held-out documents form the "corrections" validation slice;
  their texts never reach training (a labeled-set row with the same text leaves training too);
- a corrected document whose text is in the standard early-stopping, promotion or holdout rows is excluded
  from training (it stays out of the slice as well: it already counts in the standard figures);
- a corrected training document replaces a labeled-set row with the same text (the analyst's label wins).

Training rows carry a ``weight`` column: 1 for labeled-set rows, ``settings.correction_weight`` for corrections.
The slice's score is the accuracy on the corrected labels (per field, then the mean over the fields present):
the share of held-out corrections a model agrees with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from classifier import data as datamod
from finpulse.contracts import normalise_text
from finpulse.settings import Settings

if TYPE_CHECKING:
    from classifier.train import Splits

log = logging.getLogger(__name__)

SOURCE = "corrections"
FIELDS = ("sentiment", "topic")  # document-level fields this model learns; entity_sentiment is the entity model's
SLICE_FILE = "corrections_slice.jsonl"
SLICE_COLUMNS = ("document_id", "text", "lang", "sentiment", "topic")
_HASH_PERSON = b"fp-corrections"  # keyed hash: the held-out side does not correlate with other id hashes


class CorrectionStore(Protocol):
    """Where corrections come from: ClickHouse through warehouse.queries.corrections (tests pass a fake)."""

    def latest(self, *, since: datetime | None = None) -> list[Any]: ...

    def count(self, *, since: datetime | None = None) -> int: ...


class ClickHouseCorrections:
    """The corrections table through its Python API (warehouse/queries/corrections.py)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def latest(self, *, since: datetime | None = None) -> list[Any]:
        from warehouse.queries.corrections import latest_corrections

        return list(latest_corrections(self.client, since=since))

    def count(self, *, since: datetime | None = None) -> int:
        from warehouse.queries.corrections import count_corrections

        return int(count_corrections(self.client, since=since))


def open_store(settings: Settings, *, training: bool = True) -> tuple[CorrectionStore | None, str]:
    """The corrections store when ClickHouse answers, else None; the second value says which and why.

    ``training`` False (the report) reads them even when FINPULSE_CORRECTIONS_TRAINING is off."""
    if training and not settings.corrections_training:
        return None, "corrections not used (FINPULSE_CORRECTIONS_TRAINING=false)"
    from finpulse.stack.clickhouse.launch import clickhouse_ping, http_base_url

    url = http_base_url(settings)
    if not clickhouse_ping(settings, timeout=1.0):
        return None, f"no corrections: ClickHouse at {url} does not answer (training on the labeled sets alone)"
    try:
        from warehouse.client import create_client

        return ClickHouseCorrections(create_client(settings)), f"corrections from ClickHouse at {url}"
    except Exception as exc:  # a reachable but unusable endpoint (credentials, database): train without them
        return None, f"no corrections: ClickHouse at {url} failed ({type(exc).__name__}: {exc})"


def fetch(settings: Settings, store: CorrectionStore | None = None) -> tuple[list[Any] | None, str]:
    """All current corrections (latest per document/field/entity), or None when there is no store to read."""
    note = "corrections from the given store"
    if store is None:
        store, note = open_store(settings)
        if store is None:
            return None, note
    try:
        return store.latest(), note
    except Exception as exc:  # e.g. the corrections migration not applied yet: training itself must not fail
        log.warning("reading corrections failed; training without them", exc_info=True)
        return None, f"no corrections: reading them failed ({type(exc).__name__}: {exc})"


def is_held_out(document_id: str, share: float) -> bool:
    """Whether a corrected document belongs to the held-out slice: a fixed hash of its id, never the clock."""
    if share <= 0:
        return False
    digest = hashlib.blake2b(str(document_id).encode("utf-8"), digest_size=8, person=_HASH_PERSON).digest()
    return int.from_bytes(digest, "little") / 2.0**64 < share


def digest(corrections: Iterable[Any]) -> str:
    """A short hash of a correction set (which documents, which labels, when): names a retrain job."""
    rows = sorted(
        f"{c.document_id}\x1f{c.field}\x1f{getattr(c, 'entity', '')}\x1f{c.label}\x1f{c.corrected_at}"
        for c in corrections
    )
    return hashlib.sha256("\x1e".join(rows).encode("utf-8")).hexdigest()[:10]


def correction_frame(corrections: Iterable[Any]) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per corrected document in the loader's frame shape (+ document_id, corrected_at).

    Only the latest correction per (document, field) counts, even if the store returned older ones too; labels
    the product does not know are dropped and counted.
    """
    latest: dict[tuple[str, str], Any] = {}
    counts = {"fetched": 0, "other_fields": 0, "unknown_labels": 0, "empty_texts": 0}
    for c in corrections:
        counts["fetched"] += 1
        if c.field not in FIELDS:
            counts["other_fields"] += 1
            continue
        key = (str(c.document_id), str(c.field))
        if key not in latest or c.corrected_at > latest[key].corrected_at:
            latest[key] = c
    docs: dict[str, dict[str, Any]] = {}
    for (doc_id, fld), c in sorted(latest.items()):
        text = str(getattr(c, "text", "") or "")
        if not normalise_text(text):
            counts["empty_texts"] += 1
            continue
        try:
            label = datamod.normalise_label(c.label, fld)  # type: ignore[arg-type]
        except datamod.DataError:
            counts["unknown_labels"] += 1
            continue
        row = docs.setdefault(
            doc_id,
            {
                "text": text,
                "sentiment": None,
                "topic": None,
                "source": SOURCE,
                "group": None,
                "lang": str(getattr(c, "lang", "") or "") or None,
                "topics": None,
                "document_id": doc_id,
                "corrected_at": c.corrected_at,
            },
        )
        row[fld] = label
        row["corrected_at"] = max(row["corrected_at"], c.corrected_at)
    columns = [*datamod.COLUMNS, "document_id", "corrected_at"]
    frame = pd.DataFrame(list(docs.values()), columns=columns)
    if "lang" in frame and len(frame):
        from classifier.quick import text_language

        frame["lang"] = [
            v if isinstance(v, str) and v else text_language(t)
            for v, t in zip(frame["lang"], frame["text"], strict=True)
        ]
    return frame, counts


def _keys(frame: pd.DataFrame) -> set[str]:
    return {normalise_text(t) for t in frame["text"]}


@dataclass
class CorrectionSplit:
    """Corrections divided for one training run: rows to train on (weighted) and the held-out slice."""

    train: pd.DataFrame
    slice: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, note: str, weight: float = 1.0, share: float = 0.0) -> CorrectionSplit:
        frame = pd.DataFrame(columns=[*datamod.COLUMNS, "document_id", "corrected_at", "weight"])
        summary = {"used": False, "note": note, "train_rows": 0, "held_out": 0, "weight": weight, "share": share}
        return cls(frame, frame.copy(), summary)


def split_corrections(
    corrections: Iterable[Any], standard: Sequence[pd.DataFrame], *, share: float, weight: float, note: str = ""
) -> CorrectionSplit:
    """Held-out slice by document-id hash; training rows minus every document in the standard splits."""
    frame, counts = correction_frame(corrections)
    held = np.array([is_held_out(d, share) for d in frame["document_id"]], dtype=bool)
    standard_keys: set[str] = set().union(*(_keys(f) for f in standard)) if standard else set()
    in_standard = np.array([normalise_text(t) in standard_keys for t in frame["text"]], dtype=bool)
    slice_rows = frame[held & ~in_standard].reset_index(drop=True)
    train = frame[~held & ~in_standard].reset_index(drop=True)
    # Two documents with one text (a story's copies) on both sides: the held-out copy wins, training loses it.
    slice_keys = _keys(slice_rows)
    same_text = np.array([normalise_text(t) in slice_keys for t in train["text"]], dtype=bool)
    train = train[~same_text].reset_index(drop=True)
    train["weight"] = float(weight)
    summary = {
        "used": True,
        "note": note,
        **counts,
        "documents": len(frame),
        "train_rows": len(train),
        "held_out": len(slice_rows),
        "excluded_in_standard_splits": int(in_standard.sum()),
        "excluded_same_text_as_held_out": int(same_text.sum()),
        "weight": float(weight),
        "share": float(share),
        "digest": digest(corrections) if counts["fetched"] else None,
    }
    return CorrectionSplit(train, slice_rows, summary)


def with_corrections(
    splits: Splits,
    settings: Settings,
    corrections: Sequence[Any] | None = None,
    *,
    store: CorrectionStore | None = None,
    echo: Callable[[str], None] | None = None,
) -> tuple[Splits, CorrectionSplit]:
    """``splits`` with the corrections added to its training rows (weighted); the held-out slice beside.

    ``corrections`` None reads them from the store (ClickHouse when it answers); the quick model and the
    transformer both call this, so they train on, and hold out, the same corrected documents.
    """
    from classifier.train import Splits

    say = echo or (lambda message: log.info(message))
    share, weight = settings.correction_holdout_share, settings.correction_weight
    note = f"{len(corrections)} corrections given" if corrections is not None else ""
    if corrections is None:
        fetched, note = fetch(settings, store)
        if fetched is None:
            say(f"training without corrections: {note}")
            base = splits.train.copy()
            base["weight"] = 1.0
            return Splits(base, splits.early_stop, splits.promotion, splits.holdout, splits.fingerprint), (
                CorrectionSplit.empty(note, weight, share)
            )
        corrections = fetched
    standard = [splits.early_stop, splits.promotion, splits.holdout]
    corr = split_corrections(corrections, standard, share=share, weight=weight, note=note)
    drop = _keys(corr.train) | _keys(corr.slice)
    base = splits.train[[normalise_text(t) not in drop for t in splits.train["text"]]].copy()
    base["weight"] = 1.0
    train = pd.concat([base, corr.train], ignore_index=True) if len(corr.train) else base.reset_index(drop=True)
    train["weight"] = train["weight"].astype(float)
    for held in (*standard, corr.slice):
        datamod.check_no_leak(train, held)
    corr.summary["replaced_labeled_rows"] = len(splits.train) - len(base)
    fingerprint = {
        **splits.fingerprint,
        "train_rows": len(train),
        "train_sha256": datamod.frame_fingerprint(train),
        "corrections": corr.summary,
    }
    say(
        f"corrections: {corr.summary['train_rows']} documents train (weight {weight:g}), {corr.summary['held_out']} "
        f"held out as the corrections slice, {corr.summary['excluded_in_standard_splits']} excluded (in the "
        f"standard validation/test rows) - {note}"
    )
    return Splits(train, splits.early_stop, splits.promotion, splits.holdout, fingerprint), corr


def sample_weights(frame: pd.DataFrame) -> np.ndarray:
    """Per-row training weights (1 where the frame has no weight column)."""
    if "weight" not in frame.columns:
        return np.ones(len(frame), dtype=np.float32)
    return frame["weight"].fillna(1.0).to_numpy(dtype=np.float32)


# --- the slice -----------------------------------------------------------------------------------------------
def slice_metrics(
    frame: pd.DataFrame,
    topic_probs: np.ndarray,
    sent_probs: np.ndarray,
    topics: Sequence[str],
    sentiments: Sequence[str],
) -> dict[str, Any]:
    """Accuracy on the corrected labels per field and ``score``, their mean over the fields present."""
    out: dict[str, Any] = {"n": len(frame)}
    scores = []
    for fld, probs, names in (("sentiment", sent_probs, sentiments), ("topic", topic_probs, topics)):
        if fld not in frame.columns or not len(frame):
            continue
        gold = frame[fld].to_numpy()
        has = np.array([isinstance(v, str) and v in names for v in gold], dtype=bool)
        if not has.any():
            continue
        predicted = np.asarray(names)[probs.argmax(axis=1)]
        agree = predicted[has] == gold[has]
        out[fld] = {"n": int(has.sum()), "accuracy": round(float(agree.mean()), 4), "agree": int(agree.sum())}
        scores.append(float(agree.mean()))
    out["score"] = round(float(np.mean(scores)), 4) if scores else None
    return out


def score_slice(engine: Any, frame: pd.DataFrame) -> dict[str, Any]:
    """A served engine's (quick or transformer) slice metrics."""
    if not len(frame):
        return {"n": 0, "score": None}
    topic, sentiment, _ = engine.predict_proba([str(t) for t in frame["text"]])
    return slice_metrics(frame, topic, sentiment, engine.topics, engine.sentiments)


def save_slice(folder: Path, frame: pd.DataFrame) -> None:
    """The held-out slice beside the model: the shadow evaluation scores candidate and serving model on it."""
    with open(folder / SLICE_FILE, "w", encoding="utf-8") as fh:
        for row in frame.itertuples(index=False):
            record = {c: getattr(row, c, None) for c in SLICE_COLUMNS}
            fh.write(json.dumps({k: (v if isinstance(v, str) else None) for k, v in record.items()}) + "\n")


def load_slice(folder: Path) -> pd.DataFrame:
    path = folder / SLICE_FILE
    if not path.is_file():
        return pd.DataFrame(columns=list(SLICE_COLUMNS))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return pd.DataFrame(rows, columns=list(SLICE_COLUMNS))


def card_section(summary: dict[str, Any]) -> str:
    """The model card's corrections paragraph: what was used, what was held out, the slice score."""
    lines = ["## Analysts' corrections", ""]
    if not summary.get("used"):
        return "\n".join([*lines, f"- not used: {summary.get('note')}", ""])
    slice_scores = summary.get("slice") or {}
    lines += [
        f"- {summary.get('documents', 0)} corrected documents ({summary.get('note')}); "
        f"{summary['train_rows']} trained on with weight {summary['weight']:g}",
        f"- {summary['held_out']} held out (share {summary['share']:g}, by a hash of the document id) as the "
        f"corrections slice; {summary.get('excluded_in_standard_splits', 0)} excluded as standard validation/test "
        "documents",
        f"- corrections-slice accuracy (share of held-out corrections the model agrees with): "
        f"{slice_scores.get('score')} on {slice_scores.get('n', 0)} documents",
        "",
    ]
    return "\n".join(lines)


# --- the per-model report ----------------------------------------------------------------------------------------
REPLAY_KINDS = {"none": (), "quick": ("linear",), "all": ("linear", "transformer")}


def model_report(
    settings: Settings, corrections: Sequence[Any], *, replay: str = "quick", limit: int = 2000
) -> dict[str, Any]:
    """How many corrections each model disagreed with, and how each registry model labels the corrected documents.

    ``overridden``: corrections whose model_version is the model's (the label an analyst replaced); ``disagreed``:
    those whose new label differs from the replaced one (an analyst may confirm a label too). ``replay`` (quick:
    the linear models only, cheap; all: transformers too; none) re-labels up to ``limit`` corrected documents
    with each registry model and counts where it disagrees with the analyst's label (document-level fields).
    """
    from classifier.registry import Registry

    if replay not in REPLAY_KINDS:
        raise ValueError(f"replay must be one of {', '.join(REPLAY_KINDS)}, not {replay!r}")
    registry = Registry.from_settings(settings)
    models = registry.list()
    by_version = {m.model_version: m for m in models}
    rows: dict[str, dict[str, Any]] = {}

    def row(version: str) -> dict[str, Any]:
        info = by_version.get(version)
        return rows.setdefault(
            version,
            {
                "model_version": version,
                "model": info.name if info else None,
                "kind": info.kind if info else None,
                "promoted": bool(info and info.promoted),
                "overridden": 0,
                "disagreed": 0,
                "disagreed_by_field": {},
                "replay": None,
            },
        )

    for c in corrections:
        r = row(str(c.model_version or "(none)"))
        r["overridden"] += 1
        if str(c.label) != str(c.previous_label):
            r["disagreed"] += 1
            r["disagreed_by_field"][c.field] = r["disagreed_by_field"].get(c.field, 0) + 1
    frame, _ = correction_frame(corrections)
    frame = frame.head(limit)
    for info in models:
        if info.kind not in REPLAY_KINDS[replay] or not len(frame):
            continue
        r = row(info.model_version)
        try:
            engine = _load(info.path, settings)
            scores = score_slice(engine, frame)
            engine.close()
        except Exception as exc:  # a model that no longer loads is reported, not fatal to the report
            r["replay"] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        r["replay"] = {
            fld: {"n": v["n"], "disagree": v["n"] - v["agree"], "agreement": v["accuracy"]}
            for fld, v in scores.items()
            if isinstance(v, dict)
        }
    ordered = sorted(rows.values(), key=lambda r: (-r["overridden"], r["model_version"]))
    return {
        "corrections": len(list(corrections)),
        "documents_replayed": len(frame) if replay != "none" else 0,
        "replay": replay,
        "models": ordered,
    }


def _load(path: Path, settings: Settings) -> Any:
    from classifier.serving import load_engine, model_kind

    options = {"threads": settings.model_threads} if model_kind(path) == "transformer" else {}
    return load_engine(path, settings, "cpu", **options)


def format_report(report: dict[str, Any]) -> str:
    """The report as a table (rich), one row per model version."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "model",
        "model_version",
        "overridden",
        "disagreed",
        "replay: sentiment disagree/n",
        "replay: topic disagree/n",
        title=f"{report['corrections']} corrections; replayed on {report['documents_replayed']} corrected documents",
    )
    for r in report["models"]:
        cells = []
        for fld in FIELDS:
            rep = r["replay"] or {}
            if "error" in rep:
                cells.append(f"error: {rep['error'][:40]}")
            elif fld in rep:
                cells.append(f"{rep[fld]['disagree']}/{rep[fld]['n']} ({1 - rep[fld]['agreement']:.0%})")
            else:
                cells.append("-")
        name = (r["model"] or "(not in the registry)") + (" *" if r["promoted"] else "")
        table.add_row(name, r["model_version"], str(r["overridden"]), str(r["disagreed"]), *cells)
    console = Console(width=160, record=True)
    with console.capture() as capture:
        console.print(table)
    return (
        capture.get() + "* = promoted; overridden = corrections of this model's labels; replay = how the model "
        "labels the corrected documents today\n"
    )


# --- measuring the loop on a labeled file ----------------------------------------------------------------------
def simulate(settings: Settings, file: Path, *, field_name: str = "sentiment", lang: str = "") -> dict[str, Any]:
    """A labeled file's rows as analysts' corrections: the quick model trained without and with them, then the
    shadow decision (both scores). Writes only under ``settings.data_dir`` (use a scratch folder)."""
    from datetime import UTC, timedelta

    from classifier.quick import train_quick
    from classifier.shadow import shadow_promote
    from warehouse.queries.corrections import Correction

    rows = datamod.read_table(file)
    now = datetime.now(UTC)
    corrections = [
        Correction(
            id=f"sim-{i}",
            document_id=f"{file.stem}-{i}",
            field=field_name,
            entity="",
            label=str(label),
            previous_label="",
            model_version="simulated",
            analyst="simulate",
            corrected_at=now + timedelta(milliseconds=i),
            text=str(text),
            lang=lang,
        )
        for i, (text, label) in enumerate(zip(rows["text"], rows["label"], strict=True))
    ]
    started = time.monotonic()
    train_quick(settings, name="without-corrections", promote=True, corrections=[])
    without_s = time.monotonic() - started
    info = train_quick(settings, name="with-corrections", corrections=corrections)
    decision = shadow_promote(settings, "with-corrections", hook=False)
    keys = ("rows", "candidate_score", "serving_score", "corrections_rows", "candidate_corrections_score")
    return {
        "corrections": {k: (info.corrections or {}).get(k) for k in ("documents", "train_rows", "held_out")},
        "excluded_in_standard_splits": (info.corrections or {}).get("excluded_in_standard_splits"),
        "train_without_s": round(without_s, 1),
        "train_with_s": round(time.monotonic() - started - without_s, 1),
        **{k: decision.get(k) for k in (*keys, "serving_corrections_score", "promoted", "reason")},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """python -m classifier.corrections FILE [--field sentiment|topic] --data-dir SCRATCH"""
    import argparse

    from finpulse.settings import load_settings

    parser = argparse.ArgumentParser(description=simulate.__doc__)
    parser.add_argument("file", type=Path, help="labeled CSV/JSONL/Parquet with text and label columns")
    parser.add_argument("--field", default="sentiment", choices=FIELDS)
    parser.add_argument("--lang", default="")
    parser.add_argument("--data-dir", type=Path, required=True, help="scratch folder for the two models")
    ns = parser.parse_args(argv)
    settings = load_settings(data_dir=ns.data_dir, corrections_training=False)
    print(json.dumps(simulate(settings, ns.file, field_name=ns.field, lang=ns.lang), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
