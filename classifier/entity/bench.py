"""Cost per document of entity-level sentiment: docs/s of ``engine.predict`` with N entities per document.

    python -m classifier.entity.bench [--docs 1000] [--entities 1,3,5]

Documents: FiQA texts (en) and zh/finnsp_eval.csv news (zh) from the shared data, each with its own entities
padded to N with entities of other documents (absent ones cost the same: every pair is scored).
"""

from __future__ import annotations

import argparse
import json
import time

from classifier.data import read_table
from classifier.entity import convert, load_entity_engine
from finpulse.settings import load_settings


def bench_items(root, n_docs: int, n_entities: int) -> list[tuple[str, list[str]]]:
    frames = []
    if (root / convert.FIQA_FILE).is_file():
        frames.append(convert.fiqa_rows(read_table(root / convert.FIQA_FILE)))
    if (root / convert.FINNSP_EVAL_FILE).is_file():
        frames.append(convert.finnsp_rows(read_table(root / convert.FINNSP_EVAL_FILE)))
    docs = [(str(t), convert.split_entities(e)) for f in frames for t, e in zip(f["text"], f["entities"], strict=True)]
    docs = list(dict(docs).items())
    pool = sorted({e for _, ents in docs for e in ents})
    items = []
    for i in range(n_docs):
        text, ents = docs[i % len(docs)]
        extra = [pool[(i * 7 + k) % len(pool)] for k in range(n_entities)]
        items.append((text, (ents + [e for e in extra if e not in ents])[:n_entities]))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--entities", default="1,3,5")
    args = parser.parse_args()
    settings = load_settings()
    counts = [int(v) for v in args.entities.split(",")]
    engine = load_entity_engine(settings.model_copy(update={"entity_max_per_doc": max(counts)}))
    if engine is None:
        raise SystemExit("no entity model promoted: run `finpulse train --task entity --promote`")
    out = {"model_version": engine.model_version, "docs": args.docs}
    for n in counts:
        items = bench_items(settings.shared_data_dir, args.docs, n)
        engine.predict(items[:20])  # warm-up
        started = time.perf_counter()
        engine.predict(items)
        elapsed = time.perf_counter() - started
        pairs = sum(len(e) for _, e in items)
        out[f"entities_{n}"] = {"docs_per_s": round(len(items) / elapsed, 1), "pairs_per_s": round(pairs / elapsed, 1)}
        print(f"N={n}: {len(items) / elapsed:.1f} docs/s ({pairs / elapsed:.1f} pairs/s)", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
