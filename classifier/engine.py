"""The inference engine the stream calls: thread-safe ``predict(texts)`` over one forward pass per document.

Like sentence-transformers' ``encode``: clean, sort by length, cut token-budget batches, run under
``torch.inference_mode``, move each batch's results to the CPU, restore the caller's order. On CUDA the model
runs in fp16/bf16 with sequence lengths padded up to fixed buckets so that CUDA graphs (via
``torch.compile(mode="reduce-overhead")``) can be reused; on CPU it runs with the process's cores, in bf16
where the CPU has native bf16 and optionally with dynamic int8 linear layers.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from torch import nn

from classifier.device import cpu_has_bf16, cpu_threads, resolve_device
from classifier.model import MultiTaskClassifier, load_tokenizer
from classifier.registry import META_FILE, Registry
from classifier.text import clean_text
from finpulse.settings import Settings

log = logging.getLogger(__name__)

# Characters kept before tokenizing: far more than max_length tokens ever need, and it bounds the work a
# megabyte-long document can cause.
CHARS_PER_TOKEN_CAP = 16
LENGTH_BUCKETS = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)


class InputError(TypeError):
    """An input is not text; ``index`` says which one."""

    def __init__(self, index: int, value: Any) -> None:
        self.index = index
        super().__init__(f"texts[{index}] is {type(value).__name__}, expected str; convert or drop it before predict")


@dataclass(frozen=True)
class Prediction:
    topic: str
    topic_score: float
    sentiment: str
    sentiment_score: float  # P(positive) - P(negative), in [-1, 1]
    topic_probs: dict[str, float] = field(repr=False)
    sentiment_probs: dict[str, float] = field(repr=False)
    truncated: bool = False

    def as_fields(self) -> dict[str, Any]:
        """The ClassifiedDocument fields this prediction fills (model_version comes from the engine)."""
        return {
            "topic": self.topic,
            "topic_score": self.topic_score,
            "sentiment": self.sentiment,
            "sentiment_score": self.sentiment_score,
            "topic_probs": self.topic_probs,
            "sentiment_probs": self.sentiment_probs,
        }


@dataclass(frozen=True)
class EngineOptions:
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    threads: int | None = None
    int8: bool = False  # dynamic int8 linear layers (CPU only)
    max_batch_tokens: int = 8192
    max_batch_size: int = 256
    compile: bool | None = None  # None: on CUDA only


class ClassifierEngine:
    """Load once, call ``predict`` from any thread."""

    def __init__(self, model: MultiTaskClassifier, tokenizer: Any, meta: dict[str, Any], options: EngineOptions):
        self.options = options
        self.device = resolve_device(options.device)
        self.meta = meta
        self.model_version: str = meta["model_version"]
        self.languages: tuple[str, ...] = tuple(meta.get("languages", ["en"]))
        self.max_length: int = int(meta.get("max_length", 128))
        self.strip_urls: bool = bool(meta.get("strip_urls", True))
        self.topics: tuple[str, ...] = tuple(model.topics)
        self.sentiments: tuple[str, ...] = tuple(model.sentiments)
        self._pos = self.sentiments.index("positive")
        self._neg = self.sentiments.index("negative")
        self.tokenizer = tokenizer
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._lock = threading.Lock()  # the Rust tokenizer is not safe to call concurrently with padding set
        self.dtype = self._choose_dtype(options)
        self.model = self._prepare(model, options)
        self._prefetch = ThreadPoolExecutor(1, thread_name_prefix="tokenize") if self.device.type == "cuda" else None

    # --- loading -------------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls, name_or_dir: str | Path | None = None, *, settings: Settings | None = None, **options: Any
    ) -> ClassifierEngine:
        """Load a registry name, a model directory, or (None) the promoted model."""
        if settings is not None:
            defaults = {
                "device": settings.model_device,
                "threads": settings.model_threads,
                "int8": settings.model_int8,
                "precision": settings.model_precision,
            }
            options = {**defaults, **options}
            path = Registry.from_settings(settings).resolve(name_or_dir)
        else:
            if name_or_dir is None:
                raise ValueError("give a model directory, or settings to resolve a registry name")
            path = Path(name_or_dir)
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        return cls(MultiTaskClassifier.load(path), load_tokenizer(path), meta, EngineOptions(**options))

    def _choose_dtype(self, options: EngineOptions) -> torch.dtype:
        if options.precision == "fp32" or (options.int8 and self.device.type == "cpu"):
            return torch.float32
        if options.precision == "fp16":
            return torch.float16
        if options.precision == "bf16":
            return torch.bfloat16
        if self.device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_has_bf16() else torch.float32

    def _prepare(self, model: MultiTaskClassifier, options: EngineOptions) -> nn.Module:
        model = model.eval()
        if self.device.type == "cpu":
            torch.set_num_threads(cpu_threads(options.threads))
            if options.int8:
                model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        model = model.to(self.device, self.dtype)
        self._eager = model
        use_compile = options.compile if options.compile is not None else self.device.type == "cuda"
        if use_compile:
            # Fixed bucket shapes make CUDA graphs reusable; "reduce-overhead" captures one graph per shape.
            model = torch.compile(
                model, mode="reduce-overhead" if self.device.type == "cuda" else "default", dynamic=False
            )
        return model

    # --- facts for the stream ----------------------------------------------------------------------------------
    def supports_language(self, lang: str | None) -> bool:
        """Whether documents in ``lang`` get labels; 'und'/None count as supported (most feeds omit it)."""
        if not lang or lang == "und":
            return True
        return lang.split("-")[0].lower() in self.languages

    # --- inference ----------------------------------------------------------------------------------------
    @overload
    def predict(self, texts: str) -> Prediction: ...
    @overload
    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...
    def predict(self, texts: str | Sequence[str]) -> Prediction | list[Prediction]:
        """Topic and sentiment for one text (-> Prediction) or a list (-> list, same order)."""
        if isinstance(texts, str):
            return self.predict([texts])[0]
        topic, sentiment, truncated = self.predict_proba(texts)
        out = []
        for i in range(len(topic)):
            t, s = topic[i], sentiment[i]
            ti, si = int(t.argmax()), int(s.argmax())
            out.append(
                Prediction(
                    topic=self.topics[ti],
                    topic_score=float(t[ti]),
                    sentiment=self.sentiments[si],
                    sentiment_score=float(np.clip(s[self._pos] - s[self._neg], -1.0, 1.0)),
                    topic_probs={name: float(p) for name, p in zip(self.topics, t, strict=True)},
                    sentiment_probs={name: float(p) for name, p in zip(self.sentiments, s, strict=True)},
                    truncated=bool(truncated[i]),
                )
            )
        return out

    def predict_proba(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Topic probabilities (n, 20), sentiment probabilities (n, 3) and a truncated flag (n,)."""
        if isinstance(texts, (str, bytes)):
            raise InputError(0, texts) if isinstance(texts, bytes) else TypeError("pass a list of texts")
        cleaned = self._clean(texts)
        n = len(cleaned)
        topic = np.zeros((n, len(self.topics)), dtype=np.float32)
        sentiment = np.zeros((n, len(self.sentiments)), dtype=np.float32)
        truncated = np.zeros(n, dtype=bool)
        if n == 0:
            return topic, sentiment, truncated
        with self._lock, torch.inference_mode():
            batches = self._batches(cleaned)
            if self._prefetch is None:
                for idx in batches:
                    self._run(idx, self._tokenize(cleaned, idx), topic, sentiment, truncated)
            else:
                # Tokenize batch i+1 on a worker thread while the GPU runs batch i.
                future = self._prefetch.submit(self._tokenize, cleaned, batches[0])
                for k, idx in enumerate(batches):
                    encoded = future.result()
                    if k + 1 < len(batches):
                        future = self._prefetch.submit(self._tokenize, cleaned, batches[k + 1])
                    self._run(idx, encoded, topic, sentiment, truncated)
        return topic, sentiment, truncated

    def _clean(self, texts: Sequence[Any]) -> list[str]:
        cap = self.max_length * CHARS_PER_TOKEN_CAP
        out = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(i, text)
            # Empty and whitespace-only texts stay empty: the model sees [CLS][SEP] and answers deterministically.
            out.append(clean_text(text[: cap * 4], self.strip_urls)[:cap])
        return out

    def _batches(self, texts: list[str]) -> list[np.ndarray]:
        """Length-sorted batches under a token budget (character length predicts token length well enough)."""
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        order = np.argsort(lengths, kind="stable")
        batches, start = [], 0
        while start < len(order):
            # Longest text in the candidate batch decides its padded width: ~4 chars per token, plus specials.
            end = min(start + self.options.max_batch_size, len(order))
            while end - start > 1:
                width = min(self.max_length, int(lengths[order[end - 1]]) // 3 + 2)
                if (end - start) * width <= self.options.max_batch_tokens:
                    break
                end = start + max(1, (end - start) // 2)
            batches.append(order[start:end])
            start = end
        return batches

    def _tokenize(self, texts: list[str], idx: np.ndarray) -> dict[str, torch.Tensor]:
        batch = [texts[i] for i in idx]
        encoded = self.tokenizer(
            batch,
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
            return_token_type_ids=False,
            return_overflowing_tokens=False,
        )
        # Real tokens per row (before any bucket padding): a row that fills max_length was truncated.
        encoded["length"] = encoded["attention_mask"].sum(1)
        if self.device.type == "cuda":
            encoded = self._pad_to_bucket(encoded)
            return {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in encoded.items()}
        return dict(encoded)

    def _pad_to_bucket(self, encoded: Any) -> dict[str, torch.Tensor]:
        """Pad width up to a length bucket and rows up to a power of two: few shapes, each graph reused."""
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
        width = next((b for b in LENGTH_BUCKETS if b >= ids.shape[1]), ids.shape[1])
        rows = min(max(8, 1 << (ids.shape[0] - 1).bit_length()), max(ids.shape[0], self.options.max_batch_size))
        ids = torch.nn.functional.pad(ids, (0, width - ids.shape[1], 0, rows - ids.shape[0]), value=self._pad_id)
        mask = torch.nn.functional.pad(mask, (0, width - mask.shape[1], 0, rows - mask.shape[0]), value=0)
        # A padding row attends to its [CLS] slot only, so no row is fully masked (that would give NaNs).
        mask[encoded["input_ids"].shape[0] :, 0] = 1
        return {"input_ids": ids, "attention_mask": mask, "length": encoded["length"]}

    def _run(
        self,
        idx: np.ndarray,
        encoded: dict[str, torch.Tensor],
        topic: np.ndarray,
        sentiment: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        try:
            t_logits, s_logits = self.model(encoded["input_ids"], encoded["attention_mask"])
        except Exception:  # compilation happens on first call; a missing toolchain must not take the stream down
            if self.model is self._eager:
                raise
            log.warning("torch.compile failed; serving the eager model", exc_info=True)
            self.model = self._eager
            t_logits, s_logits = self.model(encoded["input_ids"], encoded["attention_mask"])
        n = len(idx)  # rows beyond n are bucket padding
        topic[idx] = torch.softmax(t_logits[:n].float(), -1).cpu().numpy()
        sentiment[idx] = torch.softmax(s_logits[:n].float(), -1).cpu().numpy()
        truncated[idx] = (encoded["length"].cpu().numpy() >= self.max_length) if "length" in encoded else False

    def close(self) -> None:
        if self._prefetch is not None:
            self._prefetch.shutdown(wait=False)
