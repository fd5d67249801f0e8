"""RSS and Atom feeds: one polling loop per feed with conditional GET (ETag / Last-Modified), its own interval
and timeout, and exponential backoff while it fails. The validators are checkpointed with the entries, after Kafka
acknowledged them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import feedparser
import httpx

from ingest.item import Item
from ingest.sources import register
from ingest.sources.base import Kind, SourceConfig, SourceContext
from ingest.sources.fetch import FetchError, get
from ingest.sources.polling import poll_forever

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config(SourceConfig):
    """One feed: a ``[[rss]]`` table."""

    name: str
    url: str
    interval_s: float = 300.0
    timeout_s: float = 10.0
    kind: Kind = "news"
    backoff_max_s: float = 3600.0


def entries_to_items(parsed: Any) -> list[Item]:
    items = []
    for entry in parsed.entries:
        body = ""
        if entry.get("content"):
            body = entry["content"][0].get("value", "")
        body = body or entry.get("summary", "")
        published = entry.get("published_parsed") or entry.get("updated_parsed")
        items.append(
            Item(
                title=entry.get("title", ""),
                body=body,
                source_id=entry.get("id") or entry.get("link") or None,
                url=entry.get("link"),
                author=entry.get("author"),
                published_at=published,
                tickers=[t.get("term", "") for t in entry.get("tags", []) if t.get("term", "").startswith("$")] or None,
            )
        )
    return items


def parse_feed(body: bytes, content_type: str | None) -> Any:
    """feedparser's result; FetchError('malformed_feed') when nothing usable came out of the bytes."""
    headers = {"content-type": content_type} if content_type else {}
    parsed = feedparser.parse(body, response_headers=headers)
    if parsed.bozo and not parsed.entries:
        raise FetchError("malformed_feed", f"{type(parsed.bozo_exception).__name__}: {parsed.bozo_exception}")
    if not parsed.entries and not parsed.get("feed"):
        raise FetchError("malformed_feed", "no feed or entries found")
    return parsed


class Source:
    def __init__(self, feed: Config) -> None:
        self.feed = feed
        self.name = feed.name

    def poll_once(self, ctx: SourceContext, client: httpx.Client) -> int:
        """One conditional GET; returns how many entries were submitted."""
        position = ctx.position(self.name) or {}
        headers = {"Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"}
        if position.get("etag"):
            headers["If-None-Match"] = position["etag"]
        if position.get("modified"):
            headers["If-Modified-Since"] = position["modified"]
        resp = get(client, self.feed.url, timeout_s=self.feed.timeout_s, max_bytes=ctx.max_fetch_bytes, headers=headers)
        if resp.status == 304:
            return 0
        parsed = parse_feed(resp.body, resp.headers.get("content-type"))
        if parsed.bozo:  # usable but broken (bad encoding declaration, unclosed tag): count, keep the entries
            ctx.metrics.errors.labels(self.name, "feed_warning").inc()
            log.info("%s: feed parsed with a warning: %s", self.name, parsed.bozo_exception)
        items = entries_to_items(parsed)
        new_position = {"etag": resp.headers.get("etag"), "modified": resp.headers.get("last-modified")}
        ctx.pipeline.process(self.name, self.feed.kind, items, new_position)
        return len(items)

    def run(self, ctx: SourceContext) -> None:
        poll_forever(
            ctx,
            self.name,
            self.poll_once,
            interval_s=self.feed.interval_s,
            backoff_max_s=self.feed.backoff_max_s,
            fixed_cadence=True,
        )


register("rss", Config, lambda cfg, batch_size: Source(cfg))
