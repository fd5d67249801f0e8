"""The multi-task classifier: one shared encoder, mean pooling, a topic head and a sentiment head.

Production pays for one forward pass per document and reads both heads. The weights are saved as one safetensors
file (``encoder.*``, ``topic_head.*``, ``sentiment_head.*``) beside the encoder's config.json and the tokenizer.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_outputs import SequenceClassifierOutput

from classifier.bases import PACKAGED_BASES, BaseModelError  # noqa: F401  (PACKAGED_BASES: public name)
from classifier.bases import resolve_base as _resolve_packaged

WEIGHTS_FILE = "model.safetensors"
HEADS_FILE = "heads.json"


class ModelLoadError(RuntimeError):
    """Base weights or a saved model cannot be loaded."""


def resolve_base(base: str) -> str:
    """A packaged base name (see ``classifier.bases``) -> its local folder; a hub id or folder passes through."""
    try:
        return _resolve_packaged(base)
    except BaseModelError as exc:
        raise ModelLoadError(str(exc)) from exc


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens (how all-MiniLM-L6-v2 was trained), not the [CLS] vector."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-6)


class MultiTaskClassifier(nn.Module):
    def __init__(self, encoder: PreTrainedModel, topics: list[str], sentiments: list[str], dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.topics = list(topics)
        self.sentiments = list(sentiments)
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.topic_head = nn.Linear(hidden, len(topics))
        self.sentiment_head = nn.Linear(hidden, len(sentiments))

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.dropout(self.embed(input_ids, attention_mask))
        return self.topic_head(pooled), self.sentiment_head(pooled)

    @classmethod
    def from_base(
        cls, base: str, topics: list[str], sentiments: list[str], dropout: float = 0.1, seed: int = 0
    ) -> MultiTaskClassifier:
        path = resolve_base(base)
        try:
            encoder = AutoModel.from_pretrained(path)
        except OSError as exc:
            raise ModelLoadError(f"cannot load base model {base!r} ({path}): {exc}") from exc
        torch.manual_seed(seed)  # head initialisation is part of the seeded recipe
        return cls(encoder, topics, sentiments, dropout)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
        self.encoder.config.save_pretrained(directory)
        heads = {"topics": self.topics, "sentiments": self.sentiments, "pooling": "mean"}
        (directory / HEADS_FILE).write_text(json.dumps(heads, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> MultiTaskClassifier:
        directory = Path(directory)
        try:
            heads = json.loads((directory / HEADS_FILE).read_text(encoding="utf-8"))
            config = AutoConfig.from_pretrained(directory)
            state = load_file(str(directory / WEIGHTS_FILE))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{directory} is not a FinPulse model directory: {exc}") from exc
        model = cls(AutoModel.from_config(config), heads["topics"], heads["sentiments"])
        missing, unexpected = model.load_state_dict(state, strict=False)
        # Some encoders register non-persistent buffers (position ids); real weights must all be present.
        missing = [k for k in missing if "position_ids" not in k]
        if missing or unexpected:
            raise ModelLoadError(
                f"{directory}: weights do not match (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        return model.eval()


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(resolve_base(str(path)), use_fast=True)
    if not tokenizer.is_fast:
        raise ModelLoadError(f"{path}: a fast (Rust) tokenizer is required for batched inference")
    return tokenizer


class SentimentSequenceClassifier(PreTrainedModel):
    """A sequence-classification view of the shared encoder + sentiment head, for `transformers.pipeline`.

    It shares (not copies) the multi-task model's modules, so a baseline built on it runs exactly the same
    weights and pooling as the engine.
    """

    base_model_prefix = "encoder"
    # Attention runs inside the wrapped encoder, which already picked its implementation.
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    def __init__(self, config: Any, multitask: MultiTaskClassifier | None = None) -> None:
        super().__init__(config)
        if multitask is None:
            multitask = MultiTaskClassifier(AutoModel.from_config(config), [], list(config.id2label.values()))
        self.encoder = multitask.encoder
        self.head = multitask.sentiment_head

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_: Any
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return SequenceClassifierOutput(logits=self.head(mean_pool(out.last_hidden_state, attention_mask)))

    @classmethod
    def from_multitask(cls, multitask: MultiTaskClassifier) -> SentimentSequenceClassifier:
        config = copy.deepcopy(multitask.encoder.config)
        config.num_labels = len(multitask.sentiments)
        config.id2label = dict(enumerate(multitask.sentiments))
        config.label2id = {name: i for i, name in enumerate(multitask.sentiments)}
        config.problem_type = "single_label_classification"
        config.architectures = [cls.__name__]
        return cls(config, multitask).eval()
