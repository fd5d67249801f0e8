"""First start: make sure a promoted model exists, within seconds - the quick linear model - never blocking on
the transformer, which the background trainer (the stack's `trainer` part) trains and promotes later."""

from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from classifier.data import DataError, available_builtin, no_data_message
from classifier.registry import META_FILE, ModelInfo, Registry
from finpulse.settings import Settings

log = logging.getLogger(__name__)

PLACEHOLDER_NAME = "unlabeled-no-data"


class NoTrainingDataError(DataError):
    """No labeled data to train a model from; the message says how to provide data."""


def _placeholder(registry: Registry) -> ModelInfo:
    """A 'none' model: the stream stores every document unlabeled until labeled data is provided."""
    if (registry.root / PLACEHOLDER_NAME / META_FILE).is_file():
        return registry.get(PLACEHOLDER_NAME)
    staging = registry.staging_dir(PLACEHOLDER_NAME)
    meta = {
        "format_version": 1,
        "kind": "none",
        "name": PLACEHOLDER_NAME,
        "model_version": f"{PLACEHOLDER_NAME}@0",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "base_model": "none",
        "languages": [],
    }
    (staging / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return registry.commit(staging, PLACEHOLDER_NAME)


def ensure_default_model(
    settings: Settings, *, progress: bool = True, echo: Callable[[str], None] = print
) -> ModelInfo:
    """The promoted document model (see _ensure_document_model). The entity model is not trained here: the
    background trainer does it first (classifier/background.py), so first labels never wait on it."""
    return _ensure_document_model(settings, progress=progress, echo=echo)


def _ensure_document_model(
    settings: Settings, *, progress: bool = True, echo: Callable[[str], None] = print
) -> ModelInfo:
    """Return the promoted model; when there is none (or only the no-data placeholder), train the quick model
    from every labeled set found (seconds) and promote it. With no labeled data at all, promote the placeholder
    (documents are stored unlabeled) and say how to provide data.

    Two processes starting at once do not both train: the second waits on a lock and then finds the model.
    """
    from classifier.quick import train_quick

    registry = Registry.from_settings(settings)
    current = registry.promoted()
    if current is not None and current.kind != "none":
        return current
    registry.root.mkdir(parents=True, exist_ok=True)
    with open(registry.root / ".train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = registry.promoted()
        if current is not None and current.kind != "none":
            return current
        root = settings.shared_data_dir
        sets = available_builtin(root)
        if not sets:
            echo(
                f"{no_data_message(root)} Until then FinPulse runs and stores documents unlabeled; "
                "restart `finpulse up` (or run `finpulse train --quick --promote`) once data is there."
            )
            if current is None:
                current = registry.promote(_placeholder(registry).name)
            return current
        echo(f"No trained model in {registry.root}: training the quick model from {', '.join(sets)} (seconds).")
        info = train_quick(settings, datasets=sets, promote=True, echo=echo if progress else None)
        echo(f"Serving {info.name}; the transformer trains in the background (`finpulse status` shows progress).")
        return info


def placeholder_served(settings: Settings) -> bool:
    info = Registry.from_settings(settings).promoted()
    return info is not None and info.kind == "none"


__all__ = ["NoTrainingDataError", "ensure_default_model", "placeholder_served"]
