"""Scrolling inside the inbox's panels loads everything, in Chromium.

The list and the thread each scroll inside their own panel: the next page
must load when its marker comes into view there, with the mouse wheel, and
a "Load more" button must do the same from the keyboard.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from core.testing import create_user, session_key
from core.tests.browser import BROWSER_TEST, Inbox, expect

pytestmark = BROWSER_TEST


@pytest.fixture
def agent(transactional_db: None) -> Any:
    return create_user(is_staff=True)


def _wheel_until(page: Any, panel: str, done: Callable[[], bool], dy: int) -> bool:
    """Wheel over ``panel`` (at most 200 notches) until ``done()``."""
    box = page.locator(panel).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(200):
        if done():
            return True
        page.mouse.wheel(0, dy)
        page.wait_for_timeout(60)
    return done()


def _ids(page: Any, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.id)")


def test_wheeling_down_the_list_reaches_every_conversation(
    agent: Any, open_inbox: Callable[[Any], Inbox], post: Callable[..., Any]
) -> None:
    for n in range(80):
        post(session_id=session_key(), text=f"customer number {n}")
    inbox = open_inbox(agent)
    inbox.log_in()
    page = inbox.page
    more = page.locator("#conversation-list li.more")
    expect(more).to_have_count(1)  # one page of 50, then the marker
    assert _wheel_until(page, "#conversation-list", lambda: more.count() == 0, 600)
    rows = _ids(page, "#conversation-list > li.conversation")
    assert len(rows) == 80 and len(set(rows)) == 80
    expect(
        page.locator("#conversation-list").get_by_text("customer number 0")
    ).to_be_visible()
    inbox.assert_healthy()


def test_the_load_more_button_works_from_the_keyboard(
    agent: Any, open_inbox: Callable[[Any], Inbox], post: Callable[..., Any]
) -> None:
    for n in range(55):
        post(session_id=session_key(), text=f"keyboard customer {n}")
    inbox = open_inbox(agent)
    inbox.log_in()
    page = inbox.page
    rows = page.locator("#conversation-list > li.conversation")
    button = page.locator("#conversation-list li.more button")
    if button.count():  # not yet loaded by being in view
        button.focus()
        page.keyboard.press("Enter")
    expect(rows).to_have_count(55)
    inbox.assert_healthy()


def test_wheeling_up_a_long_thread_reaches_its_first_message(
    agent: Any, open_inbox: Callable[[Any], Inbox], post: Callable[..., Any]
) -> None:
    session = session_key()
    for n in range(123):
        post(session_id=session, message_id=n, text=f"line {n} of a long story")
    inbox = open_inbox(agent)
    inbox.log_in()
    page = inbox.page
    pk = inbox.conversation_id(session)
    inbox.open_conversation(pk)
    older = page.locator(f"#thread-{pk} li.older")
    expect(older).to_have_count(1)  # the newest 50, then the marker
    assert _wheel_until(page, f"#thread-{pk}", lambda: older.count() == 0, -600)
    items = _ids(page, f"#thread-{pk} li.message")
    assert len(items) == 123 and len(set(items)) == 123
    expect(
        page.locator(f"#thread-{pk}").get_by_text("line 0 of a long story")
    ).to_be_attached()
    inbox.assert_healthy()


def test_pick_rows_with_click_shift_click_and_x_then_resolve_them(
    agent: Any, open_inbox: Callable[[Any], Inbox], post: Callable[..., Any]
) -> None:
    for n in range(5):
        post(session_id=session_key(), text=f"bulk customer {n}")
    inbox = open_inbox(agent)
    inbox.log_in()
    page = inbox.page
    rows = page.locator("#conversation-list > li.conversation")
    expect(rows).to_have_count(5)
    bar = page.locator("#bulk-bar")
    expect(bar).to_be_hidden()
    rows.nth(0).locator("input.pick").click()
    rows.nth(2).locator("input.pick").click(modifiers=["Shift"])  # 0..2
    expect(bar).to_be_visible()
    expect(bar.locator(".bulk-count")).to_have_text("3 selected")
    # "x" picks the cursor row (j moves the cursor).
    page.locator("body").click(position={"x": 5, "y": 5})
    for _ in range(4):
        page.keyboard.press("j")
    page.keyboard.press("x")
    expect(bar.locator(".bulk-count")).to_have_text("4 selected")
    bar.locator(".bulk-action").select_option("resolve")
    bar.get_by_role("button", name="Apply").click()
    expect(page.locator("#bulk-result")).to_be_visible()
    expect(page.locator("#bulk-result")).to_have_text("Resolve: 4 done")
    expect(bar).to_be_hidden()
    # The rows' new state arrives over the live stream.
    expect(
        page.locator("#conversation-list > li.conversation.status-resolved")
    ).to_have_count(4)
    expect(
        page.locator("#conversation-list > li.conversation.status-bot")
    ).to_have_count(1)
    inbox.assert_healthy()
