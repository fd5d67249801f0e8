"""A model folder's ``tokenizer.json`` run by the ``tokenizers`` library directly, for the ONNX serving path.

transformers' fast tokenizers call exactly this Rust code (``enable_truncation`` / ``enable_padding`` /
``encode_batch``), but importing transformers imports torch (~400 MB of RSS in a worker that never runs it). The
subset of the ``__call__`` API the engine uses is kept, so the engine does not care which one it holds; a unit
test checks that both give the same ids and masks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"


def _token(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or an AddedToken dict with ``content``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


class RustTokenizer:
    is_fast = True

    def __init__(
        self, tokenizer: Tokenizer, pad_token: str | None, padding_side: str = "right", truncation_side: str = "right"
    ) -> None:
        self._tokenizer = tokenizer
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.pad_token = pad_token
        self.pad_token_id = tokenizer.token_to_id(pad_token) if pad_token is not None else None
        self.padding_side = padding_side
        self.truncation_side = truncation_side

    @classmethod
    def load(cls, directory: Path | str) -> RustTokenizer:
        """Raises FileNotFoundError when the folder has no tokenizer.json (a slow-only tokenizer)."""
        directory = Path(directory)
        tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        try:
            config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
        pad = _token(config.get("pad_token"))
        if pad is None and (saved := tokenizer.padding):
            pad = saved.get("pad_token")
        return cls(
            tokenizer,
            pad,
            padding_side=config.get("padding_side", "right"),
            truncation_side=config.get("truncation_side", "right"),
        )

    def __call__(
        self,
        texts: list[str],
        *,
        padding: bool | str = False,
        truncation: bool = False,
        max_length: int | None = None,
        return_tensors: str = "np",
        return_token_type_ids: bool = False,
        return_overflowing_tokens: bool = False,
    ) -> dict[str, np.ndarray]:
        if return_tensors != "np" or return_token_type_ids or return_overflowing_tokens:
            raise ValueError("RustTokenizer returns numpy input_ids and attention_mask only")
        if padding not in (False, True, "longest"):
            raise ValueError(f"padding={padding!r}: only the batch's longest row is supported")
        if truncation and max_length is not None:
            self._tokenizer.enable_truncation(max_length, strategy="longest_first", direction=self.truncation_side)
        else:
            self._tokenizer.no_truncation()
        if padding:
            if self.pad_token_id is None:
                raise ValueError("this tokenizer has no pad token: cannot pad a batch")
            self._tokenizer.enable_padding(
                direction=self.padding_side, pad_id=self.pad_token_id, pad_token=self.pad_token
            )
        else:
            self._tokenizer.no_padding()
        encodings = self._tokenizer.encode_batch(list(texts))
        if len({len(e.ids) for e in encodings}) > 1:
            raise ValueError("rows of different lengths: pass padding='longest'")
        width = len(encodings[0].ids) if encodings else 0
        ids = np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(encodings), width)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64).reshape(len(encodings), width)
        return {"input_ids": ids, "attention_mask": mask}
