"""The "model" step of `finpulse up`: a promoted model must exist before the stream starts.

On a fresh data dir that is the quick linear model, trained in seconds; the transformer is the `trainer` part's
job (classifier/background.py), in the background. Without labeled data the stack still starts: the stream
stores documents unlabeled and the log says how to provide data.
"""

from __future__ import annotations

import logging

from classifier.registry import Registry
from finpulse.settings import Settings
from finpulse.stack.supervisor import ServiceSpec

log = logging.getLogger(__name__)


def _ensure(settings: Settings) -> None:
    from classifier.bootstrap import ensure_default_model

    def echo(message: str) -> None:
        (log.warning if message.startswith("no labeled data") else log.info)(message)

    info = ensure_default_model(settings, echo=echo)
    log.info("serving model %s", info.name, extra={"kind": info.kind})


def _note(registry: Registry) -> str:
    info = registry.promoted()
    if info is None:
        return "trains the quick model on first start (seconds)"
    if info.kind == "none":
        return "NO LABELED DATA: documents stored unlabeled; set FINPULSE_SHARED_DATA_DIR and restart"
    return f"serving {info.name} ({info.kind})"


def service_spec(settings: Settings) -> ServiceSpec:
    registry = Registry.from_settings(settings)
    return ServiceSpec(
        name="model",
        endpoint=str(registry.root),
        healthy=lambda: registry.promoted() is not None,
        after_start=lambda: _ensure(settings),
        note=_note(registry),
        setup_first=True,
    )
