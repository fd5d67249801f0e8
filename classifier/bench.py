"""`finpulse bench classifier`: the engine against `transformers.pipeline` on the same weights, same texts, same run.

The baseline is ``pipeline("text-classification", batch_size=64)`` over a sequence-classification view of the
same encoder + sentiment head (shared modules, fp32, the pipeline's own tokenization and batching). Both get the
same cleaned texts, so the ratio measures the engine's batching, precision and overheads, not its input.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classifier.data import DataError, read_table
from classifier.device import cpu_threads
from classifier.engine import ClassifierEngine
from classifier.model import MultiTaskClassifier, SentimentSequenceClassifier, load_tokenizer
from classifier.text import clean_text

PIPELINE_BATCH = 64


def bench_texts(data_root: Path | None, n: int) -> list[str]:
    """Real texts: TFNS tweets, topped up with PhraseBank sentences (longer) when more are asked for."""
    if data_root is None:
        raise DataError("the benchmark reads real texts from the shared data dir; set FINPULSE_SHARED_DATA_DIR")
    texts: list[str] = []
    for rel in ("en/tfns_sentiment_train.csv", "en/tfns_topic_train.csv", "en/phrasebank_train.csv"):
        path = data_root / rel
        if path.is_file():
            texts.extend(read_table(path)["text"].astype(str).tolist())
    if not texts:
        raise DataError(f"no benchmark texts under {data_root}")
    rng = np.random.default_rng(0)
    picked = rng.choice(len(texts), size=min(n, len(texts)), replace=False)
    return [texts[i] for i in picked]


def _measure(run: Callable[[Sequence[str]], Any], texts: list[str], chunk: int, repeats: int) -> dict[str, float]:
    run(texts[: min(len(texts), 2 * chunk)])  # warm-up: first-call allocations, lazy init, compilation
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(texts)
        best = min(best, time.perf_counter() - start)
    latencies = []
    for i in range(0, len(texts), chunk):
        start = time.perf_counter()
        run(texts[i : i + chunk])
        latencies.append(time.perf_counter() - start)
    return {
        "docs_per_s": len(texts) / best,
        "p50_batch_ms": float(np.percentile(latencies, 50) * 1000),
        "p95_batch_ms": float(np.percentile(latencies, 95) * 1000),
    }


def run_bench(
    model_dir: Path,
    texts: list[str],
    *,
    device: str = "cpu",
    chunk: int = PIPELINE_BATCH,
    repeats: int = 1,
    threads: int | None = None,
    engine_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """docs/s and p50/p95 latency per ``chunk``-document call, for the engine and for the pipeline baseline."""
    from transformers import pipeline

    threads = cpu_threads(threads)  # decided once, so both sides run with the same thread count
    engine = ClassifierEngine.load(model_dir, device=device, threads=threads, **(engine_options or {}))
    cleaned = [clean_text(t, engine.strip_urls) for t in texts]
    engine_stats = _measure(engine.predict, cleaned, chunk, repeats)
    engine_labels = [p.sentiment for p in engine.predict(cleaned)]
    engine.close()

    if device == "cpu":
        torch.set_num_threads(threads)
    wrapper = SentimentSequenceClassifier.from_multitask(MultiTaskClassifier.load(model_dir))
    # The pipeline logs an *error* that a custom class is "not supported for text-classification", then runs it
    # all the same; silence that one logger so the benchmark's output stays readable.
    logging.getLogger("transformers.pipelines.base").setLevel(logging.CRITICAL)
    pipe = pipeline(
        "text-classification", model=wrapper, tokenizer=load_tokenizer(model_dir), device=torch.device(device)
    )
    kwargs = {"batch_size": PIPELINE_BATCH, "truncation": True, "max_length": engine.max_length}
    with torch.inference_mode():
        pipe_stats = _measure(lambda batch: pipe(list(batch), **kwargs), cleaned, chunk, repeats)
        pipe_labels = [r["label"] for r in pipe(cleaned, **kwargs)]
    agree = float(np.mean([a == b for a, b in zip(engine_labels, pipe_labels, strict=True)]))
    return {
        "device": device,
        "docs": len(texts),
        "threads": torch.get_num_threads() if device == "cpu" else None,
        "engine_precision": str(engine.dtype).removeprefix("torch."),
        "engine_int8": bool(engine.options.int8),
        "engine_docs_per_s": round(engine_stats["docs_per_s"], 1),
        "engine_p50_batch_ms": round(engine_stats["p50_batch_ms"], 2),
        "engine_p95_batch_ms": round(engine_stats["p95_batch_ms"], 2),
        "pipeline_docs_per_s": round(pipe_stats["docs_per_s"], 1),
        "pipeline_p50_batch_ms": round(pipe_stats["p50_batch_ms"], 2),
        "pipeline_p95_batch_ms": round(pipe_stats["p95_batch_ms"], 2),
        "speedup": round(engine_stats["docs_per_s"] / pipe_stats["docs_per_s"], 2),
        "batch_docs": chunk,
        "sentiment_agreement": round(agree, 4),
        "model_version": engine.model_version,
    }
