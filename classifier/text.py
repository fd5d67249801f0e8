"""Text preprocessing shared by training, evaluation and the engine (a model is served as it was trained)."""

from __future__ import annotations

import re

_URL = re.compile(r"https?://\S+|www\.\S+")
_WS = re.compile(r"\s+")


def clean_text(text: str, strip_urls: bool = True) -> str:
    """Drop links (t.co links carry no meaning and cost ~20 tokens each in a tweet) and collapse whitespace."""
    if strip_urls:
        text = _URL.sub(" ", text)
    return _WS.sub(" ", text).strip()
