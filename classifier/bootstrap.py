"""First start: make sure a promoted model exists, training the default recipe when none does."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable

from classifier.config import builtin_recipe
from classifier.data import DataError, available_builtin, no_data_message
from classifier.registry import ModelInfo, Registry
from classifier.train import train
from finpulse.settings import Settings

log = logging.getLogger(__name__)


class NoTrainingDataError(DataError):
    """No promoted model and no labeled data to train one from; the message says how to provide data."""


def ensure_default_model(
    settings: Settings, *, progress: bool = True, echo: Callable[[str], None] = print
) -> ModelInfo:
    """Return the promoted model; when there is none, train the default recipe (<= 15 min on 2 cores) and promote it.

    Two processes starting at once do not both train: the second waits on a lock and then finds the model.
    """
    registry = Registry.from_settings(settings)
    current = registry.promoted()
    if current is not None:
        return current
    registry.root.mkdir(parents=True, exist_ok=True)
    with open(registry.root / ".train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = registry.promoted()
        if current is not None:
            return current
        root = settings.shared_data_dir
        sets = available_builtin(root)
        if not sets:
            raise NoTrainingDataError(no_data_message(root))
        args = builtin_recipe("default").replace(datasets=sets)
        echo(
            f"No promoted model in {registry.root}: training the default model from {', '.join(sets)} "
            f"(up to ~15 minutes on 2 CPU cores; once only)."
        )
        info = train(args, settings, promote=True, progress=progress)
        echo(f"Trained and promoted {info.name}.")
        return info
