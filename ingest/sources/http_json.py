"""HTTP JSON APIs (market-data vendors): a configurable mapping from the API's items to the contract, cursor or
page pagination, a request rate limit, and backoff while the API fails. The cursor or page is checkpointed after
each page's documents were acknowledged, so a restart resumes at the page it was on."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from ingest.item import Item
from ingest.sources import register
from ingest.sources.base import Kind, SourceConfig, SourceContext, from_table
from ingest.sources.fetch import FetchError, get
from ingest.sources.polling import poll_forever


@dataclass(frozen=True)
class Pagination:
    type: Literal["none", "cursor", "page"] = "none"
    param: str = "cursor"  # query parameter carrying the cursor or page number
    next_path: str = "next"  # cursor: where the next cursor is in the response body
    start: int = 1  # page: first page number
    size_param: str | None = None
    size: int | None = None
    max_pages: int = 100  # per poll, so one endless API cannot starve the rest


@dataclass(frozen=True)
class Config(SourceConfig):
    """One API: a ``[[http_json]]`` table (its ``pagination`` a sub-table)."""

    name: str
    url: str
    items_path: str = ""  # dotted path to the list of items; "" = the body is the list
    mapping: dict[str, str] = field(default_factory=dict)  # contract field -> dotted path in an item
    pagination: Pagination = field(default_factory=Pagination)
    interval_s: float = 60.0
    timeout_s: float = 10.0
    rate_limit_per_s: float = 5.0
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    kind: Kind = "news"
    backoff_max_s: float = 3600.0

    @classmethod
    def prepare(cls, values: dict[str, Any], table: str, base_dir: Path) -> dict[str, Any]:
        if isinstance(values.get("pagination"), dict):
            values["pagination"] = from_table(Pagination, f"{table}.pagination", values["pagination"], base_dir)
        return values


DEFAULT_MAPPING = {
    "source_id": "id",
    "title": "title",
    "body": "body",
    "url": "url",
    "author": "author",
    "published_at": "published_at",
    "tickers": "tickers",
}
_ITEM_FIELDS = {"source_id", "title", "body", "url", "author", "published_at", "tickers", "kind"}
_MISSING = object()


def lookup(obj: Any, path: str) -> Any:
    """Value at a dotted path ('data.items', 'user.name', 'symbols.0'); _MISSING when absent."""
    if not path:
        return obj
    for part in path.split("."):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.lstrip("-").isdigit() and -len(obj) <= int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return _MISSING
    return obj


def map_item(raw: Any, mapping: dict[str, str]) -> Item:
    """An Item from one API object; contract fields by mapping, 'meta.X' keys go to meta. Non-objects become an
    Item whose fields are all missing, which the shared path rejects as empty."""
    item = Item()
    if not isinstance(raw, dict):
        item.meta["not_an_object"] = type(raw).__name__
        return item
    for target, path in mapping.items():
        value = lookup(raw, path)
        if value is _MISSING:
            continue
        if target.startswith("meta."):
            item.meta[target[5:]] = value
        elif target in _ITEM_FIELDS:
            setattr(item, target, value)
    return item


def effective_mapping(mapping: dict[str, str]) -> dict[str, str]:
    merged = dict(DEFAULT_MAPPING)
    merged.update({("source_id" if k == "id" else k): v for k, v in mapping.items()})
    return merged


class Source:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.mapping = effective_mapping(cfg.mapping)
        self._last_request = 0.0

    def _throttle(self, ctx: SourceContext) -> bool:
        gap = 1.0 / self.cfg.rate_limit_per_s - (time.monotonic() - self._last_request)
        if gap > 0 and not ctx.sleep(gap):
            return False
        self._last_request = time.monotonic()
        return True

    def _fetch_page(self, ctx: SourceContext, client: httpx.Client, params: dict[str, str]) -> Any:
        resp = get(
            client,
            self.cfg.url,
            timeout_s=self.cfg.timeout_s,
            max_bytes=ctx.max_fetch_bytes,
            headers=self.cfg.headers,
            params=params,
        )
        try:
            return json.loads(resp.body)
        except UnicodeDecodeError as exc:
            raise FetchError("bad_encoding", f"body is not UTF-8 at byte {exc.start}") from exc
        except json.JSONDecodeError as exc:
            raise FetchError("malformed_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from exc

    def poll_once(self, ctx: SourceContext, client: httpx.Client) -> int:
        """Fetch pages from the stored cursor/page until the API has no more; returns items submitted."""
        pag = self.cfg.pagination
        position = ctx.position(self.name) or {}
        cursor = position.get("cursor")
        page = int(position.get("page", pag.start))
        submitted = 0
        for _ in range(pag.max_pages):
            if not self._throttle(ctx):
                return submitted
            params = dict(self.cfg.params)
            if pag.type == "cursor" and cursor is not None:
                params[pag.param] = str(cursor)
            elif pag.type == "page":
                params[pag.param] = str(page)
            if pag.size_param and pag.size:
                params[pag.size_param] = str(pag.size)
            body = self._fetch_page(ctx, client, params)
            raw_items = lookup(body, self.cfg.items_path)
            if raw_items is _MISSING or not isinstance(raw_items, list):
                raise FetchError("malformed_json", f"no list at {self.cfg.items_path or 'the top level'}")
            items = [map_item(raw, self.mapping) for raw in raw_items]
            more = False
            new_position: dict[str, Any]
            if pag.type == "cursor":
                nxt = lookup(body, pag.next_path)
                more = nxt not in (_MISSING, None, "") and nxt != cursor
                # At the end, keep the cursor of the last page: new items appear there (duplicates are dropped).
                new_position = {"cursor": nxt if more else cursor}
            elif pag.type == "page":
                more = bool(raw_items) and (pag.size is None or len(raw_items) >= pag.size)
                new_position = {"page": page + 1 if more else page}
            else:
                new_position = {}
            ctx.pipeline.process(self.name, self.cfg.kind, items, new_position)
            submitted += len(items)
            if not more:
                break
            cursor = new_position.get("cursor", cursor)
            page = new_position.get("page", page)
        return submitted

    def run(self, ctx: SourceContext) -> None:
        poll_forever(
            ctx,
            self.name,
            self.poll_once,
            interval_s=self.cfg.interval_s,
            backoff_max_s=self.cfg.backoff_max_s,
            fixed_cadence=False,
        )


register("http_json", Config, lambda cfg, batch_size: Source(cfg))
