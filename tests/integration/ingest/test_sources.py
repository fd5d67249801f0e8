"""Each polling source against real local servers and the real Kafka: the documents on the topic are exactly the
expected ones, and broken sources are counted with their reason while the others keep flowing."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

import pytest

from finpulse.contracts import document_id, hash_author
from ingest.sources import http_json, rss
from ingest.worker import Worker
from tests.integration.ingest.conftest import LocalServer, read_topic, wait_for

pytestmark = pytest.mark.integration

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Wire</title>
<item><guid>n-1</guid><title>Apple beats estimates</title>
<description><![CDATA[<p>$AAPL up 3%.</p><script>steal()</script> Ask ir@apple.example.com</p>]]></description>
<link>https://wire.example/n-1</link><author>Jane Roe</author><pubDate>Tue, 30 Apr 2024 10:00:00 GMT</pubDate></item>
<item><guid>n-2</guid><title>贵州茅台一季度净利润增长15%</title><description>茅台(600519.SH)业绩超预期</description>
<pubDate>Tue, 30 Apr 2024 11:00:00 GMT</pubDate></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Blog</title><id>urn:blog</id><updated>2024-04-30T12:00:00Z</updated>
<entry><id>urn:e1</id><title>Tesla recalls 2,000 cars</title><updated>2024-04-30T12:00:00Z</updated>
<summary type="html">&lt;b&gt;TSLA&lt;/b&gt; shares slip; call +1 415-555-0132</summary></entry>
</feed>"""

PAGES = {
    None: {"data": [{"uid": "a1", "headline": "Nvidia sets record", "ts": 1714470000, "syms": ["NVDA"]}], "next": "c2"},
    "c2": {
        "data": [
            {"uid": "a2", "headline": "Intel slides", "ts": "2024-04-30T10:00:00Z", "syms": ["INTC"]},
            {"uid": "a3", "headline": "", "ts": 1714470000},
            {"uid": "a4", "headline": "bad time", "ts": "soon"},
        ],
        "next": None,
    },
}


def _rss(req: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
    if req.headers.get("If-None-Match") == '"v1"':
        return 304, {}, b""
    return 200, {"Content-Type": "application/rss+xml", "ETag": '"v1"'}, RSS.encode()


def _api(req: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
    cursor = req.path.partition("cursor=")[2] or None
    return 200, {"Content-Type": "application/json"}, json.dumps(PAGES[cursor]).encode()


def _hang(req: BaseHTTPRequestHandler) -> None:
    time.sleep(3)
    return None


def test_feeds_and_api_land_on_kafka_exactly(ingest_config, http_server: LocalServer, stack) -> None:
    s = http_server
    s.routes |= {
        "/rss": _rss,
        "/atom": lambda r: (200, {"Content-Type": "application/atom+xml"}, ATOM.encode()),
        "/api": _api,
        "/broken": lambda r: (500, {}, b"oops"),
        "/garbage": lambda r: (200, {"Content-Type": "application/rss+xml"}, b"\x00\xffnot <xml at all"),
        "/huge": lambda r: (200, {"Content-Type": "application/rss+xml"}, b"<rss>" + b"x" * 2_000_000),
        "/badjson": lambda r: (200, {"Content-Type": "application/json"}, b'{"data": [1, 2'),
    }
    # A generous timeout for the sources that answer (a busy CI machine can take over a second), a short one for
    # the source that hangs, so that each is counted under its own reason.
    fast = {"interval_s": 0.5, "timeout_s": 5.0, "backoff_max_s": 2.0}
    cfg = ingest_config(
        sources=(
            rss.Config("t-rss", f"{s.url}/rss", **fast),
            rss.Config("t-atom", f"{s.url}/atom", kind="comment", **fast),
            rss.Config("t-500", f"{s.url}/broken", **fast),
            rss.Config("t-hang", f"{s.url}/hang", **(fast | {"timeout_s": 1.0})),
            rss.Config("t-garbage", f"{s.url}/garbage", **fast),
            rss.Config("t-huge", f"{s.url}/huge", **fast),
            http_json.Config(
                "t-api",
                f"{s.url}/api",
                items_path="data",
                mapping={"id": "uid", "title": "headline", "published_at": "ts", "tickers": "syms"},
                pagination=http_json.Pagination(type="cursor", param="cursor", next_path="next"),
                interval_s=0.5,
                rate_limit_per_s=20,
            ),
            http_json.Config("t-badjson", f"{s.url}/badjson", items_path="data", interval_s=0.5),
        ),
        max_fetch_bytes=1_000_000,
    )
    s.routes["/hang"] = _hang
    worker = Worker(cfg)
    worker.start()
    try:
        snap = lambda: worker.metrics.snapshot()["sources"]  # noqa: E731
        wait_for(
            lambda: (
                snap().get("t-api", {}).get("produced") == 2
                and snap().get("t-rss", {}).get("produced") == 2
                and snap().get("t-atom", {}).get("produced") == 1
            ),
            what="all good documents",
        )
        wait_for(
            lambda: all(
                snap().get(n, {}).get("errors") for n in ("t-500", "t-hang", "t-garbage", "t-huge", "t-badjson")
            ),
            what="every broken source counted",
        )
        wait_for(
            lambda: sum(1 for p, h in s.requests if p == "/rss" and h.get("If-None-Match") == '"v1"') >= 1,
            what="a conditional GET",
        )
        counters = snap()
    finally:
        worker.stop()

    assert counters["t-500"]["errors"] == {"http_500": counters["t-500"]["errors"]["http_500"]}
    assert set(counters["t-hang"]["errors"]) == {"timeout"}
    assert set(counters["t-garbage"]["errors"]) == {"malformed_feed"}
    assert set(counters["t-huge"]["errors"]) == {"too_large"}
    assert set(counters["t-badjson"]["errors"]) == {"malformed_json"}
    rejected = counters["t-api"]["rejected"]  # the last page is polled again each interval
    assert set(rejected) == {"empty_text", "bad_timestamp"} and rejected["empty_text"] == rejected["bad_timestamp"]
    assert counters["t-rss"]["duplicates"] == 0  # the 304 answers produced nothing again

    docs = {d["id"]: (k, d) for k, d in read_topic(stack.settings, cfg.topic)}
    expected = {
        document_id("t-rss", "n-1"),
        document_id("t-rss", "n-2"),
        document_id("t-atom", "urn:e1"),
        document_id("t-api", "a1"),
        document_id("t-api", "a2"),
    }
    assert set(docs) == expected
    assert len(read_topic(stack.settings, cfg.topic)) == 5  # each exactly once
    key, apple = docs[document_id("t-rss", "n-1")]
    assert apple["body"] == "$AAPL up 3%.\nAsk [EMAIL]" and "steal" not in apple["body"]
    assert apple["tickers"] == ["AAPL"] and key == b"AAPL" and apple["lang"] == "en"
    # keyed with the install's secret: never the unkeyed hash anyone can compute from a name
    assert apple["author"].startswith("h:") and apple["author"] != hash_author("Jane Roe")
    assert apple["entities"] == ["Apple"]
    _, moutai = docs[document_id("t-rss", "n-2")]
    assert moutai["lang"] == "zh" and moutai["tickers"] == ["600519.SH"]
    _, tesla = docs[document_id("t-atom", "urn:e1")]
    assert tesla["kind"] == "comment" and "[PHONE]" in tesla["body"] and "415" not in tesla["body"]
    _, nvda = docs[document_id("t-api", "a1")]
    assert nvda["tickers"] == ["NVDA"] and nvda["published_at"].startswith("2024-04-30T09:40:00")
