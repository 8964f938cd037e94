"""A long thread in Chromium: it opens at its newest message, and older pages
load one at a time as the reader wheels up, without moving what they read.

On a wide screen the thread scrolls in its panel; on a phone (390 × 844) the
page scrolls. Each older page's request is held until the test has noted the
message at the top of the view, so "stays put" is measured, not guessed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from core.testing import create_user, session_key
from core.tests.browser import BROWSER_TEST, Inbox, expect
from inbox import live

pytestmark = BROWSER_TEST
PHONE = {"width": 390, "height": 844}
MESSAGES = 121  # the newest 50, two older pages (50 and 21)

# The first message at least partly in view, and its distance from the top of
# the view (the thread's panel, or the window when the page scrolls).
TOP_VISIBLE = """(selector) => {
  const thread = document.querySelector(selector);
  const top = Math.max(thread.getBoundingClientRect().top, 0);
  const item = [...thread.querySelectorAll(":scope > li.message")]
    .find((li) => li.getBoundingClientRect().bottom > top + 1);
  return item ? [item.id, item.getBoundingClientRect().top - top] : null;
}"""


@pytest.fixture
def agent(transactional_db: None) -> Any:
    return create_user(is_staff=True)


@pytest.fixture
def long_thread(agent: Any, post: Callable[..., Any]) -> str:
    session = session_key()
    for n in range(MESSAGES):
        post(session_id=session, message_id=n, text=f"line {n:03} of a long story")
    # Settled: a page rendered now resumes after all of them, rather than
    # having the socket replay the newest few seconds' into the thread.
    time.sleep(live.GAP_GRACE.total_seconds() + 0.5)
    return session


class OlderPages:
    """Holds each request for older messages until ``release``."""

    def __init__(self, page: Any, pk: int) -> None:
        self.held: list[Any] = []
        self.holding = True
        page.route(re.compile(rf"/inbox/c/{pk}/older/"), self._on_request)

    def _on_request(self, route: Any) -> None:
        if self.holding:
            self.held.append(route)
        else:
            route.continue_()

    def release(self) -> None:
        for route in self.held:
            route.continue_()

    def stop_holding(self) -> None:
        self.holding = False
        self.release()


def _wheel_until(page: Any, thread: str, done: Callable[[], bool], dy: int) -> bool:
    """Wheel over the visible part of the thread (at most 200 notches)."""
    box = page.locator(thread).bounding_box()
    size = page.viewport_size
    top, bottom = max(box["y"], 0), min(box["y"] + box["height"], size["height"])
    page.mouse.move(box["x"] + box["width"] / 2, (top + bottom) / 2)
    for _ in range(200):
        if done():
            return True
        page.mouse.wheel(0, dy)
        page.wait_for_timeout(80)
    return done()


def _read_up_one_page(page: Any, thread: str, older: OlderPages) -> None:
    """Wheel up until an older page is asked for; it must not move the reader,
    nor ask for the page after it."""
    messages = page.locator(f"{thread} > li.message")
    shown = messages.count()
    assert _wheel_until(page, thread, lambda: bool(older.held), -250)
    page.wait_for_timeout(500)  # the wheel's scroll comes to rest
    before = page.evaluate(TOP_VISIBLE, thread)
    assert len(older.held) == 1
    older.release()
    expect(messages).to_have_count(shown + 50)
    page.wait_for_timeout(800)  # settled, and time for a runaway second page
    after = page.evaluate(TOP_VISIBLE, thread)
    assert after[0] == before[0], f"the view jumped from {before} to {after}"
    assert abs(after[1] - before[1]) <= 2, f"moved from {before} to {after}"
    assert len(older.held) == 1, "the next older page loaded by itself"
    older.held.clear()


def _expect_at_newest(page: Any, thread: str) -> None:
    newest = page.locator(thread).get_by_text(f"line {MESSAGES - 1:03} of")
    expect(newest).to_be_in_viewport()
    expect(page.locator("#reply-text")).to_be_in_viewport()


def _open(inbox: Inbox, pk: int, opened: str) -> None:
    if opened == "from the list":
        inbox.open_conversation(pk)
    else:
        inbox.page.goto(f"{inbox.server.url}/inbox/c/{pk}/")
        inbox.wait_for_socket(conversation=pk)


def _assert_healthy(inbox: Inbox, opened: str) -> None:
    if opened == "from the list":
        inbox.assert_healthy()
    else:
        inbox.assert_healthy_but_reloaded()


@pytest.mark.parametrize("opened", ["from the list", "by its address"])
def test_a_long_thread_opens_at_its_newest_and_reading_up_keeps_the_place(
    agent: Any, long_thread: str, open_inbox: Callable[[Any], Inbox], opened: str
) -> None:
    inbox = open_inbox(agent)
    inbox.log_in()
    page = inbox.page
    pk = inbox.conversation_id(long_thread)
    thread = f"#thread-{pk}"
    older = OlderPages(page, pk)
    _open(inbox, pk, opened)
    _expect_at_newest(page, thread)
    page.wait_for_timeout(800)
    assert older.held == [], "an older page loaded before the agent scrolled up"

    _read_up_one_page(page, thread, older)
    older.stop_holding()
    assert _wheel_until(
        page, thread, lambda: page.locator(f"{thread} li.older").count() == 0, -600
    )
    expect(page.locator(f"{thread} > li.message")).to_have_count(MESSAGES)
    _assert_healthy(inbox, opened)


@pytest.mark.parametrize("opened", ["from the list", "by its address"])
def test_on_a_phone_a_long_thread_opens_at_its_newest_and_keeps_the_place(
    agent: Any, long_thread: str, open_inbox: Callable[[Any], Inbox], opened: str
) -> None:
    inbox = open_inbox(agent)
    page = inbox.page
    page.set_viewport_size(PHONE)
    inbox.log_in()
    pk = inbox.conversation_id(long_thread)
    thread = f"#thread-{pk}"
    older = OlderPages(page, pk)
    _open(inbox, pk, opened)
    _expect_at_newest(page, thread)
    page.wait_for_timeout(800)
    assert older.held == [], "an older page loaded before the agent scrolled up"
    expect(page.locator(f"{thread} > li.message")).to_have_count(50)

    _read_up_one_page(page, thread, older)
    older.stop_holding()
    assert _wheel_until(
        page, thread, lambda: page.locator(f"{thread} li.older").count() == 0, -600
    )
    expect(page.locator(f"{thread} > li.message")).to_have_count(MESSAGES)
    expect(page.locator(thread).get_by_text("line 000 of")).to_be_attached()
    _assert_healthy(inbox, opened)
