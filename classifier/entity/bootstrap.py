"""First start: train and promote the quick entity model when none is promoted and FiQA / FinNSP are there."""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Callable
from typing import Any

from classifier.entity import convert
from classifier.registry import ModelInfo

log = logging.getLogger(__name__)


def ensure_entity_model(settings: Any, echo: Callable[[str], None] = print) -> ModelInfo | None:
    """The promoted entity model, trained now if there is none; None without entity data (or when training
    fails: document-level labels never wait on the entity model)."""
    from classifier.entity.linear import entity_registry, train_entity

    registry = entity_registry(settings)
    current = registry.promoted()
    if current is not None:
        return current
    root = settings.shared_data_dir
    if root is None or not any((root / f).is_file() for f in (convert.FIQA_FILE, convert.FINNSP_TRAIN_FILE)):
        echo(
            f"no entity data ({convert.FIQA_FILE} / {convert.FINNSP_TRAIN_FILE} under {root}): entity-level "
            "sentiment stays off; run `finpulse train --task entity --promote` once the data is there."
        )
        return None
    registry.root.mkdir(parents=True, exist_ok=True)
    with open(registry.root / ".train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = registry.promoted()
        if current is not None:
            return current
        started = time.monotonic()
        try:
            info = train_entity(settings, promote=True)
        except Exception as exc:  # never block the stack on the entity model
            log.exception("entity model training failed")
            echo(f"entity model not trained ({exc}); run `finpulse train --task entity --promote`")
            return None
        echo(f"entity model {info.name} trained and promoted in {time.monotonic() - started:.1f} s")
        return info
