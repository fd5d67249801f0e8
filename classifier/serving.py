"""One loader for every kind of model directory in the registry (meta.json ``kind``).

The stream, the shadow evaluation and `finpulse evaluate` load models through ``load_engine``, so a model that a
shadow evaluation could load and score is exactly what the stream will serve.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from classifier.registry import META_FILE
from finpulse.settings import Settings

NONE_VERSION_PREFIX = "unlabeled"


class UnlabeledEngine:
    """Served when no labeled data exists yet: every document is stored, with its language, and no labels."""

    languages: tuple[str, ...] = ()

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta
        self.model_version: str = meta["model_version"]

    def supports_language(self, lang: str | None) -> bool:
        return False

    def predict(self, texts: Any) -> Any:
        raise RuntimeError("no model has been trained (no labeled data): documents are stored unlabeled")

    def close(self) -> None:
        """Nothing to release."""


def model_kind(path: Path) -> str:
    try:
        meta = json.loads((Path(path) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        # Imported on the error path only: classifier.model imports torch, which an ONNX-serving worker never needs.
        from classifier.model import ModelLoadError

        raise ModelLoadError(f"{path} is not a FinPulse model directory (no readable {META_FILE})") from exc
    return str(meta.get("kind", "transformer"))


def load_engine(path: Path | str, settings: Settings | None = None, device: str | None = None, **options: Any) -> Any:
    """An engine for the model directory ``path``: the quick linear model's, or ClassifierEngine for a transformer.

    Raises classifier.model.ModelLoadError (or the loader's own error) when the directory cannot be served.
    """
    path = Path(path)
    kind = model_kind(path)
    if kind == "linear":
        from classifier.quick import QuickEngine

        return QuickEngine.load(path)
    if kind == "none":
        return UnlabeledEngine(json.loads((path / META_FILE).read_text(encoding="utf-8")))
    if kind != "transformer":
        from classifier.model import ModelLoadError

        raise ModelLoadError(f"{path}: unknown model kind {kind!r} (known: transformer, linear, none)")
    from classifier.engine import ClassifierEngine

    if device is not None:
        options["device"] = device
    return ClassifierEngine.load(path, settings=settings, **options)
