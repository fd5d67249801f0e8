"""The local model registry: versioned model directories under ``settings.registry_dir`` and the promoted one.

A model directory is written under a temporary name and renamed into place, so a reader never sees half a
model. Promotion is one small file (``PROMOTED``) replaced atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finpulse.settings import Settings

META_FILE = "meta.json"
METRICS_FILE = "metrics.json"
PROMOTED_FILE = "PROMOTED"
# 64-bit hashes of the normalised training texts (numpy .npy): a shadow evaluation drops rows a model trained on.
TRAIN_KEYS_FILE = "train_keys.npy"
# What a model directory holds, from meta.json's "kind": a fine-tuned encoder, the quick TF-IDF + linear model, or
# the placeholder promoted when no labeled data exists (documents are stored unlabeled until data is provided).
KINDS = ("transformer", "linear", "none")


class RegistryError(LookupError):
    """A model name or directory cannot be resolved, or the registry is in a bad state."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    model_version: str
    created_at: str
    base_model: str
    languages: tuple[str, ...]
    metrics: dict[str, Any] = field(default_factory=dict)
    promoted: bool = False
    kind: str = "transformer"
    shadow: dict[str, Any] | None = None
    # Analysts' corrections the model trained on and its held-out corrections-slice score (classifier/corrections).
    corrections: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        out["languages"] = list(self.languages)
        return out


def read_model_info(path: Path, promoted: bool = False) -> ModelInfo:
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{path} is not a FinPulse model directory (no readable {META_FILE})") from exc
    metrics_path = path / METRICS_FILE
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    return ModelInfo(
        name=meta["name"],
        path=path,
        model_version=meta["model_version"],
        created_at=meta["created_at"],
        base_model=meta["base_model"],
        languages=tuple(meta.get("languages", ["en"])),
        metrics=metrics,
        promoted=promoted,
        kind=meta.get("kind", "transformer"),
        shadow=meta.get("shadow"),
        corrections=meta.get("corrections"),
    )


class Registry:
    def __init__(self, root: Path, *, train_command: str = "finpulse train") -> None:
        self.root = Path(root)
        self.train_command = train_command  # named in "no model" messages: what makes one for this registry

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        return cls(settings.registry_dir)

    def _promoted_name(self) -> str | None:
        try:
            name = (self.root / PROMOTED_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return name or None

    def list(self) -> list[ModelInfo]:
        """Every model in the registry, oldest first."""
        if not self.root.is_dir():
            return []
        promoted = self._promoted_name()
        infos = [
            read_model_info(p, promoted=p.name == promoted)
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / META_FILE).is_file()
        ]
        return sorted(infos, key=lambda i: (i.created_at, i.name))

    def get(self, name: str) -> ModelInfo:
        path = self.root / name
        if not (path / META_FILE).is_file():
            known = ", ".join(i.name for i in self.list()) or "none"
            raise RegistryError(f"no model {name!r} in {self.root} (models: {known})")
        return read_model_info(path, promoted=name == self._promoted_name())

    def promoted(self) -> ModelInfo | None:
        name = self._promoted_name()
        if name is None:
            return None
        try:
            return self.get(name)
        except RegistryError:
            return None  # the promoted model was deleted by hand: treat as none promoted

    def promote(self, name: str) -> ModelInfo:
        info = self.get(name)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{PROMOTED_FILE}.{os.getpid()}"
        tmp.write_text(name + "\n", encoding="utf-8")
        os.replace(tmp, self.root / PROMOTED_FILE)
        return read_model_info(info.path, promoted=True)

    def resolve(self, name_or_dir: str | Path | None = None) -> Path:
        """A model directory from a registry name, a path, 'promoted'/None or 'latest'."""
        if name_or_dir is None or str(name_or_dir) == "promoted":
            info = self.promoted()
            if info is None:
                raise RegistryError(
                    f"no promoted model in {self.root}; run `{self.train_command} --promote` or `finpulse up`"
                )
            return info.path
        if str(name_or_dir) == "latest":
            models = self.list()
            if not models:
                raise RegistryError(f"no models in {self.root}; run `{self.train_command}`")
            return models[-1].path
        candidate = Path(name_or_dir).expanduser()
        if (candidate / META_FILE).is_file():
            return candidate.resolve()
        return self.get(str(name_or_dir)).path

    def update_meta(self, name: str, **fields: Any) -> ModelInfo:
        """Add fields to a model's meta.json (e.g. its shadow-evaluation scores), replaced atomically."""
        path = self.get(name).path
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        meta.update(fields)
        tmp = path / f".{META_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path / META_FILE)
        return self.get(name)

    def staging_dir(self, name: str) -> Path:
        if (self.root / name).exists():
            raise RegistryError(f"model {name!r} already exists in {self.root}")
        path = self.root / f".staging-{name}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def commit(self, staging: Path, name: str) -> ModelInfo:
        final = self.root / name
        os.replace(staging, final)
        return read_model_info(final, promoted=name == self._promoted_name())
