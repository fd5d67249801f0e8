"""Serving the promoted model: load it on this worker's device, watch the registry, swap in a newly promoted
version between batches (no restart; a batch is classified by exactly one version and its rows name it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from finpulse.settings import Settings

log = logging.getLogger(__name__)


def device_for_worker(device: str, index: int, gpus: int | None = None) -> str:
    """Worker i gets GPU i (modulo the GPUs present); with none, the CPU. ``device`` is settings.model_device."""
    if device == "cpu":
        return "cpu"
    if gpus is None:
        from classifier.device import gpu_may_be_present

        if gpu_may_be_present():  # else no driver: skip importing torch (a CPU worker serving ONNX never needs it)
            import torch

            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        else:
            gpus = 0
    if gpus == 0:
        if device == "cuda":
            raise RuntimeError("FINPULSE_MODEL_DEVICE=cuda but torch sees no GPU; use auto or cpu")
        return "cpu"
    return f"cuda:{index % gpus}"


def _load_engine(settings: Settings, path: Path, device: str) -> Any:
    from classifier.serving import load_engine

    return load_engine(path, settings, device)  # quick linear model, transformer or the no-data placeholder


class ModelServer:
    """Holds the engine the stream uses now. ``refresh`` is called on a timer from the event loop."""

    def __init__(
        self,
        settings: Settings,
        device: str,
        *,
        loader: Callable[[Settings, Path, str], Any] = _load_engine,
        on_swap: Callable[[Any], None] | None = None,
    ) -> None:
        self.settings = settings
        self.device = device
        self._loader = loader
        self._on_swap = on_swap
        self.engine: Any = None
        self._ready: asyncio.Event | None = None
        self._refreshing = asyncio.Lock()
        self._warned_missing = False

    @property
    def ready(self) -> asyncio.Event:
        if self._ready is None:
            self._ready = asyncio.Event()
        return self._ready

    @property
    def model_version(self) -> str | None:
        return self.engine.model_version if self.engine is not None else None

    async def current(self) -> Any:
        """The engine to classify the next batch with; waits while no model is promoted yet."""
        await self.ready.wait()
        return self.engine

    async def refresh(self) -> bool:
        """Load the promoted model if it is not the one served; True when a (new) model was swapped in."""
        from classifier.registry import Registry, RegistryError

        if self._refreshing.locked():
            return False  # a load is already under way (start-up or the previous poll)
        async with self._refreshing:
            try:
                info = Registry.from_settings(self.settings).promoted()
            except RegistryError as exc:
                log.error("model registry unreadable: %s", exc)
                return False
            if info is None:
                if not self._warned_missing:
                    log.error(
                        "no promoted model in %s: the stream waits; train one (`finpulse train --promote`)",
                        self.settings.registry_dir,
                    )
                    self._warned_missing = True
                return False
            if info.model_version == self.model_version:
                return False
            # Loading takes seconds of CPU: off the event loop, so heartbeats and the current batches go on.
            engine = await asyncio.to_thread(self._loader, self.settings, info.path, self.device)
            old, self.engine = self.engine, engine
            log.info(
                "serving model %s",
                engine.model_version,
                extra={"previous": old.model_version if old is not None else None, "device": self.device},
            )
            if self._on_swap:
                self._on_swap(engine)
            self.ready.set()
            if old is not None and hasattr(old, "close"):
                old.close()  # batches hold their own reference; closing only stops the prefetch thread
            return True
