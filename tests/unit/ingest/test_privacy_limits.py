"""Masking covers IBAN, US SSN, spaced phone numbers and meta keys, runs before truncation and in linear time;
author hashes are keyed per install; no item makes the normaliser raise anything but Rejected."""

from __future__ import annotations

import contextlib
import os
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from finpulse.contracts import hash_author as unkeyed_hash
from ingest.item import Item, Rejected
from ingest.normalise import Normaliser
from ingest.pii import author_key, hash_author, mask
from ingest.text import clean_text
from ingest.tickers import DEFAULT_COMPANIES

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _normaliser(max_body: int = 300) -> Normaliser:
    return Normaliser(
        companies=DEFAULT_COMPANIES, max_title_chars=200, max_body_chars=max_body, worker_id="w", author_key=b"k"
    )


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("pay to DE89 3704 0044 0532 0130 00 today", "iban"),
        ("pay to GB29NWBK60161331926819 today", "iban"),
        ("ssn 078-05-1120 on file", "id"),
        ("ssn 078 05 1120 on file", "id"),
        ("call 555 123 4567 now", "phone"),
        ("call (555) 123 4567 now", "phone"),
        ("call +1 555 123 4567 now", "phone"),
    ],
)
def test_new_personal_data_classes_are_masked(text: str, label: str) -> None:
    out = mask(text)
    assert out.counts.get(label) == 1, out
    digits = [c for c in out.text if c.isdigit()]
    assert len(digits) <= 2, out.text  # nothing of the number is left (a 2-digit country code may stay)


@pytest.mark.parametrize(
    "text",
    ["DE89 3704 0044 0532 0130 01 fails mod 97", "order 123-45-67890", "price 100 200 300", "000-12-3456"],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert mask(text).text == text


def test_meta_keys_are_masked_and_values_masked_before_the_cut() -> None:
    item = Item(
        title="Acme rallies",
        body="ok",
        meta={"jane@corp.com": "x", "note": "y" * 990 + " 4111 1111 1111 1111"},
    )
    doc = _normaliser()("wire", "news", item, now=NOW)
    assert "[EMAIL]" in doc.meta and not any("@" in k for k in doc.meta)
    assert "4111" not in doc.meta["note"] and len(doc.meta["note"]) <= 1000


def test_masking_runs_before_truncation() -> None:
    card = "4111 1111 1111 1111"
    body = "w " * 145 + card + " tail"  # the cut at 300 characters falls inside the card number
    doc = _normaliser(300)("wire", "news", Item(title="Acme", body=body), now=NOW)
    assert "4111" not in doc.body and doc.meta["truncated"] is True


@pytest.mark.parametrize(
    "attack",
    [
        "a" * 2_000_000,  # e-mail local part with no @
        "<a" * 1_000_000,  # tag opener with no >
        "1 " * 1_000_000,  # digit runs for card/phone/SSN
        "DE89" * 500_000,
        ".-" * 1_000_000,
        "\n " * 1_000_000,
    ],
)
def test_regexes_are_linear_on_5_mb_fields(attack: str) -> None:
    started = time.perf_counter()
    mask(attack[:200_000])
    clean_text(attack, 20_000)
    doc_started = time.perf_counter()
    with contextlib.suppress(Rejected):
        _normaliser(20_000)("wire", "news", Item(title=attack, body=attack), now=NOW)
    assert time.perf_counter() - doc_started < 3.0
    assert time.perf_counter() - started < 6.0


def test_mask_scales_linearly() -> None:
    def timed(n: int) -> float:
        text = "a" * n
        t = time.perf_counter()
        mask(text)
        return time.perf_counter() - t

    small, big = timed(50_000), timed(400_000)
    assert big < 30 * max(small, 1e-4)  # 8x the input; quadratic would be 64x


def test_author_hash_is_keyed_with_a_generated_0600_install_secret(tmp_path: Path) -> None:
    key = author_key(tmp_path / "data")
    assert len(key) >= 24 and author_key(tmp_path / "data") == key  # generated once, then read
    secrets = tmp_path / "data" / "secrets.json"
    assert stat.S_IMODE(os.stat(secrets).st_mode) == 0o600
    assert author_key(tmp_path / "other") != key
    hashed = hash_author("Jane Roe", key)
    assert hashed and hashed.startswith("h:") and hashed != unkeyed_hash("Jane Roe")
    assert hashed == hash_author(" Jane Roe ", key) and hash_author("", key) is None


@pytest.mark.parametrize(
    "item",
    [
        Item(title=["a"], body="x"),
        Item(title="Acme", published_at=10**400),
        Item(title="Acme", published_at=float("inf")),
        Item(title="Acme", published_at="9999999999999999999999"),
        Item(title="Acme", tickers=[1, 2]),
        Item(title="Acme", tickers={"a": 1}),
        Item(title="Acme", kind=["news"]),
        Item(title="Acme", author=object()),
    ],
)
def test_bad_items_are_rejected_never_raise_anything_else(item: Item) -> None:
    with pytest.raises(Rejected):
        _normaliser()("wire", "news", item, now=NOW)
