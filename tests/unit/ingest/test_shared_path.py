"""The shared path: cleaning, masking, language, tickers, ids and what bad items get."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from finpulse.contracts import document_id, hash_author
from ingest.item import Item, Rejected
from ingest.lang import detect_language
from ingest.normalise import Normaliser
from ingest.pii import hash_author as keyed_hash
from ingest.pii import mask
from ingest.text import clean_text
from ingest.tickers import DEFAULT_COMPANIES, TickerExtractor

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEY = b"install-key-for-tests"


@pytest.fixture()
def normalise() -> Normaliser:
    return Normaliser(
        companies=DEFAULT_COMPANIES, max_title_chars=200, max_body_chars=300, worker_id="w-test", author_key=KEY
    )


def test_html_scripts_and_styles_are_removed_with_their_content() -> None:
    text, cut = clean_text(
        "<p>Apple&nbsp;rallies</p><script>alert('x')</script><style>p{}</style><div>on&amp;off</div>", 1000
    )
    assert text == "Apple rallies\n\non&off"
    assert not cut


def test_unicode_is_normalised_and_long_text_cut_at_a_word() -> None:
    text, _ = clean_text("ＡＡＰＬ\u200b　up", 100)  # full-width letters, zero-width and ideographic space
    assert text == "AAPL up"
    text, cut = clean_text("word " * 100, 50)
    assert cut and len(text) <= 51 and text.endswith("word…")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("mail me: john.doe@example.com now", "mail me: [EMAIL] now"),
        ("call +1 415-555-0132 today", "call [PHONE] today"),
        ("call (415) 555-0132", "call [PHONE]"),
        ("手机13812345678联系", "手机[PHONE]联系"),
        ("身份证110101199003071234号", "身份证[ID]号"),
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
    ],
)
def test_personal_data_is_masked(raw: str, expected: str) -> None:
    assert mask(raw).text == expected


def test_numbers_that_are_not_personal_data_survive() -> None:
    text = "600519.SH rose 2.5% to 1688.00; volume 12345678901234 shares in 2024"  # 14 digits failing Luhn
    assert mask(text).text == text


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Apple shares fall after the company cuts its forecast", "en"),
        ("贵州茅台(600519.SH)股价大涨5%，业绩超预期", "zh"),
        ("Tesla shares slump", "en"),
        ("Tesla misses revenue estimates, stock drops 7.7%", "en"),  # langdetect alone says French
        ("Die Aktie von Siemens ist heute deutlich gestiegen, sagen Analysten", "de"),
        ("12345 %%%", "und"),
    ],
)
def test_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang


def test_tickers_from_cashtags_codes_and_names_in_order() -> None:
    ex = TickerExtractor({**DEFAULT_COMPANIES, "Acme Widgets": "ACME"})
    found = ex.extract("Acme Widgets and $aapl up; 贵州茅台 down", "see 000001.SZ, SZ300750, 700.HK and NYSE: BA")
    assert found.tickers == ["ACME", "AAPL", "600519.SH", "000001.SZ", "300750.SZ", "0700.HK", "BA"]
    assert found.entities[:2] == ["Acme Widgets", "贵州茅台"]
    assert "Apple" in found.entities  # found by ticker only


def test_normalised_document(normalise: Normaliser) -> None:
    item = Item(
        title="<b>Tesla</b> recalls cars",
        body="Contact jane@corp.com or +44 20 7946 0958. $TSLA fell.",
        source_id="abc-1",
        author="Jane Roe",
        published_at="Wed, 01 May 2024 10:00:00 GMT",
        tickers=["$gm"],
    )
    doc = normalise("wire", "news", item, now=NOW)
    assert doc.id == document_id("wire", "abc-1")
    assert doc.title == "Tesla recalls cars"
    assert doc.body == "Contact [EMAIL] or [PHONE]. $TSLA fell."
    assert doc.tickers == ["GM", "TSLA"] and doc.key == b"GM"
    assert doc.lang == "en"
    assert doc.author == keyed_hash("Jane Roe", KEY) and doc.author != hash_author("Jane Roe")
    assert doc.published_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert doc.meta["masked"] == "email:1,phone:1" and doc.meta["worker"] == "w-test"


def test_id_from_text_when_the_source_has_none(normalise: Normaliser) -> None:
    a = normalise("forum", "comment", Item(body="Sell  $BA now"), now=NOW)
    b = normalise("forum", "comment", Item(body="sell $BA now"), now=NOW)
    assert a.id == b.id and a.kind == "comment"


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (Item(title="<script>x()</script>", body="  "), "empty_text"),
        (Item(title="ok", published_at="yesterday-ish"), "bad_timestamp"),
        (Item(title="ok", published_at="2999-01-01T00:00:00Z"), "bad_timestamp"),
        (Item(title={"not": "text"}), "bad_field"),
        (Item(title="ok", tickers=[1, 2]), "bad_field"),
        (Item(title="ok", kind="blog"), "bad_field"),
    ],
)
def test_bad_items_are_rejected_with_a_reason(normalise: Normaliser, item: Item, reason: str) -> None:
    with pytest.raises(Rejected) as err:
        normalise("s", "news", item, now=NOW)
    assert err.value.reason == reason


def test_length_limits_mark_truncation(normalise: Normaliser) -> None:
    doc = normalise("s", "news", Item(title="t", body="x " * 1000), now=NOW)
    assert len(doc.body) <= 301 and doc.meta["truncated"] is True
