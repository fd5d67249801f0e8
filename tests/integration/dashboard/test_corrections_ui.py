"""The correction UI in headless Chromium against the seeded dashboard stack (issue 14): an analyst corrects a
document's sentiment in the Live feed and a document's topic in an alert's drill-down; each correction is stored
with who (the signed-in user), when, the label it replaced and the model version, and the tables show the corrected
label, marked as corrected, from then on. Screenshots: artifacts/screenshots/."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.dashboard import seed
from tests.integration.dashboard.conftest import PASSWORD, USER, DashStack
from tests.integration.dashboard.test_pages import SHOTS, _open, _shot, _sign_in, browser, page  # noqa: F401
from warehouse.client import create_client

pytestmark = pytest.mark.integration

TICKER = "CRCT"
FEED_TITLE = "Correction Corp cuts guidance as orders stall"
DRILL_TITLE = "Correction Corp faces a regulator's questions"
ALERT_ID = "alert-corrections-1"
ENTITY_COLUMNS = ("document_id", "entity", "rank", "published_at", "source", "lang", "sentiment", "sentiment_score",
                  "relevance")  # fmt: skip


@pytest.fixture(scope="module")
def docs(dash: DashStack) -> Iterator[dict[str, str]]:
    """Two negative CRCT documents classified just now (the newest of the feed) and an alert over them; removed
    afterwards, with their corrections, because the other dashboard tests share this stack and count documents."""
    from alerts.alert import ALERT_COLUMNS, Alert

    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(14)
    rows = [
        seed._row(
            rng, n=800_000 + k, published=now - timedelta(minutes=3 - k), topic="regulation", sentiment="negative",
            tickers=[TICKER], source="reuters-rss", title=title, confidence=0.9,
        )
        for k, title in enumerate((DRILL_TITLE, FEED_TITLE))
    ]  # fmt: skip
    at = {c: i for i, c in enumerate(seed.COLUMNS)}
    for row in rows:  # classified now: the newest items of the Live feed
        row[at["classified_at"]] = datetime.now(UTC)
    ids = {"drill": str(rows[0][at["id"]]), "feed": str(rows[1][at["id"]])}
    alert = Alert(
        id=ALERT_ID, fingerprint="corrections-ui", rule_id="corrections-ui", rule_name="Correction Corp negative",
        kind="negative_share", severity="warning", scope={"ticker": TICKER}, metric="negative_share", value=1.0,
        threshold=0.5, doc_count=2, window_start=now - timedelta(minutes=5), window_end=now + timedelta(minutes=1),
        started_at=now, message="100% of 2 documents negative", count="documents",
    )  # fmt: skip
    client = create_client(dash.settings)
    try:
        seed.insert(client, rows)
        entity = [ids["drill"], TICKER, 0, rows[0][at["published_at"]], "reuters-rss", "en", "negative", -0.7, 0.9]
        client.insert(
            "document_entities",
            [[*entity, "entity-test-1", datetime.now(UTC)]],
            column_names=[*ENTITY_COLUMNS, "model_version", "classified_at"],
        )
        client.insert("alerts", [alert.to_row(datetime.now(UTC))], column_names=list(ALERT_COLUMNS))
    finally:
        client.close()
    yield ids
    client = create_client(dash.settings)
    try:
        sync = {"mutations_sync": 2}
        for table in ("documents", "documents_minutely_latest"):
            client.command(f"ALTER TABLE {table} DELETE WHERE has(tickers, {{t:String}})", {"t": TICKER}, settings=sync)
        for table in ("corrections", "document_entities"):
            client.command(
                f"ALTER TABLE {table} DELETE WHERE has({{ids:Array(String)}}, document_id)",
                {"ids": list(ids.values())},
                settings=sync,
            )
        client.command("ALTER TABLE alerts DELETE WHERE id = {id:String}", {"id": ALERT_ID}, settings=sync)
    finally:
        client.close()


def _stored(dash: DashStack, doc_id: str) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """The document's corrections rows and its latest documents row (labels and marks)."""
    client = create_client(dash.settings)
    try:
        corrections = client.query(
            "SELECT field, entity, label, previous_label, model_version, analyst, corrected_at FROM corrections FINAL "
            "WHERE document_id = {id:String} ORDER BY field",
            parameters={"id": doc_id},
        ).result_rows
        result = client.query(
            "SELECT topic, sentiment, label_source, corrected_fields, corrected_by FROM documents_latest "
            "WHERE id = {id:String}",
            parameters={"id": doc_id},
        )
        return [tuple(r) for r in corrections], dict(zip(result.column_names, result.result_rows[0], strict=True))
    finally:
        client.close()


def _shows(box: Any, text: str, timeout_s: float = 30) -> None:
    """Wait until the selectbox ``box`` shows ``text`` as its value (its text, or its search input's value)."""
    deadline = time.monotonic() + timeout_s
    while True:
        inputs = box.locator("input")
        value = inputs.first.input_value() if inputs.count() else ""
        if text in box.inner_text() or text in value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the selectbox shows {box.inner_text()!r} / {value!r}, not {text!r}")
        time.sleep(0.2)


def _pick(scope: Any, tab: Any, label: str, option: str) -> None:
    """Choose ``option`` in the selectbox labelled ``label`` inside ``scope`` (opened again if a rerun of the page
    closed its list before the option showed)."""
    box = scope.get_by_test_id("stSelectbox").filter(has_text=label)
    choice = tab.get_by_role("option", name=option, exact=True)
    for attempt in range(3):
        box.click()
        try:
            choice.first.wait_for(timeout=5_000)
            break
        except Exception:
            if attempt == 2:
                raise
    choice.first.click()
    _shows(box, option)


def test_correct_a_sentiment_in_the_live_feed(page: Any, dash: DashStack, docs: dict[str, str]) -> None:  # noqa: F811
    started = datetime.now(UTC) - timedelta(seconds=1)
    _open(page, "Live feed")
    table = page.get_by_test_id("stDataFrame").first
    table.locator("td").filter(has_text=FEED_TITLE).first.wait_for(state="attached")
    panel = page.locator(".st-key-feed_correction")
    panel.get_by_text("Correct a label").wait_for()
    try:
        _pick(panel, page, "Document", f"{FEED_TITLE} · regulation / negative")
        panel.get_by_test_id("stRadio").get_by_text("Sentiment", exact=True).click()
        _shows(panel.get_by_test_id("stSelectbox").filter(has_text="Correct label"), "negative")
        _pick(panel, page, "Correct label", "positive")
        panel.get_by_text(f"recorded as {USER}").wait_for()  # signed in: the user is who corrects
        panel.get_by_role("button", name="Save correction").click()
        page.get_by_text(f"Saved: sentiment is positive (was negative), corrected by {USER}.").wait_for()
        # the table reads the corrected label, marked as corrected
        table.locator("td").filter(has_text=f"sentiment positive by {USER}").first.wait_for(state="attached")
        _shot(page, "14-feed-correction")
        # an entity correction needs entity rows: this document has none, and the panel says so
        panel.get_by_test_id("stRadio").get_by_text("Entity sentiment", exact=True).click()
        panel.get_by_text("This document has no entity-level sentiment").wait_for()
    except Exception:
        page.screenshot(path=str(SHOTS / "failed-feed-correction.png"), full_page=True)
        raise
    corrections, row = _stored(dash, docs["feed"])
    assert len(corrections) == 1, corrections
    field, entity, label, previous, model, analyst, at = corrections[0]
    assert (field, entity, label, previous, model, analyst) == (
        "sentiment",
        "",
        "positive",
        "negative",
        seed.MODEL,
        USER,
    )
    assert started <= at.replace(tzinfo=UTC) <= datetime.now(UTC)
    assert (row["sentiment"], row["label_source"], list(row["corrected_fields"]), row["corrected_by"]) == (
        "positive",
        "analyst",
        ["sentiment"],
        USER,
    )
    assert page.get_by_test_id("stException").count() == 0


def test_correct_a_topic_in_the_alert_drilldown(browser: Any, dash: DashStack, docs: dict[str, str]) -> None:  # noqa: F811
    tab = browser.new_page(viewport={"width": 1440, "height": 2600})
    tab.set_default_timeout(30_000)
    try:
        tab.goto(f"{dash.url}/alerts?alert={ALERT_ID}")
        _sign_in(tab, USER, PASSWORD)
        detail = tab.locator(".st-key-alert_detail")
        detail.get_by_test_id("stDataFrame").first.locator("td").filter(has_text=DRILL_TITLE).first.wait_for(
            state="attached"
        )
        panel = tab.locator(".st-key-alert_detail_correction")
        _pick(panel, tab, "Document", f"{DRILL_TITLE} · regulation / negative")
        panel.get_by_test_id("stRadio").get_by_text("Topic", exact=True).click()
        _shows(panel.get_by_test_id("stSelectbox").filter(has_text="Correct label"), "Analyst Update")
        _pick(panel, tab, "Correct label", "Earnings")
        panel.get_by_role("button", name="Save correction").click()
        tab.get_by_text(f"Saved: topic is Earnings (was regulation), corrected by {USER}.").wait_for()
        docs_table = detail.get_by_test_id("stDataFrame").nth(0)
        docs_table.locator("td").filter(has_text=f"topic Earnings by {USER}").first.wait_for(state="attached")
        # its sentiment toward CRCT (the entity model's row): negative -> positive
        panel.get_by_test_id("stRadio").get_by_text("Entity sentiment", exact=True).click()
        _pick(panel, tab, "Entity", f"{TICKER} (negative)")
        _shows(panel.get_by_test_id("stSelectbox").filter(has_text="Correct label"), "negative")
        _pick(panel, tab, "Correct label", "positive")
        panel.get_by_role("button", name="Save correction").click()
        tab.get_by_text(
            f"Saved: entity sentiment of {TICKER} is positive (was negative), corrected by {USER}."
        ).wait_for()
        # The alert's filter is "negative toward CRCT": corrected to positive, its only document leaves the drill-down.
        detail.get_by_text("analysts' corrections moved them out of it").wait_for()
        assert tab.get_by_test_id("stException").count() == 0
        _shot(tab, "15-drilldown-correction")
    finally:
        if sys.exc_info()[0] is not None:
            tab.screenshot(path=str(SHOTS / "failed-drilldown-correction.png"), full_page=True)
        tab.close()
    corrections, row = _stored(dash, docs["drill"])
    assert [(c[0], c[1], c[2], c[3], c[4], c[5]) for c in corrections] == [
        ("entity_sentiment", TICKER, "positive", "negative", "entity-test-1", USER),
        ("topic", "", "Earnings", "regulation", seed.MODEL, USER),
    ]
    client = create_client(dash.settings)
    try:
        entity_rows = client.query(
            "SELECT entity, sentiment, label_source FROM document_entities_latest WHERE document_id = {id:String}",
            parameters={"id": docs["drill"]},
        ).result_rows
    finally:
        client.close()
    assert [tuple(r) for r in entity_rows] == [(TICKER, "positive", "analyst")]
    assert (row["topic"], row["sentiment"], row["label_source"], row["corrected_by"]) == (
        "Earnings",
        "negative",
        "analyst",
        USER,
    )
