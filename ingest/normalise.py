"""The shared path from a fetched item to a valid raw document: clean, mask personal data, find tickers and
entities, detect the language, hash the author, assign the stable id."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from finpulse.contracts import ContractError, RawDocument, make_raw, utcnow
from ingest.item import Item, Rejected
from ingest.lang import detect_language
from ingest.pii import author_key, hash_author, mask
from ingest.text import clean, one_line, raw_cap, truncate
from ingest.tickers import TickerExtractor
from ingest.timestamps import parse_timestamp

log = logging.getLogger(__name__)

_META_MAX_KEYS = 20


def _as_text(value: Any, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise Rejected("bad_field", f"{field} must be text, got {type(value).__name__}")


def _tickers(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = value.replace(";", ",").split(",")
    if not isinstance(value, list | tuple):
        raise Rejected("bad_field", f"tickers must be a list or a comma-separated string, got {type(value).__name__}")
    out = []
    for t in value:
        if not isinstance(t, str):
            raise Rejected("bad_field", "tickers must be strings")
        t = t.strip().lstrip("$").upper()
        if t:
            if len(t) > 20:
                raise Rejected("bad_field", f"ticker {t[:24]!r} is longer than 20 characters")
            out.append(t)
    return out


def _meta(meta: dict[str, Any]) -> dict[str, Any]:
    # Scalars only, masked: meta travels with the document like the text does.
    out: dict[str, Any] = {}
    for key, value in list(meta.items())[:_META_MAX_KEYS]:
        name = mask(str(key)[:256]).text[:64]  # a key can carry personal data as well as a value
        if isinstance(value, str):
            masked = mask(value[:2000]).text  # masked before the cut, so a cut never leaves half a number
            out[name] = masked[:1000]
        elif isinstance(value, bool | int | float) or value is None:
            out[name] = value
    return out


class Normaliser:
    def __init__(
        self,
        *,
        companies: dict[str, str],
        max_title_chars: int,
        max_body_chars: int,
        worker_id: str,
        author_key: bytes | None = None,
    ) -> None:
        self.tickers = TickerExtractor(companies)
        self.max_title = max_title_chars
        self.max_body = max_body_chars
        self.worker_id = worker_id
        self._author_key = author_key

    @property
    def author_key(self) -> bytes:
        if self._author_key is None:  # the install's key (settings' data dir), read once
            from finpulse.settings import load_settings

            self._author_key = author_key(load_settings().data_dir)
        return self._author_key

    def __call__(self, source: str, default_kind: str, item: Item, now: datetime | None = None) -> RawDocument:
        """A raw document, or Rejected with the reason (whatever the item holds: never another exception)."""
        try:
            return self._normalise(source, default_kind, item, now)
        except Rejected:
            raise
        except Exception as exc:  # an input shape no check foresaw: that item is refused, the batch goes on
            log.warning("item refused by an unexpected error", exc_info=True, extra={"source": source})
            raise Rejected("bad_item", f"cannot normalise the item ({type(exc).__name__})") from exc

    def _normalise(self, source: str, default_kind: str, item: Item, now: datetime | None) -> RawDocument:
        now = now or utcnow()
        # Raw input cut to a bound before any regex; masked on the whole cleaned text, and only then truncated.
        title = one_line(clean(_as_text(item.title, "title")[: raw_cap(self.max_title)]))
        body = clean(_as_text(item.body, "body")[: raw_cap(self.max_body)])
        if not title and not body:
            raise Rejected("empty_text", "no text left after cleaning")
        masked_title, masked_body = mask(title), mask(body)
        title, title_cut = truncate(masked_title.text, self.max_title)
        body, body_cut = truncate(masked_body.text, self.max_body)
        url = _as_text(item.url, "url")[:8000].strip() or None
        if url is not None:
            url = mask(url).text[:4000]
        kind = item.kind or default_kind
        if kind not in ("news", "comment"):
            raise Rejected("bad_field", f"kind must be 'news' or 'comment', got {str(kind)[:20]!r}")
        published = parse_timestamp(item.published_at, now) if item.published_at not in (None, "") else now
        found = self.tickers.extract(title, body, _tickers(item.tickers))
        source_id = _as_text(item.source_id, "id").strip()[:500] or None
        meta = _meta(item.meta)
        meta["worker"] = self.worker_id
        pii = {
            k: masked_title.counts.get(k, 0) + masked_body.counts.get(k, 0)
            for k in {**masked_title.counts, **masked_body.counts}
        }
        if pii:
            meta["masked"] = ",".join(f"{k}:{v}" for k, v in sorted(pii.items()))
        if title_cut or body_cut:
            meta["truncated"] = True
        author = _as_text(item.author, "author")[:1000].strip()
        try:
            return make_raw(
                source=source,
                kind=kind,
                title=title,
                body=body,
                published_at=published,
                source_id=source_id,
                lang=detect_language(f"{title}\n{body}"[:2000]),
                url=url,
                author=hash_author(author or None, self.author_key),
                tickers=found.tickers,
                entities=found.entities,
                meta=meta,
                ingested_at=now,
            )
        except ContractError as exc:
            raise Rejected(f"contract:{exc.field or 'document'}", exc.reason) from exc
