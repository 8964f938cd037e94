"""A lead sets up a monitor in Chromium, checks it now, and sees the change.

The page is served on 127.0.0.1 (allowlisted); the simulated gateway's browser
tool fetches it; a real Dramatiq worker runs the checks 'Check now' enqueues.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.testing import create_user
from core.tests.browser import BROWSER_TEST, Inbox, expect

pytestmark = BROWSER_TEST

PAGE = """<html><body><main><h1>Galaxy Book</h1>
<p id="price">{price}</p><p>{note}</p></main></body></html>"""


@pytest.fixture
def lena(transactional_db: None) -> Any:
    return create_user(role="lead", username="lena")


def test_a_lead_creates_a_monitor_checks_it_and_sees_the_change(
    lena: Any,
    allow_loopback: Any,
    page: Any,
    gateway: Any,
    worker: Any,
    open_inbox: Callable[[Any], Inbox],
    screenshots: Path,
) -> None:
    page.html = PAGE.format(price="₩1,250,000", note="In stock")
    # Lena also has the inbox open in another window: its bell rings live.
    inbox = open_inbox(lena)
    inbox.log_in()
    inbox.expect_live()
    tab = open_inbox(lena)
    tab.log_in()
    browser = tab.page
    browser.goto(f"{tab.server.url}/monitors/")
    expect(browser.get_by_role("heading", name="Website monitors")).to_be_visible()
    browser.get_by_role("link", name="New monitor").click()
    expect(browser.get_by_role("heading", name="New monitor")).to_be_visible()

    # The keyboard alone: type, Tab to the next field. A private address is
    # refused as the lead leaves the field.
    browser.get_by_label("Name").fill("Galaxy Book price")
    browser.get_by_label("URL").fill("http://169.254.169.254/latest/meta-data")
    browser.keyboard.press("Tab")
    expect(browser.locator("#id_url_error")).to_contain_text("cannot be monitored")
    browser.get_by_label("URL").fill(page.url)
    browser.keyboard.press("Tab")
    expect(browser.locator("#id_url_error")).to_have_count(0)
    browser.get_by_label("CSS selector").fill("main")
    # Threshold and direction appear only once "Price watch" is ticked
    # (Space on the focused box, as a keyboard user would).
    expect(browser.get_by_label("Threshold")).to_be_hidden()
    expect(browser.get_by_label("Alert when the price")).to_be_hidden()
    browser.get_by_label("Price watch").focus()
    browser.keyboard.press("Space")
    expect(browser.get_by_label("Threshold")).to_be_visible()
    expect(browser.get_by_label("Alert when the price")).to_be_visible()
    browser.get_by_label("Threshold").fill("1200000")
    browser.get_by_label("Threshold").press("Enter")  # submits the form

    expect(browser.get_by_role("heading", name="Galaxy Book price")).to_be_visible()
    expect(browser.locator(".monitor-status")).to_have_text("not checked yet")
    # The primary button stays readable under the mouse: white on dark blue.
    check_now = browser.get_by_role("button", name="Check now")
    check_now.hover()
    colours = check_now.evaluate(
        "b => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]"
    )
    assert colours == ["rgb(255, 255, 255)", "rgb(31, 86, 196)"], colours
    # And a keyboard user sees where the focus is.
    browser.get_by_role("button", name="Pause").focus()
    browser.keyboard.press("Shift+Tab")
    outline = browser.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [document.activeElement.id, s.outlineStyle, s.outlineWidth]; }"
    )
    assert outline[0] == "check-now" and outline[1] == "solid", outline
    assert outline[2] == "2px", outline
    check_now.click()
    expect(browser.locator(".monitor-status")).to_have_text("ok")
    expect(browser.locator("#history li")).to_have_count(1)

    # The page changes, with markup in its text: shown as text, not run.
    page.html = PAGE.format(
        price="₩1,190,000", note="&lt;img src=x onerror=alert(1)&gt; Sale!"
    )
    browser.get_by_role("button", name="Check now").click()
    expect(browser.locator(".monitor-status")).to_have_text("changed")
    diff = browser.locator("#last-diff")
    expect(diff.locator(".remove")).to_contain_text(["-₩1,250,000", "-In stock"])
    expect(diff.locator(".add")).to_contain_text(
        ["+₩1,190,000", "+<img src=x onerror=alert(1)> Sale!"]
    )
    expect(diff.locator("img")).to_have_count(0)
    expect(browser.locator("#history li")).to_have_count(2)
    # The lead has ONE notification for the check that crossed the threshold
    # and changed the page: live in the inbox and on this page (the nav's
    # socket), and still there on its next load.
    expect(inbox.page.locator("#bell-count")).to_have_text("1")
    expect(browser.locator("#bell-count")).to_have_text("1")
    browser.reload()
    expect(browser.locator("#bell-count")).to_have_text("1")
    browser.locator("#bell summary").click()
    expect(browser.locator("#bell-list li.notification")).to_have_count(1)
    expect(browser.locator("#bell-list li.notification .text")).to_have_text(
        "Galaxy Book price: price 1,190,000 is below 1,200,000 (page changed)"
    )
    browser.locator("#bell summary").click()
    # The price line is labelled.
    expect(browser.locator("#spark-low")).to_have_text("1,190,000")
    expect(browser.locator("#spark-high")).to_have_text("1,250,000")
    expect(browser.locator("#spark-last")).to_have_text("1,190,000")
    expect(browser.get_by_role("img", name="Last 2 prices")).to_be_visible()
    browser.screenshot(path=screenshots / "monitor-changed.png", full_page=True)

    browser.get_by_role("button", name="Pause").click()
    expect(browser.locator(".monitor-status")).to_have_text("paused")
    detail_url = browser.url
    browser.goto(f"{tab.server.url}/monitors/")
    expect(browser.locator(".monitor-row")).to_contain_text("paused")

    # Delete asks first: dismissed, nothing happens.
    browser.goto(detail_url)
    browser.get_by_role("button", name="Delete").click()
    assert tab.dialogs == ["confirm: Delete this monitor and its history?"]
    tab.dialogs.clear()
    expect(browser.get_by_role("heading", name="Galaxy Book price")).to_be_visible()
    # Confirmed: the list, with the address bar on it and a confirmation.
    browser.remove_listener("dialog", tab._on_dialog)
    browser.once("dialog", lambda dialog: dialog.accept())
    browser.get_by_role("button", name="Delete").click()
    expect(browser).to_have_url(f"{tab.server.url}/monitors/")
    expect(browser.get_by_role("status")).to_have_text(
        "Monitor “Galaxy Book price” deleted with its history."
    )
    browser.reload()
    expect(browser.get_by_role("heading", name="Website monitors")).to_be_visible()
    expect(browser.locator(".monitor-row")).to_have_count(0)
    tab.assert_healthy_but_reloaded()
    inbox.assert_healthy()
