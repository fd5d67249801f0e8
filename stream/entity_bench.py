"""Cost per document of entity-level sentiment in the stream: docs/s of a batch's decode + classify (+ shaping the
rows), without and with the entity rows (stream/entities.py), on the promoted document and entity models.

    python -m stream.entity_bench [--docs 2000] [--batch 256]

Documents: English news headlines naming 1-3 companies of ingest's dictionary (tickers found by ingest's extractor,
as in the stream), e.g. "Apple beats estimates while rival Microsoft warns on revenue". ClickHouse is not involved:
what is measured is the CPU the worker spends per document (the insert of the entity rows is one more request per
batch, in the same sink call).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from finpulse.contracts import make_raw
from finpulse.settings import load_settings
from stream.batch import Incoming
from stream.entities import EntityStage
from stream.runner import BatchRunner
from warehouse.schema import document_row

_TEMPLATES = (
    "{a} beats estimates while rival {b} warns on revenue",
    "{a} shares plunge after profit warning; {b} and {c} steady",
    "{a} raises guidance as {b} cuts jobs",
    "{a} to hold annual meeting on Tuesday",
    "{a} wins contract from {b}, analysts say {c} lags",
    "Regulators probe {a}; {b} rallies on record orders",
)
_COMPANIES = ("Apple", "Microsoft", "Tesla", "Nvidia", "Intel", "Boeing", "Netflix", "JPMorgan", "Goldman Sachs")


def messages(n: int) -> list[Incoming]:
    from ingest.tickers import DEFAULT_COMPANIES, TickerExtractor

    extract = TickerExtractor(DEFAULT_COMPANIES)
    out = []
    for i in range(n):
        names = [_COMPANIES[(i + k * 4) % len(_COMPANIES)] for k in range(3)]
        title = _TEMPLATES[i % len(_TEMPLATES)].format(a=names[0], b=names[1], c=names[2]) + f" (#{i})"
        found = extract.extract(title, "")
        doc = make_raw(source="bench", kind="news", title=title, tickers=found.tickers, entities=found.entities,
                       lang="en", source_id=str(i))  # fmt: skip
        out.append(Incoming(doc.key, doc.to_json(), "bench", 0, i))
    return out


def run(docs: int, batch: int) -> dict[str, Any]:
    from classifier.registry import Registry
    from classifier.serving import load_engine

    settings = load_settings()
    info = Registry.from_settings(settings).promoted()
    if info is None:
        raise SystemExit("no promoted document model: `finpulse train --quick --promote` first")
    engine = load_engine(info.path, settings, "cpu")
    stage = EntityStage(settings)
    if stage.engine() is None:
        raise SystemExit("no promoted entity model: `finpulse train --task entity --quick --promote` first")
    items = messages(docs)
    batches = [items[i : i + batch] for i in range(0, len(items), batch)]
    warm = BatchRunner.prepare(engine, batches[0])  # first calls build caches: not measured
    stage.rows([document_row(d) for d in warm.docs])
    base_s = entity_s = 0.0
    rows = pairs = 0
    for k, chunk in enumerate(batches, 1):
        t0 = time.perf_counter()
        prepared = BatchRunner.prepare(engine, chunk)
        shaped = [document_row(d) for d in prepared.docs]
        t1 = time.perf_counter()
        entity_rows = stage.rows(shaped)
        t2 = time.perf_counter()
        base_s += t1 - t0
        entity_s += t2 - t1
        rows += len(entity_rows)
        pairs += sum(min(len(d.tickers), stage.max_per_doc) for d in prepared.docs)
        print(f"batch {k}/{len(batches)}: {len(chunk)} docs, {len(entity_rows)} entity rows", file=sys.stderr)
    return {
        "docs": docs,
        "batch": batch,
        "document_model": info.model_version,
        "entity_model": stage.model_version,
        "entity_max_per_doc": stage.max_per_doc,
        "entities_per_doc": round(pairs / docs, 2),
        "entity_rows": rows,
        "docs_per_s_without_entities": round(docs / base_s, 1),
        "docs_per_s_with_entities": round(docs / (base_s + entity_s), 1),
        "entity_ms_per_doc": round(1000 * entity_s / docs, 3),
        "document_ms_per_doc": round(1000 * base_s / docs, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    if args.docs < 1 or args.batch < 1:
        parser.error("--docs and --batch must be at least 1")
    print(json.dumps(run(args.docs, args.batch), indent=2))


if __name__ == "__main__":
    main()
