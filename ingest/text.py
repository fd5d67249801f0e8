"""Cleaning fetched text: HTML removed (scripts and styles with their content), entities decoded, Unicode NFKC,
control characters dropped, whitespace collapsed, length capped at a word boundary."""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser

_WS = re.compile(r"[ \t\f\v\u00a0\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")
_TAG_HINT = re.compile(r"<[a-zA-Z!/][^<>]*>")  # [^<>]: a scan ends at the next "<", so this is linear
_SKIP = frozenset({"script", "style", "noscript", "iframe", "object", "template", "svg", "head"})
_BLOCK = frozenset({"p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "section"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip_depth += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def strip_html(text: str) -> str:
    """Visible text of an HTML fragment; plain text passes through with only entities decoded."""
    if not _TAG_HINT.search(text):
        return html.unescape(text)
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


def raw_cap(max_chars: int) -> int:
    """How much raw input is read for a field cut to ``max_chars``: room for markup, bounded work."""
    return 4 * max_chars + 1024


def clean(text: str | None) -> str:
    """Clean text, not truncated (callers cut raw input to ``raw_cap`` first, then mask, then ``truncate``)."""
    if not text:
        return ""
    text = strip_html(text)
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _WS.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def clean_text(text: str | None, max_chars: int) -> tuple[str, bool]:
    """(clean text, whether it was truncated)."""
    if not text:
        return "", False
    return truncate(clean(text[: raw_cap(max_chars)]), max_chars)


def truncate(text: str, max_chars: int) -> tuple[str, bool]:
    """(text cut at a word boundary near ``max_chars`` with an ellipsis, whether it was cut)."""
    if len(text) <= max_chars:
        return text, False
    cut = text[:max_chars]
    space = cut.rfind(" ", max_chars - 200)
    if space > max_chars // 2:  # end on a word boundary when there is one nearby (not in CJK text)
        cut = cut[:space]
    return cut.rstrip() + "…", True


def one_line(text: str) -> str:
    """Titles are one line."""
    return " ".join(text.split())
