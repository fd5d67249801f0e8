"""The inference engine the stream calls: thread-safe ``predict(texts)`` over one forward pass per document.

Like sentence-transformers' ``encode``: clean, sort by length, cut token-budget batches, run under
``torch.inference_mode``, move each batch's results to the CPU, restore the caller's order. On CUDA the model
runs in fp16/bf16 with sequence lengths padded up to fixed buckets so that CUDA graphs (via
``torch.compile(mode="reduce-overhead")``) can be reused. On CPU, with precision "auto", the precision guard
(classifier.onnx_guard) picks bf16 on torch (CPUs with native bf16), int8 or fp32 on ONNX Runtime: the first of
those, in that fixed order, whose validation accuracy is within 0.5 points of fp32 on every head and language.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from classifier.device import cpu_has_bf16, cpu_threads, device_type, resolve_device
from classifier.registry import META_FILE, Registry
from classifier.text import clean_text
from finpulse.settings import Settings

if TYPE_CHECKING:  # torch is imported lazily: a worker serving an ONNX export never imports it
    import torch
    from torch import nn

    from classifier.model import MultiTaskClassifier

log = logging.getLogger(__name__)
HEADS_FILE = "heads.json"  # classifier.model.HEADS_FILE, named here so the ONNX path need not import torch

# Characters kept before tokenizing: far more than max_length tokens ever need, and it bounds the work a
# megabyte-long document can cause.
CHARS_PER_TOKEN_CAP = 16
LENGTH_BUCKETS = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)
# torch bf16 on CPU: oneDNN builds (JIT-compiles) a kernel per matmul shape and caches 1,024 of them. Exact batch
# shapes (rows x longest row) gave a new shape nearly every batch: a bf16 linear took ~2x as long on a shape it had
# not seen (tested on this CPU: 22 vs 11 ms). Widths padded up to LENGTH_BUCKETS and rows up to a multiple of
# CPU_ROW_STEP keep a few hundred shapes, which stay cached.
CPU_ROW_STEP = 16


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


def predictions(
    topics: Sequence[str],
    sentiments: Sequence[str],
    topic: np.ndarray,
    sentiment: np.ndarray,
    truncated: np.ndarray,
) -> list[Prediction]:
    """Predictions from predict_proba's arrays; every engine (transformer, quick linear) answers through this."""
    pos, neg = sentiments.index("positive"), sentiments.index("negative")
    out = []
    for i in range(len(topic)):
        t, s = topic[i], sentiment[i]
        ti, si = int(t.argmax()), int(s.argmax())
        out.append(
            Prediction(
                topic=topics[ti],
                topic_score=float(t[ti]),
                sentiment=sentiments[si],
                sentiment_score=float(np.clip(s[pos] - s[neg], -1.0, 1.0)),
                topic_probs={name: float(p) for name, p in zip(topics, t, strict=True)},
                sentiment_probs={name: float(p) for name, p in zip(sentiments, s, strict=True)},
                truncated=bool(truncated[i]),
            )
        )
    return out


@dataclass(frozen=True)
class EngineOptions:
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 | int8 (int8: ONNX Runtime only)
    threads: int | None = None
    int8: bool = False  # torch backend: dynamic int8 linear layers (CPU only)
    max_batch_tokens: int = 8192
    max_batch_size: int = 256
    compile: bool | None = None  # None: on CUDA only
    # auto: torch on CUDA; on CPU the precision guard's choice (torch for bf16, ONNX Runtime for int8/fp32) | torch
    # | onnx
    backend: str = "auto"
    # Where the precision guard reads the model's validation split (settings.shared_data_dir); None: no guard
    # data, so "auto" precision serves fp32.
    guard_data_root: Path | None = None
    cache_root: Path | None = None  # ONNX exports go here when the model directory is read-only


def choose_backend(options: EngineOptions, device: str, *, has_dir: bool) -> str:
    """torch or onnx for the device type ``device`` ("cpu"/"cuda"); ``has_dir``: there is a folder to cache in."""
    if options.backend not in ("auto", "torch", "onnx"):
        raise ValueError(f"backend must be auto, torch or onnx, not {options.backend!r}")
    if options.backend == "onnx" and device != "cpu":
        raise ValueError("the onnx backend serves the CPU only; use backend torch on CUDA")
    if options.backend != "auto":
        return options.backend
    if device != "cpu" or options.int8 or not has_dir or options.precision in ("bf16", "fp16"):
        # CUDA; the torch int8 path or a torch precision asked for by name; an in-memory model with no folder to
        # cache an export in
        return "torch"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:  # pragma: no cover - a declared dependency
        log.warning("onnxruntime is not installed: serving the CPU with torch")
        return "torch"
    return "onnx"


@dataclass(frozen=True)
class _Heads:
    topics: list[str]
    sentiments: list[str]


def _read_heads(model_dir: Path | None) -> _Heads:
    if model_dir is None:
        raise ValueError("give the model, or a model directory to serve its ONNX export from")
    try:
        heads = json.loads((Path(model_dir) / HEADS_FILE).read_text(encoding="utf-8"))
        return _Heads(list(heads["topics"]), list(heads["sentiments"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        from classifier.model import ModelLoadError  # the error path only: classifier.model imports torch

        raise ModelLoadError(f"{model_dir} is not a FinPulse model directory: {exc}") from exc


def serving_tokenizer(model_dir: Path) -> Any:
    """The folder's tokenizer.json run by `tokenizers` directly (no transformers, so no torch); transformers'
    loader only for a folder without one."""
    from classifier.rust_tokenizer import TOKENIZER_FILE, RustTokenizer

    if (Path(model_dir) / TOKENIZER_FILE).is_file():
        return RustTokenizer.load(model_dir)
    from classifier.model import load_tokenizer

    return load_tokenizer(model_dir)


class ClassifierEngine:
    """Load once, call ``predict`` from any thread."""

    def __init__(
        self,
        model: MultiTaskClassifier | None,
        tokenizer: Any,
        meta: dict[str, Any],
        options: EngineOptions,
        model_dir: Path | None = None,
    ):
        self.options = options
        self.device_type = device_type(options.device)
        self.device: Any = "cpu"  # a torch.device once the torch backend is chosen
        self.model_dir = model_dir
        self.meta = meta
        self.model_version: str = meta["model_version"]
        self.languages: tuple[str, ...] = tuple(meta.get("languages", ["en"]))
        self.max_length: int = int(meta.get("max_length", 128))
        self.strip_urls: bool = bool(meta.get("strip_urls", True))
        # model None: an ONNX Runtime engine built from model_dir alone; the heads' labels are in heads.json.
        heads = model if model is not None else _read_heads(model_dir)
        self.topics: tuple[str, ...] = tuple(heads.topics)
        self.sentiments: tuple[str, ...] = tuple(heads.sentiments)
        self._pos = self.sentiments.index("positive")
        self._neg = self.sentiments.index("negative")
        self.tokenizer = tokenizer
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._lock = threading.Lock()  # the Rust tokenizer is not safe to call concurrently with padding set
        self.threads = cpu_threads(options.threads) if self.device_type == "cpu" else None
        self.backend = self._choose_backend(options)
        self.session: Any = None  # ONNX Runtime session (backend "onnx")
        self.guard: dict[str, Any] | None = None
        self._buffers: dict[str, np.ndarray] = {}
        self._prefetch = ThreadPoolExecutor(1, thread_name_prefix="tokenize") if self.device_type == "cuda" else None
        if self.backend == "onnx":
            self.dtype: Any = None  # ONNX Runtime: see precision
            self.model = None
            self._eager = None
            self.precision = self._prepare_onnx(model, options)
            if self.precision == "bf16":  # the guard's choice: bf16 passed, and it is served by torch
                from classifier.model import MultiTaskClassifier

                self.backend = "torch"
                self.options = options = dataclasses.replace(options, backend="torch", precision="bf16")
                model = model if model is not None else MultiTaskClassifier.load(self.model_dir)
        if self.backend == "torch":
            if model is None:
                raise ValueError("the torch backend needs the model (ClassifierEngine.load loads it)")
            self.device = resolve_device(self.device_type if options.device == "auto" else options.device)
            self.dtype = self._choose_dtype(options)
            self.model = self._prepare(model, options)
            short = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[str(self.dtype)[6:]]
            self.precision = "int8" if options.int8 and self.device_type == "cpu" else short
        self._empty = self._empty_answer()

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
                "backend": settings.model_backend,
                "guard_data_root": settings.shared_data_dir,
                "cache_root": settings.artifact_cache_dir,
            }
            options = {**defaults, **options}
            path = Registry.from_settings(settings).resolve(name_or_dir)
        else:
            if name_or_dir is None:
                raise ValueError("give a model directory, or settings to resolve a registry name")
            path = Path(name_or_dir)
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        opts = EngineOptions(**options)
        if choose_backend(opts, device_type(opts.device), has_dir=True) == "onnx":
            # Served from the ONNX export: no torch model in this process (the export runs in a child if needed).
            return cls(None, serving_tokenizer(path), meta, opts, path)
        from classifier.model import MultiTaskClassifier, load_tokenizer

        return cls(MultiTaskClassifier.load(path), load_tokenizer(path), meta, opts, path)

    def _choose_backend(self, options: EngineOptions) -> str:
        return choose_backend(options, self.device_type, has_dir=self.model_dir is not None)

    def _prepare_onnx(self, model: MultiTaskClassifier | None, options: EngineOptions) -> str:
        """Export (cached), pick bf16, int8 or fp32 (precision guard), open the ONNX Runtime session unless bf16
        (torch) won; returns the precision."""
        from classifier.onnx_guard import candidates_here, choose_precision, decide
        from classifier.onnx_session import make_session

        if self.model_dir is None:
            raise ValueError("the onnx backend needs a model directory to cache its export in")
        requested = options.precision
        if requested in ("bf16", "fp16"):  # only with backend "onnx" asked for by name
            log.warning("precision %s is not served by ONNX Runtime; serving fp32", requested)
            requested = "fp32"
        guarded = requested == "auto"
        # backend "onnx" asked for by name: the guard may pick int8 or fp32 only
        available = tuple(p for p in candidates_here() if options.backend == "auto" or p != "bf16")
        if model is None:
            # From the folder: a missing export and the guard run in child processes, so that this one never
            # imports torch for them nor holds the export's peak memory.
            from classifier.onnx_prepare import prepare

            artifacts, self.guard = prepare(
                self.model_dir,
                fallback_root=options.cache_root,
                guard=guarded,
                guard_data_root=options.guard_data_root,
                threads=self.threads or 1,
            )
            precision = decide(self.guard, available) if guarded else requested
        else:
            from classifier.onnx_export import ensure_exported

            artifacts = ensure_exported(self.model_dir, self.tokenizer, model, fallback_root=options.cache_root)
            del model  # the session holds its own weights; the torch copy is dropped with the caller's reference
            precision, self.guard = choose_precision(
                self, artifacts, requested, options.guard_data_root, available=available
            )
        if precision == "bf16":
            log.info("serving %s on torch bf16 (precision guard), %d threads", self.model_version, self.threads)
            return precision
        path = artifacts.int8 if precision == "int8" else artifacts.fp32
        self.session = make_session(path, self.threads or 1)
        log.info(
            "serving %s on ONNX Runtime %s, %d threads",
            self.model_version,
            precision,
            self.threads,
            extra={"guard": self.guard},
        )
        return precision

    def _empty_answer(self) -> tuple[np.ndarray, np.ndarray]:
        """The model's answer for an empty text ([CLS][SEP]), computed once: empty texts then cost nothing."""
        encoded = self.tokenizer([""], return_tensors="np", return_token_type_ids=False)
        ids = encoded["input_ids"].astype(np.int64)
        mask = encoded["attention_mask"].astype(np.int64)
        with self._no_grad():
            topic, sentiment = self._forward(ids, mask)
        return topic[0], sentiment[0]

    def _no_grad(self) -> contextlib.AbstractContextManager[Any]:
        if self.session is not None or self.backend == "onnx":
            return contextlib.nullcontext()
        import torch

        return torch.inference_mode()

    def _choose_dtype(self, options: EngineOptions) -> torch.dtype:
        import torch

        if options.precision in ("fp32", "int8") or (options.int8 and self.device_type == "cpu"):
            return torch.float32
        if options.precision == "fp16":
            return torch.float16
        if options.precision == "bf16":
            return torch.bfloat16
        if self.device_type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_has_bf16() else torch.float32

    def _prepare(self, model: MultiTaskClassifier, options: EngineOptions) -> nn.Module:
        import torch
        from torch import nn

        model = model.eval()
        if self.device_type == "cpu":
            torch.set_num_threads(self.threads or 1)
            if options.int8:
                model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        model = model.to(self.device, self.dtype)
        self._eager = model
        use_compile = options.compile if options.compile is not None else self.device_type == "cuda"
        if use_compile:
            # Fixed bucket shapes make CUDA graphs reusable; "reduce-overhead" captures one graph per shape.
            model = torch.compile(
                model, mode="reduce-overhead" if self.device_type == "cuda" else "default", dynamic=False
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
        return predictions(self.topics, self.sentiments, *self.predict_proba(texts))

    def predict_proba(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Topic probabilities (n, 20), sentiment probabilities (n, 3) and a truncated flag (n,)."""
        if isinstance(texts, (str, bytes)):
            raise InputError(0, texts) if isinstance(texts, bytes) else TypeError("pass a list of texts")
        cleaned = self._clean(texts)
        n = len(cleaned)
        topic = np.zeros((n, len(self.topics)), dtype=np.float32)
        sentiment = np.zeros((n, len(self.sentiments)), dtype=np.float32)
        truncated = np.zeros(n, dtype=bool)
        # Empty (and whitespace-only) texts get the answer for [CLS][SEP], computed at load.
        filled = np.fromiter((bool(t) for t in cleaned), dtype=bool, count=n)
        topic[~filled], sentiment[~filled] = self._empty
        rows = np.flatnonzero(filled)
        if len(rows) == 0:
            return topic, sentiment, truncated
        with self._lock, self._no_grad():
            ids, mask, lengths = self._tokenize_all([cleaned[i] for i in rows])
            truncated[rows] = lengths >= self.max_length
            batches = self._batches(lengths)
            if self._prefetch is None:
                for idx in batches:
                    t, s = self._forward(*self._gather(ids, mask, lengths, idx))
                    topic[rows[idx]], sentiment[rows[idx]] = t, s
            else:
                # Copy batch i+1 to the GPU from a worker thread while the GPU runs batch i.
                future = self._prefetch.submit(self._to_device, ids, mask, lengths, batches[0])
                for k, idx in enumerate(batches):
                    encoded = future.result()
                    if k + 1 < len(batches):
                        future = self._prefetch.submit(self._to_device, ids, mask, lengths, batches[k + 1])
                    t, s = self._forward_torch(*encoded, rows=len(idx))
                    topic[rows[idx]], sentiment[rows[idx]] = t, s
        return topic, sentiment, truncated

    def _clean(self, texts: Sequence[Any]) -> list[str]:
        cap = self.max_length * CHARS_PER_TOKEN_CAP
        out = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(i, text)
            out.append(clean_text(text[: cap * 4], self.strip_urls)[:cap])
        return out

    def _tokenize_all(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One call into the Rust tokenizer for the whole input (it batches in parallel), as numpy: no per-token
        Python. Rows are padded to the longest here; each batch is cut back to its own longest row below."""
        encoded = self.tokenizer(
            texts,
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_tensors="np",
            return_token_type_ids=False,
            return_overflowing_tokens=False,
        )
        mask = encoded["attention_mask"]
        return encoded["input_ids"], mask, mask.sum(1)

    def _batches(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Batches of similar token length (exact counts, so padding is minimal) under a token budget."""
        order = np.argsort(lengths, kind="stable")
        sorted_lengths = lengths[order]
        batches, start = [], 0
        while start < len(order):
            end = min(start + self.options.max_batch_size, len(order))
            while end - start > 1 and (end - start) * int(sorted_lengths[end - 1]) > self.options.max_batch_tokens:
                end = start + max(1, (end - start) // 2)
            batches.append(order[start:end])
            start = end
        return batches

    def _buffer(self, name: str, rows: int, width: int) -> np.ndarray:
        """A (rows, width) int64 view of one reused flat buffer: contiguous, as ONNX Runtime wants, no allocation."""
        need = self.options.max_batch_size * self.max_length
        buf = self._buffers.get(name)
        if buf is None or buf.size < max(need, rows * width):
            buf = self._buffers[name] = np.empty(max(need, rows * width), dtype=np.int64)
        return buf[: rows * width].reshape(rows, width)

    def _gather(
        self, ids: np.ndarray, mask: np.ndarray, lengths: np.ndarray, idx: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        width = int(lengths[idx].max())
        out_ids = self._buffer("ids", len(idx), width)
        out_mask = self._buffer("mask", len(idx), width)
        np.take(ids[:, :width], idx, axis=0, out=out_ids)
        np.take(mask[:, :width], idx, axis=0, out=out_mask)
        return out_ids, out_mask

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Softmaxed (topic, sentiment) for one CPU batch."""
        if self.session is not None:
            t_logits, s_logits = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            return _softmax(t_logits), _softmax(s_logits)
        import torch

        ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
        if self.dtype == torch.bfloat16:
            n = ids_t.shape[0]
            return self._forward_torch(*self._pad_to_bucket(ids_t, mask_t, row_step=CPU_ROW_STEP), rows=n)
        return self._forward_torch(ids_t.to(self.device), mask_t.to(self.device))

    def _to_device(
        self, ids: np.ndarray, mask: np.ndarray, lengths: np.ndarray, idx: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        width = int(lengths[idx].max())
        encoded = self._pad_to_bucket(torch.from_numpy(ids[idx, :width]), torch.from_numpy(mask[idx, :width]))
        return tuple(v.pin_memory().to(self.device, non_blocking=True) for v in encoded)  # type: ignore[return-value]

    def _pad_to_bucket(
        self, ids: torch.Tensor, mask: torch.Tensor, row_step: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad width up to a length bucket (never past max_length) and rows up to a power of two (CUDA graphs) or
        a multiple of ``row_step`` (CPU bf16): few shapes, each graph or kernel reused."""
        import torch

        n = ids.shape[0]
        width = next((b for b in LENGTH_BUCKETS if b >= ids.shape[1]), ids.shape[1])
        width = max(ids.shape[1], min(width, self.max_length))
        if row_step is not None:
            rows = -(-n // row_step) * row_step
        else:
            rows = min(max(8, 1 << (n - 1).bit_length()), max(n, self.options.max_batch_size))
        ids = torch.nn.functional.pad(ids, (0, width - ids.shape[1], 0, rows - n), value=self._pad_id)
        mask = torch.nn.functional.pad(mask, (0, width - mask.shape[1], 0, rows - n), value=0)
        # A padding row attends to its [CLS] slot only, so no row is fully masked (that would give NaNs).
        mask[n:, 0] = 1
        return ids, mask

    def _forward_torch(
        self, ids: torch.Tensor, mask: torch.Tensor, rows: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        assert self.model is not None
        try:
            t_logits, s_logits = self.model(ids, mask)
        except Exception:  # compilation happens on first call; a missing toolchain must not take the stream down
            if self.model is self._eager:
                raise
            log.warning("torch.compile failed; serving the eager model", exc_info=True)
            self.model = self._eager
            t_logits, s_logits = self.model(ids, mask)
        n = ids.shape[0] if rows is None else rows  # rows beyond n are bucket padding
        return (
            torch.softmax(t_logits[:n].float(), -1).cpu().numpy(),
            torch.softmax(s_logits[:n].float(), -1).cpu().numpy(),
        )

    def close(self) -> None:
        if self._prefetch is not None:
            self._prefetch.shutdown(wait=False)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)
