"""Masking personal data before anything leaves the worker: e-mail addresses, phone numbers, national ID numbers
(China's 18-character resident ID, US social security numbers), IBANs (mod-97 check) and payment card numbers
(13-19 digits passing the Luhn check); and keyed author hashes.

Every pattern runs in linear time: each quantifier is bounded or can only start at a boundary, so a long run of
look-alike characters is scanned once, not once per start position."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
ID_NUMBER = "[ID]"
CARD = "[CARD]"
IBAN = "[IBAN]"
AUTHOR_KEY_SECRET = "ingest_author_hash_key"  # its name in <data_dir>/secrets.json

# A start only where the local part begins, and bounded parts (RFC 5321: 64 and 255): linear, where the unbounded
# form rescanned a long run of letters from every position.
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,24}(?![A-Za-z])")
_SSN = re.compile(r"(?<![\d\-])(?!000|666|9\d\d)\d{3}([\- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d\-])")
# Country code, check digits, 11-30 alphanumerics in groups of four (spaces optional), checked with mod 97.
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")
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
    r"|\(\d{3}\)[ \-.]?\d{3}[ \-.]\d{4}|\d{3}([\-. ])\d{3}\1\d{4})(?!\w|\.\d)"
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


def _iban_ok(compact: str) -> bool:
    if not 15 <= len(compact) <= 34:
        return False
    digits = "".join(str(int(ch, 36)) for ch in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


def _iban(match: re.Match[str]) -> str:
    return IBAN if _iban_ok(match.group(0).replace(" ", "")) else match.group(0)


@dataclass(frozen=True)
class Masked:
    text: str
    counts: dict[str, int]


def mask(text: str) -> Masked:
    """Replace personal data with placeholders; counts say what was found (kept in meta, never the values)."""
    counts: dict[str, int] = {}

    def sub(pattern: re.Pattern[str], repl, label: str, value: str) -> str:  # type: ignore[no-untyped-def]
        new, n = pattern.subn(repl, value)
        if n and label in ("card", "iban"):
            placeholder = CARD if label == "card" else IBAN
            n = new.count(placeholder) - value.count(placeholder)
        if n:
            counts[label] = counts.get(label, 0) + n
        return new

    if not text:
        return Masked(text, counts)
    text = sub(_EMAIL, EMAIL, "email", text)
    text = sub(_IBAN, _iban, "iban", text)
    text = sub(_CN_ID, ID_NUMBER, "id", text)
    text = sub(_SSN, ID_NUMBER, "id", text)
    text = sub(_CARD, _card, "card", text)
    text = sub(_CN_MOBILE, PHONE, "phone", text)
    text = sub(_PHONE, PHONE, "phone", text)
    return Masked(text, {k: v for k, v in counts.items() if v})


def author_key(data_dir: Path) -> bytes:
    """The install's key for author hashes, generated at first start into <data_dir>/secrets.json (0600)."""
    from finpulse.secrets import install_secrets

    return install_secrets(data_dir, [AUTHOR_KEY_SECRET])[AUTHOR_KEY_SECRET].encode("utf-8")


def hash_author(author: str | None, key: bytes) -> str | None:
    """HMAC-SHA256 keyed per install: groups one author's posts, but without the key a list of candidate names
    cannot be hashed and compared (an unkeyed hash of a name is a lookup away from the name)."""
    if not author or not author.strip():
        return None
    return "h:" + hmac.new(key, author.strip().encode("utf-8"), hashlib.sha256).hexdigest()[:16]
