"""The "model" step of `finpulse up`: a promoted model must exist before the stream starts (trained once)."""

from __future__ import annotations

import logging

from classifier.data import DataError
from classifier.registry import Registry
from finpulse.settings import Settings
from finpulse.stack.errors import StackError
from finpulse.stack.supervisor import ServiceSpec

log = logging.getLogger(__name__)


def _ensure(settings: Settings) -> None:
    from classifier.bootstrap import ensure_default_model

    try:
        info = ensure_default_model(settings, echo=log.info)
    except DataError as exc:  # no promoted model and no labeled data: say how to provide it
        raise StackError(str(exc)) from exc
    log.info("serving model %s", info.name)


def service_spec(settings: Settings) -> ServiceSpec:
    registry = Registry.from_settings(settings)
    return ServiceSpec(
        name="model",
        endpoint=str(registry.root),
        healthy=lambda: registry.promoted() is not None,
        after_start=lambda: _ensure(settings),
        note="trains the default model on first start",
        setup_first=True,
    )
