"""Every dashboard page in headless Chromium (Debian's, driven by Playwright) against the seeded stack: titles,
real Vega charts, table rows with the seeded values, and the page actions. Screenshots: artifacts/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.service import dashboard_healthy
from tests.integration.dashboard import seed
from tests.integration.dashboard.conftest import ALERT_RULE, LAG_GROUP, PASSWORD, USER, DashStack, chromium_path

pytestmark = pytest.mark.integration

SHOTS = Path(__file__).resolve().parents[3] / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium: apt-get install chromium (or set FINPULSE_TEST_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser: Any, dash: DashStack) -> Iterator[Any]:
    """One signed-in tab for the page tests (a new tab would be a new Streamlit session that must sign in)."""
    tab = browser.new_page(viewport={"width": 1440, "height": 2000})  # Streamlit scrolls inside: tall screenshots
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(dash.url)
    _sign_in(tab, USER, PASSWORD)
    tab.get_by_role("heading", name="Overview").wait_for()
    yield tab
    tab.close()


def _sign_in(tab: Any, user: str, password: str) -> None:
    tab.get_by_role("textbox", name="User").fill(user)
    tab.get_by_role("textbox", name="Password").fill(password)
    tab.get_by_role("button", name="Sign in").click()


def _open(tab: Any, title: str) -> None:
    tab.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    tab.get_by_role("heading", name=title, exact=True).wait_for()


def _charts(tab: Any, at_least: int) -> None:
    """Wait for ``at_least`` rendered Vega charts (vega-embed draws an svg or a canvas)."""
    drawn = tab.locator(".vega-embed canvas, .vega-embed svg.marks")
    drawn.nth(at_least - 1).wait_for()
    assert tab.get_by_test_id("stException").count() == 0, tab.get_by_test_id("stException").all_inner_texts()


def _cell(tab: Any, text: str) -> Any:
    """A data-table cell (st.dataframe's accessible table) holding ``text``."""
    return tab.get_by_test_id("stDataFrame").locator("td").filter(has_text=text).first


def _shot(tab: Any, name: str) -> None:
    tab.wait_for_timeout(600)  # let vega finish its transitions before the picture
    tab.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_service_is_healthy_and_requires_login(browser: Any, dash: DashStack) -> None:
    assert dashboard_healthy(dash.settings)
    tab = browser.new_page(viewport={"width": 1200, "height": 700})
    tab.set_default_timeout(TIMEOUT_MS)
    try:
        tab.goto(dash.url)
        tab.get_by_role("button", name="Sign in").wait_for()
        assert tab.get_by_test_id("stSidebarNav").count() == 0  # no page is reachable before signing in
        _sign_in(tab, USER, "wrong-password")
        tab.get_by_text("Wrong user or password.").wait_for()
        _shot(tab, "00-login-refused")
        _sign_in(tab, USER, PASSWORD)
        tab.get_by_role("heading", name="Overview").wait_for()
    finally:
        tab.close()


def test_overview(page: Any) -> None:
    _open(page, "Overview")
    _charts(page, 3)
    for label in ("Volume by topic", "Sentiment index", "Negative share: current window"):
        page.get_by_text(label).first.wait_for()
    page.get_by_test_id("stMetric").filter(has_text="Documents, last 1 hour").wait_for()
    _cell(page, "regulation").wait_for(state="attached")
    _shot(page, "01-overview")


def test_topics_and_tickers_with_drilldown(page: Any) -> None:
    _open(page, "Topics and tickers")
    _charts(page, 3)
    page.get_by_text("Topics over time").first.wait_for()
    # Until a cell is clicked the hottest one is drilled into: the surge (regulation, one of the last two
    # buckets); the ticker ranking puts TSLA first and lists the marker document behind it.
    page.get_by_role("heading", name=re.compile(r"Behind the cell: regulation")).wait_for()
    tables = page.get_by_test_id("stDataFrame")
    tables.first.locator("td").filter(has_text="Tesla faces new regulatory scrutiny").first.wait_for(state="attached")
    page.get_by_text("TSLA, last 1 hour").wait_for()
    # The page's tables in order: the cell's documents, the ticker ranking, the ticker's documents.
    tables.nth(2).locator("td").filter(has_text=seed.MARKER.title).first.wait_for(state="attached")
    _shot(page, "02-topics")
    # A click on a cell (vega draws SVG marks labelled with their fields) drills into that cell instead.
    cell = page.locator(".vega-embed g.mark-rect path[aria-label*='topic: markets']").first
    cell.click()
    page.get_by_role("heading", name=re.compile(r"Behind the cell: markets")).wait_for()
    tables.first.locator("td").filter(has_text="markets").first.wait_for(state="attached")
    _shot(page, "02b-topics-clicked-cell")


def test_live_feed_filters(page: Any) -> None:
    _open(page, "Live feed")
    _charts(page, 1)
    _cell(page, seed.MARKER.title).wait_for(state="attached")
    ticker = page.get_by_test_id("stMultiSelect").filter(has=page.get_by_text("Ticker", exact=True))
    ticker.get_by_role("combobox").click()
    page.get_by_role("option", name="JPM", exact=True).click()
    page.keyboard.press("Escape")
    page.wait_for_function(
        "t => ![...document.querySelectorAll('[data-testid=stDataFrame] td')].some(td => td.innerText.includes(t))",
        arg=seed.MARKER.title,
    )
    _cell(page, "JPM").wait_for(state="attached")
    _shot(page, "03-feed-filtered")


def test_alerts_acknowledge_test_send_and_rule_editor(page: Any, dash: DashStack) -> None:
    from alerts import store

    _open(page, "Alerts")
    _cell(page, ALERT_RULE).wait_for(state="attached")
    page.get_by_test_id("stMetric").filter(has_text="Firing").filter(has_text="1").wait_for()
    _shot(page, "04-alerts")
    page.get_by_role("button", name="Acknowledge").click()
    page.get_by_test_id("stMetric").filter(has_text="Acknowledged").filter(has_text="1").wait_for()
    acked = store.list_alerts(dash.settings)
    assert acked.loc[acked["id"] == "alert-tsla-1", "state"].item() == "acknowledged"
    assert acked.loc[acked["id"] == "alert-tsla-1", "acknowledged_by"].item() == USER
    page.get_by_role("button", name="Silence this series").click()
    page.get_by_text("Silences in force:").wait_for()
    fingerprint = acked.loc[acked["id"] == "alert-tsla-1", "fingerprint"].item()
    assert fingerprint in set(store.list_silences(dash.settings)["target"])

    page.get_by_role("tab", name="Webhook targets").click()
    page.get_by_role("button", name="Test send").click()
    page.get_by_text(re.compile(r"Delivered to risk-desk-hook: HTTP 200")).wait_for()
    assert dash.receiver.bodies, "the webhook receiver got nothing"

    page.get_by_role("tab", name="Rules").click()
    _cell(page, ALERT_RULE).wait_for(state="attached")
    form = page.get_by_test_id("stForm").first
    form.get_by_role("textbox", name="Name").fill("Bank negative share")
    form.get_by_role("textbox", name="Scope: ticker").fill("jpm")
    form.get_by_role("button", name="Save rule").click()
    page.get_by_text("Saved rule bank-negative-share.").wait_for()
    saved = {r.id: r for r in store.list_rules(dash.settings)}
    assert saved["bank-negative-share"].scope.ticker == "JPM"

    page.get_by_role("tab", name="Delivery log").click()
    _cell(page, "risk-desk-hook").wait_for(state="attached")
    _shot(page, "05-alerts-after-actions")


def test_sql_explorer_refuses_writes_downloads_csv_and_saves(page: Any, dash: DashStack) -> None:
    from dashboard import saved_queries

    _open(page, "SQL explorer")
    editor = page.get_by_role("textbox", name="SQL")
    editor.fill("DROP TABLE documents")
    page.get_by_role("button", name="Run").click()
    page.get_by_text(re.compile("Refused by the database: the SQL explorer's user is read-only")).wait_for()
    _shot(page, "06-sql-refused")
    editor.fill("SELECT title, source FROM documents_latest WHERE has(tickers, 'TSLA') ORDER BY published_at DESC")
    page.get_by_role("button", name="Run").click()
    _cell(page, seed.MARKER.title).wait_for(state="attached")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    assert seed.MARKER.title in Path(download.value.path()).read_text(encoding="utf-8")
    _shot(page, "07-sql-result")
    page.get_by_text("Save or delete a query").click()
    page.get_by_role("textbox", name="Name").fill("TSLA titles")
    page.get_by_role("button", name="Save current query").click()
    page.get_by_text("Saved 'TSLA titles'.").wait_for()
    assert "has(tickers, 'TSLA')" in saved_queries.load(dash.settings)["TSLA titles"]


def test_pipeline_health(page: Any) -> None:
    _open(page, "Pipeline health")
    _charts(page, 4)
    page.get_by_test_id("stMetric").filter(has_text="DLQ messages").filter(has_text="2").wait_for()
    page.get_by_test_id("stMetric").filter(has_text="Consumer lag").filter(has_text="3").wait_for()
    page.get_by_test_id("stMetric").filter(has_text=seed.MODEL).wait_for()
    _cell(page, LAG_GROUP).wait_for(state="attached")
    page.get_by_text("Confidence distribution").first.wait_for()
    _shot(page, "08-health")
