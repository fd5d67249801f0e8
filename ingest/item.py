"""What a source hands to the shared path: loosely typed fields straight from a feed, API, file or push."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Item:
    title: Any = ""
    body: Any = ""
    source_id: Any = None
    url: Any = None
    author: Any = None
    published_at: datetime | str | int | float | None = None
    tickers: Any = None
    kind: Any = None
    meta: dict[str, Any] = field(default_factory=dict)


class Rejected(Exception):
    """An item that cannot become a raw document; ``reason`` is a short label counted in metrics."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)
