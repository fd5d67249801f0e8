"""`finpulse bench classifier`: the engine against `transformers.pipeline` and a plain ONNX Runtime int8 session on
the same weights, same texts, same run, same threads.

The baseline is ``pipeline("text-classification", batch_size=64)`` over a sequence-classification view of the
same encoder + sentiment head (shared modules, fp32, the pipeline's own tokenization and batching). Both get the
same cleaned texts, so the ratio measures the engine's batching, precision and overheads, not its input.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classifier.data import DataError, normalise_label, read_table
from classifier.device import cpu_threads
from classifier.engine import ClassifierEngine
from classifier.model import MultiTaskClassifier, SentimentSequenceClassifier, load_tokenizer
from classifier.text import clean_text

PIPELINE_BATCH = 64


BENCH_FILES = {
    "en": ("en/tfns_sentiment_train.csv", "en/tfns_topic_train.csv", "en/phrasebank_train.csv"),
    "zh": ("zh/finfe_train.csv", "zh/finnl_train.csv"),  # stock-forum posts and news: Chinese as the stream has it
}


def bench_texts(data_root: Path | None, n: int, lang: str = "en") -> list[str]:
    """Real texts, a fixed random sample: English TFNS tweets and PhraseBank sentences, or Chinese FinFE posts and
    FinNL news (``lang="zh"``)."""
    if lang not in BENCH_FILES:
        raise DataError(f"benchmark language {lang!r}: choose one of {', '.join(BENCH_FILES)}")
    if data_root is None:
        raise DataError("the benchmark reads real texts from the shared data dir; set FINPULSE_SHARED_DATA_DIR")
    texts: list[str] = []
    for rel in BENCH_FILES[lang]:
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


def _guard_summary(guard: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the precision guard chose and why (accuracy per head/language of fp32 and each candidate)."""
    if not guard:
        return None
    accuracies = ("fp32_accuracy", "bf16_accuracy", "int8_accuracy")
    keys = ("decision", "reason", "tolerance_points", "preference", "rows", *accuracies, "passed", "seconds")
    out = {k: guard[k] for k in keys if k in guard}
    for k in accuracies:
        if k in out:
            out[k] = {g: round(float(v), 4) for g, v in out[k].items()}
    return out


def labeled_texts(path: Path) -> tuple[list[str], list[str]]:
    """A labeled sentiment file (text,label; any alias `finpulse evaluate` knows); unknown labels are dropped."""
    table = read_table(path)
    if not {"text", "label"} <= set(table.columns):
        raise DataError(f"{path}: --data needs columns text,label (has {list(table.columns)})")
    texts, labels = [], []
    for text, label in zip(table["text"].astype(str), table["label"], strict=True):
        try:
            labels.append(normalise_label(label, "sentiment"))
        except DataError:
            continue
        texts.append(text)
    if not texts:
        raise DataError(f"{path}: no rows with a known sentiment label")
    return texts, labels


def profile_engine(engine: Any, texts: list[str], chunk: int) -> dict[str, Any]:
    """Where the engine's time goes over one pass in ``chunk``-document calls: tokenization (the Rust tokenizer),
    inference (the ONNX Runtime session or the torch forward) and the rest (Python: cleaning, bucketing, gathers,
    softmax, Prediction objects). Measured by wrapping the engine's two inner calls, so nothing else changes."""
    spent = {"tokenize": 0.0, "inference": 0.0}
    originals = {"tokenize": engine._tokenize_all, "inference": engine._forward}

    def timed(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start

        return call

    engine._tokenize_all, engine._forward = timed("tokenize"), timed("inference")
    try:
        start = time.perf_counter()
        for i in range(0, len(texts), chunk):
            engine.predict(texts[i : i + chunk])
        total = time.perf_counter() - start
    finally:
        engine._tokenize_all, engine._forward = originals["tokenize"], originals["inference"]
    python = max(0.0, total - spent["tokenize"] - spent["inference"])
    parts = {"tokenize": spent["tokenize"], "inference": spent["inference"], "python": python}
    return {
        "total_ms": round(1000 * total, 1),
        **{f"{name}_ms": round(1000 * v, 1) for name, v in parts.items()},
        **{f"{name}_share": round(v / total, 3) if total else None for name, v in parts.items()},
    }


class PlainOrtSession:
    """What a user would write: one ORT session, texts in input order, each batch padded to its longest row."""

    def __init__(self, path: Path, tokenizer: Any, threads: int, max_length: int, batch: int) -> None:
        from classifier.onnx_session import make_session

        self.session = make_session(path, threads)
        self.tokenizer, self.max_length, self.batch = tokenizer, max_length, batch

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Sentiment logits (n, 3)."""
        out = []
        for i in range(0, len(texts), self.batch):
            enc = self.tokenizer(
                list(texts[i : i + self.batch]),
                padding="longest",
                truncation=True,
                max_length=self.max_length,
                return_tensors="np",
                return_token_type_ids=False,
            )
            feed = {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"]}
            out.append(self.session.run(["sentiment_logits"], feed)[0])
        return np.concatenate(out) if out else np.zeros((0, 3), dtype=np.float32)


def run_bench(
    model_dir: Path,
    texts: list[str],
    *,
    device: str = "cpu",
    chunk: int = PIPELINE_BATCH,
    repeats: int = 1,
    threads: int | None = None,
    engine_options: dict[str, Any] | None = None,
    labeled: dict[str, Path] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """docs/s and p50/p95 latency per ``chunk``-document call for the engine, the pipeline baseline and (CPU) the
    same int8 ONNX model in a plain ORT session; sentiment accuracy of each on every ``labeled`` file."""
    from transformers import pipeline

    say = progress or (lambda _msg: None)
    threads = cpu_threads(threads)  # decided once, so every contender runs with the same thread count
    say(f"engine: loading {model_dir.name} ({threads} threads)")
    engine = ClassifierEngine.load(model_dir, device=device, threads=threads, **(engine_options or {}))
    cleaned = [clean_text(t, engine.strip_urls) for t in texts]
    sets = {name: labeled_texts(path) for name, path in (labeled or {}).items()}
    sets = {name: ([clean_text(t, engine.strip_urls) for t in xs], ys) for name, (xs, ys) in sets.items()}
    sentiments = np.asarray(engine.sentiments)

    def accuracy(predict: Callable[[list[str]], Sequence[str]]) -> dict[str, float]:
        return {n: round(float(np.mean(np.asarray(predict(xs)) == np.asarray(ys))), 4) for n, (xs, ys) in sets.items()}

    def engine_labels(batch: list[str]) -> list[str]:
        return list(sentiments[engine.predict_proba(batch)[1].argmax(1)])

    say("engine: measuring")
    engine_stats = _measure(engine.predict, cleaned, chunk, repeats)
    say("engine: profiling (tokenization, inference, Python)")
    engine_profile = profile_engine(engine, cleaned, chunk)
    engine_sentiment = engine_labels(cleaned)
    engine_accuracy = accuracy(engine_labels)
    engine.close()

    ort_stats: dict[str, float] | None = None
    ort_accuracy: dict[str, float] = {}
    if device == "cpu":
        from classifier.onnx_export import ensure_exported

        say("ONNX Runtime int8 (plain session): measuring")
        tokenizer = load_tokenizer(model_dir)
        artifacts = ensure_exported(model_dir, tokenizer, fallback_root=(engine_options or {}).get("cache_root"))
        plain = PlainOrtSession(artifacts.int8, tokenizer, threads, engine.max_length, chunk)
        ort_stats = _measure(plain, cleaned, chunk, repeats)
        ort_accuracy = accuracy(lambda xs: list(sentiments[plain(xs).argmax(1)]))

    say("transformers.pipeline: measuring")
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
        pipe_accuracy = accuracy(lambda xs: [r["label"] for r in pipe(list(xs), **kwargs)])
    agree = float(np.mean([a == b for a, b in zip(engine_sentiment, pipe_labels, strict=True)]))
    result: dict[str, Any] = {
        "device": device,
        "docs": len(texts),
        "threads": threads if device == "cpu" else None,
        "engine_backend": engine.backend,
        "engine_precision": engine.precision,
        "engine_int8": engine.precision == "int8",
        "engine_docs_per_s": round(engine_stats["docs_per_s"], 1),
        "engine_p50_batch_ms": round(engine_stats["p50_batch_ms"], 2),
        "engine_p95_batch_ms": round(engine_stats["p95_batch_ms"], 2),
        "engine_profile": engine_profile,
        "engine_guard": _guard_summary(engine.guard),
        "pipeline_precision": "fp32",
        "pipeline_docs_per_s": round(pipe_stats["docs_per_s"], 1),
        "pipeline_p50_batch_ms": round(pipe_stats["p50_batch_ms"], 2),
        "pipeline_p95_batch_ms": round(pipe_stats["p95_batch_ms"], 2),
        "ort_int8_docs_per_s": round(ort_stats["docs_per_s"], 1) if ort_stats else None,
        "ort_int8_p50_batch_ms": round(ort_stats["p50_batch_ms"], 2) if ort_stats else None,
        "ort_int8_p95_batch_ms": round(ort_stats["p95_batch_ms"], 2) if ort_stats else None,
        "speedup": round(engine_stats["docs_per_s"] / pipe_stats["docs_per_s"], 2),
        "speedup_vs_ort_int8": round(engine_stats["docs_per_s"] / ort_stats["docs_per_s"], 2) if ort_stats else None,
        "accuracy": {
            name: {"engine": engine_accuracy[name], "pipeline": pipe_accuracy[name], "ort_int8": ort_accuracy.get(name)}
            for name in sets
        },
        "batch_docs": chunk,
        "sentiment_agreement": round(agree, 4),
        "model_version": engine.model_version,
    }
    try:
        result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - no load average on this platform
        result["load_average"] = None
    return result
