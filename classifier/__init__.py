"""FinPulse classifier: data sets, the multi-task topic + sentiment model, training, evaluation, registry, engine.

Heavy modules (torch, transformers) load lazily so that `finpulse --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from classifier.bootstrap import NoTrainingDataError, ensure_default_model
    from classifier.config import TrainingArguments
    from classifier.engine import ClassifierEngine, InputError, Prediction
    from classifier.registry import ModelInfo, Registry, RegistryError

_EXPORTS = {
    "ClassifierEngine": "classifier.engine",
    "InputError": "classifier.engine",
    "Prediction": "classifier.engine",
    "ModelInfo": "classifier.registry",
    "Registry": "classifier.registry",
    "RegistryError": "classifier.registry",
    "TrainingArguments": "classifier.config",
    "ensure_default_model": "classifier.bootstrap",
    "NoTrainingDataError": "classifier.bootstrap",
}

__all__ = [
    "ClassifierEngine",
    "InputError",
    "ModelInfo",
    "NoTrainingDataError",
    "Prediction",
    "Registry",
    "RegistryError",
    "TrainingArguments",
    "ensure_default_model",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'classifier' has no attribute {name!r}")
