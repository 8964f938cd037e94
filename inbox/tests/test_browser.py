"""The key inbox flows in a real browser: Chromium against the real ASGI app.

The server, the browser and the signed webhook poster are shared fixtures
(``core/tests/browser.py``): daphne runs in a thread of this process, so it
shares the test database and the channel layer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.testing import create_user, session_key
from core.tests.browser import BROWSER_TEST, WAIT_MS, Inbox, expect
from inbox import live

pytestmark = BROWSER_TEST

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def agent(transactional_db: None) -> Any:
    # Made before Chromium starts: see ``browser``.
    return create_user(is_staff=True)


@pytest.fixture
def inbox(agent: Any, open_inbox: Callable[[Any], Inbox]) -> Inbox:
    return open_inbox(agent)


def row_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#conversation-list > li.conversation", "rows => rows.map(r => r.id)"
    )


# --- tests -----------------------------------------------------------------------


def test_new_conversation_appears_live_with_its_text_escaped(
    inbox: Inbox, post: Callable[..., dict[str, Any]], screenshots: Path
) -> None:
    page = inbox.page
    older = session_key()
    post(session_id=older, text="an older conversation")
    inbox.log_in()
    older_id = inbox.conversation_id(older)
    assert row_ids(page) == [f"conv-{older_id}"]
    inbox.wait_for_socket(conversation=None)

    newer = session_key()
    post(session_id=newer, text=XSS)
    new_id = inbox.conversation_id(newer)
    row = page.locator(f"#conv-{new_id}")
    expect(row).to_be_visible()
    assert row_ids(page) == [f"conv-{new_id}", f"conv-{older_id}"]
    assert XSS in row.inner_text()
    expect(page.locator(f"#unread-{new_id}")).to_have_text("1")

    # The thread, swapped in by htmx, shows the same text as text.
    inbox.open_conversation(new_id)
    expect(page.locator(f"#thread-{new_id} .text")).to_have_text(XSS)

    page.wait_for_timeout(500)  # an onerror handler would have fired by now
    assert page.locator("#conversation-list img, #thread-pane img").count() == 0
    inbox.assert_healthy()
    page.mouse.move(0, 0)  # no hover highlight in the picture
    page.screenshot(path=screenshots / "test1-new-conversation.png", full_page=True)


def test_open_thread_grows_live_and_only_other_badges_count_up(
    inbox: Inbox, post: Callable[..., dict[str, Any]]
) -> None:
    page = inbox.page
    opened, other = session_key(), session_key()
    post(session_id=opened, message_id="a1", text="first in the opened one")
    post(session_id=other, message_id="b1", text="first in the other one")
    inbox.log_in()
    a, b = inbox.conversation_id(opened), inbox.conversation_id(other)
    inbox.wait_for_socket(conversation=None)
    inbox.open_conversation(a)
    thread = page.locator(f"#thread-{a} > li.message")
    badge_a, badge_b = page.locator(f"#unread-{a}"), page.locator(f"#unread-{b}")
    expect(thread).to_have_count(1)
    expect(badge_b).to_have_text("1")

    post(session_id=opened, message_id="a2", text="second in the opened one")
    expect(thread).to_have_count(2)
    expect(thread.last).to_contain_text("second in the opened one")
    expect(badge_a).to_be_hidden()
    assert row_ids(page)[0] == f"conv-{a}"

    for count, text in ((2, "second in the other one"), (3, "third in the other one")):
        post(session_id=other, message_id=f"b{count}", text=text)
        expect(badge_b).to_have_text(str(count))
        expect(badge_b).to_be_visible()
        expect(page.locator(f"#conv-{b} .preview")).to_have_text(text)
        expect(badge_a).to_be_hidden()
    assert row_ids(page)[:2] == [f"conv-{b}", f"conv-{a}"]

    post(session_id=opened, message_id="a3", text="third in the opened one")
    expect(thread).to_have_count(3)
    expect(badge_a).to_be_hidden()
    expect(badge_b).to_have_text("3")
    ids = inbox.message_ids(opened)
    assert page.eval_on_selector_all(
        f"#thread-{a} > li.message", "items => items.map(i => i.id)"
    ) == [f"msg-{ids[g]}" for g in ("a1", "a2", "a3")]
    expect(page.locator(f"#thread-{a}")).not_to_contain_text("in the other one")
    inbox.assert_healthy()

    # What the stream built is what a fresh page shows (the read marks were stored).
    page.reload()
    expect(page.locator(f"#unread-{a}")).to_be_hidden()
    expect(page.locator(f"#unread-{b}")).to_have_text("3")
    expect(page.locator(f"#thread-{a} > li.message")).to_have_count(3)


def test_opening_a_conversation_hides_its_unread_badge(
    inbox: Inbox, post: Callable[..., dict[str, Any]]
) -> None:
    inbox.log_in()
    inbox.wait_for_socket(conversation=None)
    # Arrives live, so the page's sequence number is past it: nothing replays it.
    session = session_key()
    post(session_id=session, text="unread until opened")
    pk = inbox.conversation_id(session)
    expect(inbox.page.locator(f"#unread-{pk}")).to_have_text("1")
    inbox.open_conversation(pk)
    expect(inbox.page.locator(f"#unread-{pk}")).to_be_hidden(timeout=5_000)


def test_open_conversation_stays_selected_when_a_message_moves_it_up(
    inbox: Inbox, post: Callable[..., dict[str, Any]]
) -> None:
    opened, other = session_key(), session_key()
    post(session_id=opened, message_id="a1", text="opened")
    post(session_id=other, message_id="b1", text="other")
    inbox.log_in()
    a = inbox.conversation_id(opened)
    inbox.wait_for_socket(conversation=None)
    inbox.open_conversation(a)
    row = inbox.page.locator(f"#conv-{a}")
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    post(session_id=opened, message_id="a2", text="moves it up")
    expect(inbox.page.locator(f"#thread-{a} > li.message")).to_have_count(2)
    assert row_ids(inbox.page)[0] == f"conv-{a}"
    expect(row).to_have_class(re.compile(r"\bselected\b"), timeout=5_000)


def test_message_arriving_while_a_conversation_opens_reaches_its_thread(
    inbox: Inbox, post: Callable[..., dict[str, Any]]
) -> None:
    page = inbox.page
    session = session_key()
    post(session_id=session, message_id="1", text="already there")
    inbox.log_in()
    pk = inbox.conversation_id(session)
    inbox.wait_for_socket(conversation=None)

    # Hold the rendered thread back, as a slow network would ...
    held: list[tuple[Any, Any]] = []
    page.route(f"**/inbox/c/{pk}/", lambda route: held.append((route, route.fetch())))
    page.click(f"#conv-{pk} a")
    deadline = time.monotonic() + WAIT_MS / 1000
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "the thread was never requested"
    # ... while a message arrives and the list's socket applies it.
    post(session_id=session, message_id="2", text="arrived while opening")
    expect(page.locator(f"#conv-{pk} .preview")).to_have_text("arrived while opening")
    route, response = held[0]
    route.fulfill(response=response)

    inbox.wait_for_socket(conversation=pk)
    expect(page.locator(f"#thread-{pk} > li.message")).to_have_count(2, timeout=5_000)


def test_messages_sent_while_the_socket_is_down_arrive_once_after_reconnect(
    inbox: Inbox, post: Callable[..., dict[str, Any]], screenshots: Path
) -> None:
    page = inbox.page
    opened, other = session_key(), session_key()
    post(session_id=opened, message_id="a1", text="before the drop")
    post(session_id=other, message_id="b1", text="the other conversation")
    inbox.log_in()
    a, b = inbox.conversation_id(opened), inbox.conversation_id(other)
    inbox.wait_for_socket(conversation=None)
    inbox.open_conversation(a)
    thread = page.locator(f"#thread-{a} > li.message")
    expect(thread).to_have_count(1)
    assert row_ids(page) == [f"conv-{b}", f"conv-{a}"]
    status = page.locator("#live-status")

    # The network goes: Chromium's offline mode refuses new connections but
    # leaves an open websocket alone, so the server also cuts the live one.
    page.context.set_offline(True)
    try:
        assert inbox.server.drop_websockets() >= 1
        expect(status).to_have_text("reconnecting…")
        missed = [f"missed {i}" for i in range(1, 4)]
        for i, text in enumerate(missed, start=2):
            post(session_id=opened, message_id=f"a{i}", text=text)
        # Down for longer than the grace a socket without a resume point gets,
        # so only resuming from the page's sequence number brings these back.
        page.wait_for_timeout((live.GAP_GRACE.total_seconds() + 1) * 1000)
        expect(status).to_have_text("reconnecting…")
        expect(thread).to_have_count(1)
    finally:
        page.context.set_offline(False)

    expect(status).to_have_text("live")
    expect(thread).to_have_count(4)
    page.wait_for_timeout(1_500)  # a late duplicate would show up by now
    ids = inbox.message_ids(opened)
    for gateway_id in ("a2", "a3", "a4"):
        assert page.locator(f'[id="msg-{ids[gateway_id]}"]').count() == 1
    assert page.eval_on_selector_all(
        f"#thread-{a} > li.message", "items => items.map(i => i.id)"
    ) == [f"msg-{ids[f'a{i}']}" for i in range(1, 5)]
    expect(thread.last).to_contain_text("missed 3")
    assert row_ids(page) == [f"conv-{a}", f"conv-{b}"]
    expect(page.locator(f"#conv-{a} .preview")).to_have_text("missed 3")
    expect(page.locator(f"#unread-{a}")).to_be_hidden()
    expect(page.locator(f"#unread-{b}")).to_have_text("1")
    expect(status).to_have_text("live")
    inbox.assert_healthy()
    page.mouse.move(0, 0)  # no hover highlight in the picture
    page.screenshot(path=screenshots / "test3-after-reconnect.png", full_page=True)
