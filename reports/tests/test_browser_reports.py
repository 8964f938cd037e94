"""The reports page in Chromium: it loads with its charts and table, a range
change swaps both in place (htmx), custom dates wait for both and say what
is wrong beside them, tables fit 1280 px and a phone, chart labels stay
readable, and the CSV downloads with the table's numbers."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from core.testing import create_user
from core.tests.browser import BROWSER_TEST, Inbox, expect
from reports import rollup
from reports.tests.seed import conversation, message

pytestmark = BROWSER_TEST


@pytest.fixture
def lena(transactional_db: None) -> Any:
    return create_user(role="lead", username="lena")


@pytest.fixture
def seeded(lena: Any) -> None:
    """Before Chromium starts (the ORM refuses a thread running its loop)."""
    now = timezone.now()
    today = rollup.local_today()
    # Today: one Telegram conversation; three days ago: two on WhatsApp.
    for platform, at in (
        ("telegram", now - timedelta(minutes=5)),
        ("whatsapp", now - timedelta(days=3)),
        ("whatsapp", now - timedelta(days=3, minutes=1)),
    ):
        conv = conversation(platform, at)
        message(conv, at)
        message(conv, at + timedelta(seconds=30), direction="outbound", author="bot")
    for back in range(8):
        rollup.store_day(today - timedelta(days=back))


def _cells(page: Any) -> list[list[str]]:
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('#report-table tr')).map(
             tr => Array.from(tr.children).map(c => c.textContent.trim()))"""
    )


def _smallest_chart_text(page: Any) -> float:
    """The smallest chart label's size on screen, in CSS pixels (the SVGs scale)."""
    return page.evaluate(
        """() => Math.min(...Array.from(document.querySelectorAll('.chart svg'))
             .map(svg => svg.getBoundingClientRect().width
               / svg.viewBox.baseVal.width * parseFloat(getComputedStyle(
                 svg.querySelector('text')).fontSize)))"""
    )


def test_switching_the_range_redraws_charts_and_table_and_the_csv_matches(
    lena: Any,
    seeded: None,
    open_inbox: Callable[[Any], Inbox],
    screenshots: Path,
    tmp_path: Path,
) -> None:
    tab = open_inbox(lena)
    page = tab.page
    tab.log_in()
    page.goto(f"{tab.server.url}/reports/?range=7d")
    totals = page.locator("#report-table tfoot tr").last
    expect(totals.locator("td").first).to_have_text("3")  # conversations opened
    expect(page.locator("svg[role=img]")).to_have_count(3)
    expect(page.locator("svg[role=img] title").first).to_have_text(
        "Messages per day, by platform"
    )
    expect(page.locator("#freshness")).to_contain_text("Updated")
    page.screenshot(path=screenshots / "reports-7d.png", full_page=True)

    page.evaluate("window.__notReloaded = true")
    page.select_option("#range-select", "today")
    expect(totals.locator("td").first).to_have_text("1")
    expect(page).to_have_url(f"{tab.server.url}/reports/?range=today&from=&to=")
    # The WhatsApp bars are gone with the days that had them.
    expect(page.locator("svg rect.p-whatsapp")).to_have_count(0)
    expect(page.locator("svg rect.p-telegram").first).to_be_visible()

    # "Custom" asks nothing of the server until both dates are set: the
    # report stays, the cursor goes to the first date.
    page.evaluate(
        "window.__requests = 0; document.body.addEventListener("
        "'htmx:beforeRequest', () => window.__requests++)"
    )
    page.select_option("#range-select", "custom")
    expect(page.locator("#range-from")).to_be_focused()
    expect(totals.locator("td").first).to_have_text("1")
    expect(page.locator("[role=alert]")).to_have_count(0)
    assert page.evaluate("window.__requests") == 0
    # One date and Show: the reason beside the missing one; the report stays.
    today = rollup.local_today()
    page.fill("#range-from", (today - timedelta(days=3)).isoformat())
    page.click("#range-form button[type=submit]")
    expect(page.locator("#range-to-error")).to_have_text("Pick the last day.")
    expect(page.locator("#range-to")).to_have_attribute("aria-invalid", "true")
    expect(totals.locator("td").first).to_have_text("1")
    page.fill("#range-to", today.isoformat())
    page.click("#range-form button[type=submit]")
    expect(totals.locator("td").first).to_have_text("3")
    expect(page.locator("#range-to-error")).to_have_count(0)
    # Back to a fixed range: the dates are cleared and it shows at once.
    page.select_option("#range-select", "today")
    expect(totals.locator("td").first).to_have_text("1")
    expect(page.locator("#range-from")).to_have_value("")
    # Typing dates while "7 days" is chosen picks "Custom": the dates win.
    page.select_option("#range-select", "7d")
    expect(totals.locator("td").first).to_have_text("3")
    page.fill("#range-from", today.isoformat())
    expect(page.locator("#range-select")).to_have_value("custom")
    page.fill("#range-to", today.isoformat())
    page.click("#range-form button[type=submit]")
    expect(totals.locator("td").first).to_have_text("1")
    page.select_option("#range-select", "today")
    expect(totals.locator("td").first).to_have_text("1")

    with page.expect_download() as info:
        page.click("#csv-link")
    target = tmp_path / "report.csv"
    shutil.copy(info.value.path(), target)
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    assert rows == _cells(page)
    assert rows[-1][:3] == ["All", "All", "1"]
    tab.assert_healthy()


def test_tables_fit_a_laptop_and_chart_labels_are_readable(
    lena: Any,
    seeded: None,
    open_inbox: Callable[[Any], Inbox],
    screenshots: Path,
) -> None:
    tab = open_inbox(lena)
    page = tab.page
    page.set_viewport_size({"width": 1280, "height": 900})
    tab.log_in()
    page.goto(f"{tab.server.url}/reports/?range=30d")
    expect(page.locator("#report-table")).to_be_visible()
    page.locator("#definitions summary").click()
    expect(page.locator("#definitions")).to_contain_text("First response")
    page.screenshot(path=screenshots / "reports-1280.png", full_page=True)
    clipped = page.evaluate(
        """() => Array.from(document.querySelectorAll(
             '.table-wrap, .side-tables section')).filter(
             box => box.scrollWidth > box.clientWidth + 1).map(
             box => box.querySelector('table').id || box.className)"""
    )
    assert clipped == []
    assert _smallest_chart_text(page) >= 11
    tab.assert_healthy_but_reloaded()


def test_the_reports_pages_fit_a_phone(
    lena: Any,
    seeded: None,
    open_inbox: Callable[[Any], Inbox],
    screenshots: Path,
) -> None:
    # Also wanted in inbox/tests/test_browser_phone.py's list of pages. The
    # page's own content (main) is measured: the top bar is base.html's.
    from inbox.tests.test_browser_phone import PHONE

    tab = open_inbox(lena)
    page = tab.page
    page.set_viewport_size(PHONE)
    tab.log_in()
    wide = {}
    for path in ("/reports/?range=30d", "/reports/digest/"):
        page.goto(f"{tab.server.url}{path}")
        page.wait_for_load_state("networkidle")
        name = path.strip("/").replace("/", "-").replace("?", "-")
        page.screenshot(path=screenshots / f"phone-{name}.png", full_page=True)
        extra = page.evaluate(
            "document.querySelector('main').scrollWidth - window.innerWidth"
        )
        if extra > 0:
            wide[path] = extra
    assert wide == {}, f"wider than 390 px by: {wide}"
    # The daily table scrolls inside its box, says so, and keeps the day.
    page.goto(f"{tab.server.url}/reports/?range=7d")
    expect(page.locator(".scroll-hint")).to_be_visible()
    box = page.locator(".daily-wrap")
    assert box.evaluate("b => b.scrollWidth > b.clientWidth")
    day = page.locator("#report-table tbody th").first
    left = day.bounding_box()["x"]
    box.evaluate("b => b.scrollLeft = 300")
    page.wait_for_function("document.querySelector('.daily-wrap').scrollLeft > 0")
    assert abs(day.bounding_box()["x"] - left) < 2  # sticky
    box.scroll_into_view_if_needed()
    page.screenshot(path=screenshots / "phone-reports-7d-scrolled.png")
    assert _smallest_chart_text(page) >= 11
    tab.assert_healthy_but_reloaded()


@pytest.fixture
def unrolled(lena: Any) -> None:
    """Today rolled up; three days ago has a conversation but no rollup."""
    now = timezone.now()
    for at in (now - timedelta(minutes=5), now - timedelta(days=3)):
        conv = conversation("telegram", at)
        message(conv, at)
    rollup.store_day(rollup.local_today())


def test_a_lead_recomputes_the_missing_days_and_the_report_updates_itself(
    lena: Any,
    unrolled: None,
    worker: Any,
    open_inbox: Callable[[Any], Inbox],
    screenshots: Path,
) -> None:
    tab = open_inbox(lena)
    page = tab.page
    tab.log_in()
    page.goto(f"{tab.server.url}/reports/?range=7d")
    expect(page.locator("#sum-conversations")).to_have_text("1")
    expect(page.locator("#rollup-status")).to_contain_text(
        "1 day with data is not in these numbers yet."
    )
    page.evaluate("window.__notReloaded = true")
    page.click("#recompute")
    # The worker computes the day; the region polls, then reloads in place.
    expect(page.locator("#sum-conversations")).to_have_text("2", timeout=20_000)
    expect(page.locator("#rollup-status")).to_have_count(0)
    page.screenshot(path=screenshots / "reports-recomputed.png", full_page=True)
    tab.assert_healthy()
