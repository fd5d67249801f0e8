"""Why it fired, in every webhook format: the numbers, the top stories (escaped for Slack) and the drill-down link;
and the alerts-table row of an alert with its evidence read back into the same Alert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts import formats
from alerts.alert import ALERT_COLUMNS, Alert, StoryRef, drilldown_url
from alerts.targets import WebhookTarget
from alerts.webhooks import build_request
from finpulse.settings import load_settings

NOW = datetime(2031, 1, 2, 3, 15, tzinfo=UTC)
LINK = "https://finpulse.example/fp/alerts?alert=a1"
STORIES = [
    StoryRef(story_id="s-recall", title="<!channel> Acme & Co recall <b>widgets</b>", source="wire",
             url="https://news.example/a?x=1&y=2", published_at=NOW - timedelta(minutes=9), sentiment="negative",
             sentiment_score=-0.81, copies=7),
    StoryRef(story_id="s-probe", title="Regulator opens probe into Acme", source="daily|news", url=None,
             published_at=NOW - timedelta(minutes=4), sentiment="negative", sentiment_score=-0.6, copies=1),
]  # fmt: skip
ALERT = Alert(
    id="a1", fingerprint="f1", rule_id="acme-surge", rule_name="Acme surge", kind="surge", severity="critical",
    group_by="ticker", group_value="ACME", scope={"topic": None, "ticker": None}, metric="negative_count_z",
    value=4.2, threshold=3.0, baseline=2.1, doc_count=40, window_start=NOW - timedelta(minutes=15), window_end=NOW,
    started_at=NOW, message="negative stories: 12 in the last 15 min vs baseline mean 2.1", sample_doc_ids=["d1"],
    window_value=12.0, window_measure="negative stories", count="stories", window_s=900, baseline_s=21_600,
    story_count=9, top_stories=STORIES, dashboard_url=LINK,
)  # fmt: skip


def test_numbers_put_the_window_against_the_baseline_threshold_and_volume() -> None:
    assert ALERT.numbers() == (
        "negative stories: 12 in 15 min vs baseline mean 2.1 (6 h); negative_count_z = 4.2, threshold 3; "
        "volume 40 stories, 9 contributing stories"
    )
    share = ALERT.model_copy(
        update={"kind": "negative_share", "metric": "negative_share", "value": 0.8, "threshold": 0.6,
                "baseline": None, "baseline_s": None, "window_value": None,
                "window_measure": "negative share of stories", "story_count": 1}
    )  # fmt: skip
    assert share.numbers() == (
        "negative share of stories: 80% in 15 min (threshold 60%); volume 40 stories, 1 contributing story"
    )


def test_drilldown_link_is_the_alerts_page_opened_on_the_alert() -> None:
    assert drilldown_url("https://finpulse.example/fp/", "a1") == LINK
    assert drilldown_url("http://127.0.0.1:8501", "a b&c") == "http://127.0.0.1:8501/alerts?alert=a%20b%26c"


def test_generic_carries_the_evidence_and_round_trips() -> None:
    body = formats.render(ALERT, event="firing", fmt="generic", delivery_id="d", sent_at=NOW, receiver="t")
    alert = body["alert"]
    assert alert["dashboard_url"] == LINK and alert["story_count"] == 9 and alert["window_value"] == 12.0
    assert (alert["window_s"], alert["baseline_s"], alert["count"]) == (900, 21_600, "stories")
    assert [s["story_id"] for s in alert["top_stories"]] == ["s-recall", "s-probe"]
    assert alert["top_stories"][0] == {
        "story_id": "s-recall", "title": "<!channel> Acme & Co recall <b>widgets</b>", "source": "wire",
        "url": "https://news.example/a?x=1&y=2", "published_at": "2031-01-02T03:06:00Z", "sentiment": "negative",
        "sentiment_score": -0.81, "copies": 7,
        "entity_sentiment": None, "entity_sentiment_score": None, "entity_relevance": None,
    }  # fmt: skip
    assert Alert.model_validate(json.loads(json.dumps(body))["alert"]) == ALERT


def test_generic_v1_receivers_still_read_an_alert_without_evidence() -> None:
    # A v1 payload from before issue 12 (no evidence fields) still validates, with empty evidence.
    old = formats.generic(ALERT, event="firing", delivery_id="d", sent_at=NOW)["alert"]
    for name in ("window_value", "window_measure", "count", "window_s", "baseline_s", "story_count", "top_stories",
                 "dashboard_url"):  # fmt: skip
        old.pop(name)
    alert = Alert.model_validate(old)
    assert alert.top_stories == [] and alert.dashboard_url == "" and alert.window_seconds == 900
    assert alert.numbers() == "negative_count_z = 4.2 in 15 min (threshold 3), baseline mean 2.1; volume 40 documents"


def _texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == "section"]


def test_slack_blocks_show_numbers_stories_and_a_drilldown_button() -> None:
    body = formats.slack(ALERT, event="firing")
    blocks = body["blocks"]
    texts = _texts(blocks)
    assert "negative stories: 12 in 15 min vs baseline mean 2.1" in texts[0]
    assert texts[1] == "*Top stories* (2 of 9)"
    recall, probe = texts[2], texts[3]
    # The title is linked, and both url and title are escaped: no <!channel> ping, no stray markup.
    assert recall.startswith(
        "*<https://news.example/a?x=1&amp;y=2|&lt;!channel&gt; Acme &amp; Co recall &lt;b&gt;widgets&lt;/b&gt;>*\n"
    )
    assert "wire · 2031-01-02T03:06:00Z · negative (-0.81) · 7 copies" in recall
    assert probe == "*Regulator opens probe into Acme*\ndaily|news · 2031-01-02T03:11:00Z · negative (-0.60) · 1 copy"
    assert "<!channel>" not in json.dumps(body) and "<b>" not in json.dumps(body)
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    assert actions["elements"][0]["url"] == LINK and actions["elements"][0]["type"] == "button"
    assert blocks[-1]["type"] == "context"


def test_slack_caps_stories_and_skips_what_an_alert_lacks() -> None:
    many = [STORIES[1].model_copy(update={"story_id": f"s{i}", "title": f"story {i}"}) for i in range(15)]
    blocks = formats.slack(ALERT.model_copy(update={"top_stories": many, "story_count": 30}), event="firing")["blocks"]
    texts = _texts(blocks)
    assert texts[1] == "*Top stories* (10 of 30)" and len(texts) == 2 + 10 and len(blocks) <= 50
    bare = formats.slack(ALERT.model_copy(update={"top_stories": [], "dashboard_url": ""}), event="resolved")
    assert [b["type"] for b in bare["blocks"]] == ["section", "context"]
    assert bare["text"].startswith(":white_check_mark:")
    # A non-web url is shown as text, never linked.
    odd = STORIES[0].model_copy(update={"url": "javascript:alert(1)"})
    text = _texts(formats.slack(ALERT.model_copy(update={"top_stories": [odd]}), event="firing")["blocks"])[2]
    assert "javascript" not in text and text.startswith("*&lt;!channel&gt; Acme")


def test_alertmanager_annotations_and_urls_lead_to_the_drilldown() -> None:
    body = formats.render(ALERT, event="firing", fmt="alertmanager", delivery_id="d", sent_at=NOW, receiver="am",
                          external_url="https://finpulse.example/fp/")  # fmt: skip
    item = body["alerts"][0]
    assert item["generatorURL"] == LINK and body["externalURL"] == "https://finpulse.example/fp"
    notes = item["annotations"]
    assert notes == body["commonAnnotations"] and all(isinstance(v, str) for v in notes.values())
    assert notes["description"].startswith("negative stories: 12 in 15 min vs baseline mean 2.1 (6 h)")
    assert notes["description"].endswith(ALERT.message)
    assert notes["dashboard_url"] == LINK and notes["story_count"] == "9" and notes["sample_doc_ids"] == "d1"
    assert notes["top_stories"].splitlines() == [
        "1. <!channel> Acme & Co recall <b>widgets</b> (wire · 2031-01-02T03:06:00Z · negative (-0.81) · 7 copies) "
        "https://news.example/a?x=1&y=2",
        "2. Regulator opens probe into Acme (daily|news · 2031-01-02T03:11:00Z · negative (-0.60) · 1 copy)",
    ]


def test_webhook_request_carries_the_dashboard_address(tmp_path: Any) -> None:
    settings = load_settings(data_dir=tmp_path, alerts_webhook_secret="k", dashboard_public_url="https://fp.example/")
    target = WebhookTarget(name="am", url="http://x.invalid/h", format="alertmanager")
    body, _ = build_request(settings, target, ALERT, event="firing", delivery_id="k")
    sent = json.loads(body)
    assert sent["externalURL"] == "https://fp.example" and sent["alerts"][0]["generatorURL"] == LINK


def test_dashboard_public_url_setting(tmp_path: Any) -> None:
    assert load_settings(data_dir=tmp_path, dashboard_port=8600).dashboard_public_url == "http://127.0.0.1:8600"
    wildcard = load_settings(data_dir=tmp_path, dashboard_host="0.0.0.0")
    assert wildcard.dashboard_public_url == "http://127.0.0.1:8501"
    assert load_settings(data_dir=tmp_path, dashboard_public_url=" https://fp.example/x/ ").dashboard_public_url == (
        "https://fp.example/x"
    )
    with pytest.raises(ValueError, match="http:// or https://"):
        load_settings(data_dir=tmp_path, dashboard_public_url="fp.example")


def test_alert_row_round_trips_with_its_evidence() -> None:
    row = dict(zip(ALERT_COLUMNS, ALERT.to_row(NOW), strict=True))
    assert json.loads(row["top_stories"])[0]["story_id"] == "s-recall"
    assert Alert.from_row(row) == ALERT
    # A row of the alerts table from before migration 0031, as the column defaults read it.
    old = {**row, "window_value": None, "window_measure": "", "count": "documents", "window_s": 900,
           "baseline_s": None, "story_count": 0, "top_stories": "[]", "dashboard_url": ""}  # fmt: skip
    loaded = Alert.from_row(old)
    assert loaded.top_stories == [] and loaded.dashboard_url == "" and loaded.value == ALERT.value


class _Client:
    """Answers the top-stories query with fixed rows and records its parameters (or fails, when told to)."""

    def __init__(self, rows: list[tuple[Any, ...]], fail: bool = False) -> None:
        self.rows, self.fail, self.params = rows, fail, {}

    def query(self, sql: str, parameters: dict[str, Any]) -> Any:
        if self.fail:
            raise TimeoutError("query timed out")
        self.params = parameters
        return type("Result", (), {"result_rows": self.rows})()


def _obs(group: str) -> Any:
    from alerts.evaluator import Observation

    return Observation(group=group, fires=True, metric="negative_mentions", value=3.0, threshold=2.0, baseline=None,
                       doc_count=3, window_start=NOW - timedelta(minutes=5), window_end=NOW, message="")  # fmt: skip


def test_evidence_maps_watchlist_terms_and_volume_rules_onto_the_query() -> None:
    from alerts.evidence import stories_behind
    from alerts.rules import Rule

    naive = datetime(2031, 1, 2, 3, 12)  # ClickHouse hands back naive UTC times
    client = _Client([("s1", "ACME misses", "wire", "", naive, "negative", -0.71234, 3, 4, 9, "", None, None, 0, 0, 0)])
    watch = Rule(name="w", kind="watchlist", watch_keywords=["default"], window_s=300, threshold=2)
    evidence = stories_behind(client, watch, _obs("keyword:default"), limit=3)
    assert (client.params["term_keyword"], client.params["term_ticker"], client.params["group"]) == ("default", "", "")
    assert client.params["negative_only"] == 1 and client.params["limit"] == 3
    assert client.params["start"] == int((NOW - timedelta(minutes=5)).timestamp())
    (story,) = evidence.top_stories
    assert evidence.story_count == 4 and story.url is None and story.sentiment_score == -0.7123
    assert story.published_at == datetime(2031, 1, 2, 3, 12, tzinfo=UTC)
    stories_behind(client, watch, _obs("ticker:ACME"), limit=3)
    assert (client.params["term_ticker"], client.params["term_keyword"]) == ("ACME", "")
    volume = Rule(name="v", kind="volume_spike", group_by="source", window_s=300, baseline_s=3600)
    stories_behind(client, volume, _obs("wire"), limit=5)
    assert client.params["negative_only"] == 0 and client.params["group"] == "wire"


def test_an_alert_whose_evidence_fails_still_fires_without_stories() -> None:
    from alerts.evidence import Evidence, stories_behind
    from alerts.rules import Rule

    rule = Rule(name="s", kind="negative_share", window_s=300)
    assert stories_behind(_Client([], fail=True), rule, _obs(""), limit=5) == Evidence()
    assert stories_behind(_Client([]), rule, _obs(""), limit=5) == Evidence()
