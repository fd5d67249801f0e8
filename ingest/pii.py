"""Masking personal data before anything leaves the worker: e-mail addresses, phone numbers, national ID numbers
(China's 18-character resident ID) and payment card numbers (13-19 digits passing the Luhn check)."""

from __future__ import annotations

import re
from dataclasses import dataclass

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
ID_NUMBER = "[ID]"
CARD = "[CARD]"

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# Resident ID: 6-digit region, birth date 18xx-20xx, 3 digits, check digit or X.
_CN_ID = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])"
)
_CARD = re.compile(r"(?<![\d.])(?:\d[ \-]?){12,18}\d(?!\d|\.\d)")
_CN_MOBILE = re.compile(r"(?<![\d.])(?:\+?86[ \-]?)?1[3-9]\d[ \-]?\d{4}[ \-]?\d{4}(?!\d|\.\d)")
# International (+CC ...) or North-American style (555) 123-4567 / 555-123-4567; a bare 10-digit run is left
# alone because prices, volumes and order ids look the same.
_PHONE = re.compile(
    r"(?<![\w.])(?:\+\d{1,3}[ \-.]?(?:\(?\d{1,4}\)?[ \-.]?){2,4}\d{2,4}"
    r"|\(\d{3}\)[ \-.]?\d{3}[ \-.]\d{4}|\d{3}[\-.]\d{3}[\-.]\d{4})(?!\w|\.\d)"
)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return CARD if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


@dataclass(frozen=True)
class Masked:
    text: str
    counts: dict[str, int]


def mask(text: str) -> Masked:
    """Replace personal data with placeholders; counts say what was found (kept in meta, never the values)."""
    counts: dict[str, int] = {}

    def sub(pattern: re.Pattern[str], repl, label: str, value: str) -> str:  # type: ignore[no-untyped-def]
        new, n = pattern.subn(repl, value)
        if n and (label != "card" or CARD in new):
            counts[label] = counts.get(label, 0) + (n if label != "card" else new.count(CARD) - value.count(CARD))
        return new

    if not text:
        return Masked(text, counts)
    text = sub(_EMAIL, EMAIL, "email", text)
    text = sub(_CN_ID, ID_NUMBER, "id", text)
    text = sub(_CARD, _card, "card", text)
    text = sub(_CN_MOBILE, PHONE, "phone", text)
    text = sub(_PHONE, PHONE, "phone", text)
    return Masked(text, {k: v for k, v in counts.items() if v})
