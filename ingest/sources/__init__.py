"""Source kinds, one module each: a module holds its kind's ``Config`` and ``Source`` and registers them here under
the kind's name, which is also its table in sources.toml (``[[rss]]``, ``[[http_json]]``, ...). A new kind is one
new module in this package; ``kinds()`` imports every module of the package, so it needs no list of its own."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ingest.sources.base import Source, SourceConfig

C = TypeVar("C", bound=SourceConfig)


@dataclass(frozen=True)
class SourceKind:
    name: str  # the kind's table in sources.toml
    config: type[SourceConfig]
    build: Callable[[Any, int], Source]  # (its Config, the worker's batch size) -> its Source


_KINDS: dict[str, SourceKind] = {}


def register(name: str, config: type[C], build: Callable[[C, int], Source]) -> None:
    """Make a kind known: ``[[name]]`` tables become ``config`` objects, and ``build(config, batch_size)`` their
    Source. Registering a name again from another module is a mistake (two kinds would share one table)."""
    existing = _KINDS.get(name)
    if existing is not None and existing.config.__module__ != config.__module__:
        raise ValueError(f"source kind {name!r} is registered by {existing.config.__module__} already")
    _KINDS[name] = SourceKind(name, config, build)


def kinds() -> dict[str, SourceKind]:
    """Every source kind by name, after importing each module of this package (importing registers a kind)."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return dict(_KINDS)


def kind_of(config: SourceConfig) -> SourceKind:
    """The registered kind a config object belongs to."""
    for kind in kinds().values():
        if type(config) is kind.config:
            return kind
    raise TypeError(f"{type(config).__module__}.{type(config).__qualname__} is not a registered source kind's Config")


def build_source(config: SourceConfig, batch_size: int) -> Source:
    """The Source that runs ``config``."""
    return kind_of(config).build(config, batch_size)
