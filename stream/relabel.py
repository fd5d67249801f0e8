"""Relabel recent documents with a newly promoted model: ``finpulse relabel``, and the call after a promotion.

A relabel is an insert, like a redelivery: the document's latest row is read in full (ingest fields and any column
added later, e.g. story_id), only the label fields, ``model_version`` and ``classified_at`` are rewritten, and the
row goes back into ``documents`` with ``relabeled = 1``. ``documents`` is a ReplacingMergeTree(classified_at) and so
is the per-minute table the counts read (migration 0020), so the new row replaces the old one in every count: a
relabeled document counts once, under its new label.

Safe to run twice: documents whose latest row already carries the model's version are skipped, so a second run with
the same model writes nothing. The new ``classified_at`` is later than the row it replaces (now, or 1 ms past the old
one if the clocks disagree), so the new label always wins the merge.

Bounded memory: the window is read in pages of ``relabel_batch_size`` documents ordered by id (the table's key), each
page classified in one engine call and written in one insert.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from finpulse.contracts import document_text
from finpulse.settings import Settings
from finpulse.timeutil import as_utc
from warehouse.queries.corrections import overlay_document_rows

log = logging.getLogger(__name__)

LABEL_FIELDS = ("topic", "topic_score", "sentiment", "sentiment_score", "topic_probs", "sentiment_probs")
_NO_LABELS: dict[str, Any] = {
    "topic": None,
    "topic_score": None,
    "sentiment": None,
    "sentiment_score": None,
    "topic_probs": {},
    "sentiment_probs": {},
}

_WINDOW = "published_at >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')"
COUNT_SQL = f"""
SELECT count() AS docs, countIf(model_version != {{model:String}}) AS todo
FROM documents_latest
WHERE {_WINDOW}
"""
PAGE_SQL = f"""
SELECT *
FROM documents_latest
WHERE {_WINDOW} AND model_version != {{model:String}} AND id > {{after:String}}
ORDER BY id
LIMIT {{limit:UInt32}}
"""


class RelabelError(RuntimeError):
    """The relabel could not start (no promoted model, the model failed to load); the message says what to do."""


@dataclass(frozen=True)
class RelabelReport:
    model_version: str
    hours: float
    since: str  # ISO time: documents published from then on were considered
    in_window: int  # documents published in the window
    already_current: int  # of them, already labeled by this model (skipped)
    relabeled: int  # rows written
    changed: int  # of them, with a different topic or sentiment than before
    failed: int  # documents the model raised on: kept with their old labels
    batches: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        rate = self.relabeled / self.seconds if self.seconds > 0 else 0.0
        return (
            f"relabeled {self.relabeled:,} of {self.in_window:,} documents published since {self.since} with "
            f"{self.model_version} ({self.changed:,} changed label, {self.already_current:,} already current, "
            f"{self.failed:,} failed) in {self.seconds:.1f} s ({rate:,.0f} docs/s, {self.batches} batches)"
        )


def load_promoted_engine(settings: Settings, model: str | None = None) -> Any:
    """The engine of ``model`` (registry name or directory; None = the promoted one) on the configured device."""
    from classifier.registry import Registry, RegistryError

    try:
        path = Registry.from_settings(settings).resolve(model)
    except RegistryError as exc:
        raise RelabelError(str(exc)) from exc
    from classifier.serving import load_engine
    from stream.model import device_for_worker

    try:
        return load_engine(path, settings, device_for_worker(settings.model_device, 0))
    except Exception as exc:
        raise RelabelError(f"model {path} failed to load: {exc}") from exc


def _labels(engine: Any, rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any] | None], int]:
    """Label fields per row (None = the model raised on it), and the number it raised on. A language the model
    does not support gets no labels, as the stream stores it."""
    out: list[dict[str, Any] | None] = [dict(_NO_LABELS) for _ in rows]
    todo = [i for i, r in enumerate(rows) if engine.supports_language(r.get("lang"))]
    texts = [document_text(rows[i].get("title"), rows[i].get("body")) for i in todo]
    try:
        predictions = engine.predict(texts) if texts else []
        for i, p in zip(todo, predictions, strict=True):
            out[i] = p.as_fields()
        return out, 0
    except Exception as exc:  # one bad document must not stop the backfill: find it, keep its old labels
        log.warning("relabel batch failed (%s); classifying its documents one by one", exc)
    failed = 0
    for i, text in zip(todo, texts, strict=True):
        try:
            out[i] = engine.predict([text])[0].as_fields()
        except Exception:
            out[i] = None
            failed += 1
    return out, failed


def _relabeled_row(row: dict[str, Any], labels: dict[str, Any], model_version: str, now: datetime) -> dict[str, Any]:
    new = dict(row)
    new.update(labels)
    new["model_version"] = model_version
    old = row.get("classified_at")
    if isinstance(old, datetime):
        old = as_utc(old)
        now = max(now, old + timedelta(milliseconds=1))  # the newer version must win the ReplacingMergeTree merge
    new["classified_at"] = now
    if "relabeled" in new:
        new["relabeled"] = 1
    return new


def relabel_recent(
    settings: Settings,
    *,
    hours: float | None = None,
    progress: bool = False,
    model: str | None = None,
    engine: Any | None = None,
    client: Any | None = None,
    now: datetime | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> RelabelReport:
    """Relabel the documents published in the last ``hours`` (default settings.relabel_hours) with ``engine``
    (default: the promoted model, or ``model``), skipping those it already labeled. Idempotent.

    ``progress`` shows a bar on stderr; a log line per batch is written either way. ``on_batch(done, total)`` is
    called after each insert (status pages, tests)."""
    hours = settings.relabel_hours if hours is None else hours
    if not hours > 0:
        raise ValueError(f"hours must be > 0, got {hours}")
    engine = engine if engine is not None else load_promoted_engine(settings, model)
    version = str(engine.model_version)
    own_client = client is None
    if client is None:
        from warehouse.client import create_client

        client = create_client(settings)
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=hours)
    params: dict[str, Any] = {"since_ms": int(since.timestamp() * 1000), "model": version}
    try:
        in_window, total = (int(v) for v in client.query(COUNT_SQL, parameters=params).result_rows[0])
        log.info(
            "relabel started",
            extra={"model_version": version, "hours": hours, "in_window": in_window, "to_relabel": total},
        )
        bar = _bar(total, progress)
        done = changed = failed = batches = 0
        after = ""
        try:
            while True:
                page = client.query(
                    PAGE_SQL, parameters=params | {"after": after, "limit": settings.relabel_batch_size}
                )
                columns = list(page.column_names)
                rows = [dict(zip(columns, r, strict=True)) for r in page.result_rows]
                if not rows:
                    break
                after = str(rows[-1]["id"])
                labels, bad = _labels(engine, rows)
                stamp = datetime.now(UTC)
                kept = [(r, lab) for r, lab in zip(rows, labels, strict=True) if lab]
                # An analyst's correction wins over the new model's label (warehouse/queries/corrections.py).
                out = overlay_document_rows(client, [_relabeled_row(r, lab, version, stamp) for r, lab in kept])
                if out:
                    client.insert("documents", [[r[c] for c in columns] for r in out], column_names=columns)
                changed += sum(
                    1
                    for (r, _), new in zip(kept, out, strict=True)
                    if (r.get("topic"), r.get("sentiment")) != (new["topic"], new["sentiment"])
                )
                done += len(out)
                failed += bad
                batches += 1
                bar.update(len(rows))
                log.info("relabel progress %d/%d", done + failed, total, extra={"relabeled": done, "failed": failed})
                if on_batch:
                    on_batch(done + failed, total)
        finally:
            bar.close()
    finally:
        if own_client:
            client.close()
    report = RelabelReport(
        model_version=version,
        hours=float(hours),
        since=since.isoformat(timespec="seconds"),
        in_window=in_window,
        already_current=in_window - total,
        relabeled=done,
        changed=changed,
        failed=failed,
        batches=batches,
        seconds=round(time.perf_counter() - started, 3),
    )
    log.info("relabel finished: %s", report.summary(), extra=report.to_json())
    return report


def _bar(total: int, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="relabel", unit="doc", disable=not progress, dynamic_ncols=True)
