"""The Alerts page in headless Chromium against the seeded dashboard stack: the rule editor's preview replays a
rule on history and its firing count follows an edited threshold (before anything is saved), and a webhook's link
``/alerts?alert=<id>`` opens that alert's numbers, top stories and documents. Screenshots: artifacts/screenshots/."""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.dashboard import seed
from tests.integration.dashboard.conftest import PASSWORD, USER, DashStack
from tests.integration.dashboard.test_pages import SHOTS, _open, _shot, _sign_in, browser, page  # noqa: F401
from warehouse.client import create_client

pytestmark = pytest.mark.integration

TICKER = "PRVW"
RULE_NAME = "Preview negative share"
ALERT_ID = "alert-preview-1"
STORY_TITLE = "Preview Corp recalls its whole product line"


def _burst(rng: random.Random, n0: int, at: datetime, negative: int, other: int) -> list[list[Any]]:
    """negative + other PRVW documents within the minute after ``at``."""
    rows = []
    for k in range(negative + other):
        rows.append(
            seed._row(
                rng,
                n=n0 + k,
                published=at + timedelta(seconds=k),
                topic="markets",
                sentiment="negative" if k < negative else "neutral",
                tickers=[TICKER],
                source="reuters-rss",
                title=STORY_TITLE if k < negative else f"Preview Corp update {k}",
                confidence=0.9,
            )
        )
    return rows


@pytest.fixture(scope="module")
def preview_data(dash: DashStack) -> Iterator[datetime]:
    """Three PRVW bursts in the last day, 60%, 75% and 90% negative, a rule over them, and an alert on the last;
    removed afterwards, because the other dashboard tests share this stack and count its documents and alerts."""
    from alerts import store
    from alerts.alert import ALERT_COLUMNS, Alert, StoryRef
    from alerts.rules import Rule

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rng = random.Random(3)
    bursts = [(now - timedelta(hours=9), 6, 4), (now - timedelta(hours=5), 9, 3), (now - timedelta(hours=2), 18, 2)]
    rows = [r for i, (at, neg, other) in enumerate(bursts) for r in _burst(rng, 700_000 + 100 * i, at, neg, other)]
    client = create_client(dash.settings)
    try:
        seed.insert(client, rows)
        rule = store.save_rule(
            dash.settings,
            Rule(
                name=RULE_NAME,
                kind="negative_share",
                scope={"ticker": TICKER},
                window_s=300,
                threshold=0.5,
                min_volume=5,
                cooldown_s=0,
                count="documents",
            ),
            client=client,
        )
        last = bursts[-1][0]
        alert = Alert(
            id=ALERT_ID, fingerprint=rule.fingerprint(""), rule_id=rule.id, rule_name=rule.name, kind=rule.kind,
            severity="critical", scope={"ticker": TICKER}, metric="negative_share", value=0.9, threshold=0.5,
            doc_count=20, window_start=last - timedelta(minutes=4), window_end=last + timedelta(minutes=1),
            started_at=last + timedelta(minutes=1), message="90% of 20 documents negative in the last 5 min",
            window_measure="negative share of documents", count="documents", window_s=300, story_count=3,
            top_stories=[StoryRef(story_id="story-prvw", title=STORY_TITLE, source="reuters-rss",
                                  url="https://example.com/prvw", published_at=last, sentiment="negative",
                                  sentiment_score=-0.8, copies=18)],
            dashboard_url=f"{dash.url}/alerts?alert={ALERT_ID}",
        )  # fmt: skip
        client.insert("alerts", [alert.to_row(datetime.now(UTC))], column_names=list(ALERT_COLUMNS))
    finally:
        client.close()
    yield now
    client = create_client(dash.settings)
    try:
        store.delete_rule(dash.settings, rule.id, client=client)
        sync = {"mutations_sync": 2}
        for table in ("documents", "documents_minutely_latest"):
            client.command(f"ALTER TABLE {table} DELETE WHERE has(tickers, {{t:String}})", {"t": TICKER}, settings=sync)
        client.command("ALTER TABLE alerts DELETE WHERE id = {id:String}", {"id": ALERT_ID}, settings=sync)
    finally:
        client.close()


def _fired(tab: Any, times: int) -> None:
    metric = tab.get_by_test_id("stMetric").filter(has_text="Would have fired")
    try:
        metric.filter(has_text=re.compile(rf"(^|\D){times} times")).wait_for()
    except Exception:
        tab.screenshot(path=str(SHOTS / "failed-alert-preview.png"), full_page=True)  # what the page showed
        raise


def test_editor_preview_follows_the_threshold(page: Any, preview_data: datetime) -> None:  # noqa: F811
    from alerts.rules import slug

    page.set_viewport_size({"width": 1440, "height": 4200})  # the editor and its preview sit low on the page
    _open(page, "Alerts")
    page.get_by_role("tab", name="Rules").click()
    page.get_by_test_id("stSelectbox").filter(has_text="Edit rule").click()
    page.get_by_role("option", name=slug(RULE_NAME), exact=True).click()
    # The stored rule (threshold 0.5): all three bursts are above it.
    _fired(page, 3)
    page.locator(".vega-embed canvas, .vega-embed svg.marks").first.wait_for()
    page.get_by_text("Metric against the threshold").first.wait_for(state="attached")
    _shot(page, "09-alert-preview-threshold-0.5")
    print(f"screenshot: {SHOTS / '09-alert-preview-threshold-0.5.png'}")

    form = page.get_by_test_id("stForm").first
    threshold = form.get_by_role("spinbutton", name="Threshold")
    threshold.fill("0.8")
    form.get_by_role("button", name="Preview on history").click()
    _fired(page, 1)  # only the 90% burst
    page.get_by_text("as edited (not necessarily saved)").first.wait_for()
    _shot(page, "10-alert-preview-threshold-0.8")
    print(f"screenshot: {SHOTS / '10-alert-preview-threshold-0.8.png'}")

    try:
        threshold.fill("0.95")
    except Exception:
        page.screenshot(path=str(SHOTS / "failed-alert-preview.png"), full_page=True)
        raise
    form.get_by_role("button", name="Preview on history").click()
    _fired(page, 0)
    page.get_by_text("Replay the last").first.wait_for()


def test_alert_link_opens_why_it_fired(browser: Any, dash: DashStack, preview_data: datetime) -> None:  # noqa: F811
    tab = browser.new_page(viewport={"width": 1440, "height": 2000})
    tab.set_default_timeout(30_000)
    try:
        tab.goto(f"{dash.url}/alerts?alert={ALERT_ID}")  # what a webhook links to: a new session signs in first
        _sign_in(tab, USER, PASSWORD)
        tab.get_by_role("heading", name=re.compile(rf"Why it fired: {RULE_NAME}")).wait_for()
        detail = tab.locator(".st-key-alert_detail")
        detail.get_by_test_id("stMetric").filter(has_text="negative_share").filter(has_text="0.9").wait_for()
        detail.get_by_test_id("stDataFrame").first.wait_for()
        tab.get_by_text("Documents behind it").first.wait_for()
        assert tab.get_by_test_id("stException").count() == 0
        _shot(tab, "11-alert-detail")
        print(f"screenshot: {SHOTS / '11-alert-detail.png'}")
        tab.get_by_role("button", name="Close the alert's detail").click()
        tab.get_by_role("heading", name=re.compile("Why it fired")).wait_for(state="detached")
    finally:
        if sys.exc_info()[0] is not None:
            tab.screenshot(path=str(SHOTS / "failed-alert-detail.png"), full_page=True)
        tab.close()
