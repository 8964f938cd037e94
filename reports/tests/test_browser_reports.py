"""The reports page in Chromium: it loads with its charts and table, a range
change swaps both in place (htmx), and the CSV downloads with the table's
numbers."""

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

    # "Custom" before its dates: the reason, in place; then the two dates.
    page.select_option("#range-select", "custom")
    expect(page.locator("#report-body [role=alert]")).to_have_text("Pick both dates.")
    today = rollup.local_today()
    page.fill("#range-from", (today - timedelta(days=3)).isoformat())
    page.fill("#range-to", today.isoformat())
    page.click("#range-form button[type=submit]")
    expect(totals.locator("td").first).to_have_text("3")
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
    tab.assert_healthy_but_reloaded()
