"""Every page at a phone's size (390 × 844, Chromium): nothing wider than the
screen, and the inbox one column at a time (list, then thread, and back)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from automations.models import Trigger
from core.testing import create_user, session_key
from core.tests.browser import BROWSER_TEST, Inbox, expect

pytestmark = BROWSER_TEST
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def lena(transactional_db: None) -> Any:
    return create_user(role="lead", username="lena")


@pytest.fixture
def trigger(lena: Any) -> Trigger:
    trigger = Trigger(
        name="A rather long trigger name for a small screen",
        patterns=[r"(?:^|[^\p{L}\p{N}_])환불(?:[^\p{L}\p{N}_]|$)", "refund|money back"],
        actions=[{"type": "reply", "text": "환불은 3~5영업일 안에 처리됩니다."}],
    )
    trigger.save_version(lena)
    return trigger


@pytest.fixture
def escalated(lena: Any) -> list[str]:
    """The sessions of conversations in the queue with long reasons: a
    trigger's with a long pattern (the builtin "angry" one is as long), and
    the bot's. A reason shows in the header, the queue card and the thread's
    audit line."""
    from automations import engine
    from core.testing import message_event, post_webhook
    from inbox.models import Conversation, Message

    Trigger(
        name="Upset customer",
        patterns=[
            r"\b(angry|furious|terrible|worst|awful|disappointed|unacceptable"
            r"|ridiculous|scam|complaint|lawyer|chargeback|outrageous)\b",
            r"(?:^|[^\p{L}\p{N}_])(?:불만|화나|화가|최악|실망|짜증|고소|신고)",
        ],
        actions=[{"type": "escalate"}],
    ).save_version(lena)
    session = session_key()
    post_webhook(message_event(session_id=session, text="This is unacceptable."))
    engine.forget()
    engine.run_for_message(Message.objects.get(conversation__session_id=session))
    # The bot's free text with no place to break wraps too, and so does a
    # customer's name with none (the conversation's heading).
    other = session_key()
    post_webhook(
        message_event(
            session_id=other,
            text="Hello",
            senderName="Overflowname Verylongcustomernamewithoutanyspacesatall",
        )
    )
    Conversation.objects.get(session_id=other).escalate(
        reason="bot handoff " + "0123456789abcdef" * 15
    )
    return [session, other]


@pytest.fixture
def monitor(lena: Any) -> Any:
    """A price watch with a long URL and a change whose diff has long lines."""
    from decimal import Decimal

    from core.testing import create_monitor

    monitor = create_monitor(
        url="https://shop.example.com/products/an-extremely-long-product-path-"
        "that-never-breaks-anywhere?variant=123456789012345678901234567890",
        name="A rather long monitor name for a small screen",
        selector="main .product-detail .price-box span.current-price",
        is_price=True,
        threshold=Decimal(1200000),
    )
    monitor.record_text("₩1,250,000 " + "x" * 150)
    monitor.record_text("₩1,190,000 " + "https://example.com/" + "y" * 150)
    # Failing now: the reason, the failures in a row and the backoff show too.
    monitor.record_failure(
        "the page did not load: shop.example.com refused to connect. "
        "(ERR_CONNECTION_REFUSED)"
    )
    return monitor


def _overflow(page: Any) -> int:
    """How many pixels the page is wider than the screen (0: none)."""
    return page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth"
    )


def _culprits(page: Any) -> list[str]:
    """The innermost elements reaching past the right edge, to name in a failure."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('body *'))
          .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
                       && !Array.from(e.children).some(
                         c => c.getBoundingClientRect().right > window.innerWidth + 1))
          .slice(0, 5)
          .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                    + (e.className && typeof e.className === 'string'
                       ? '.' + e.className.trim().split(/\\s+/).join('.') : ''))"""
    )


def test_no_page_is_wider_than_a_phone(
    lena: Any,
    trigger: Trigger,
    monitor: Any,
    escalated: list[str],
    open_inbox: Callable[[Any], Inbox],
    post: Callable[..., dict[str, Any]],
    screenshots: Path,
) -> None:
    session = session_key()
    post(
        session_id=session,
        text="주문번호 A-2026-000123456789 배송이 아직 안 왔어요. "
        "https://example.com/a/very/long/link/that/does/not/break/anywhere/at/all",
    )
    tab = open_inbox(lena)
    page = tab.page
    page.set_viewport_size(PHONE)
    tab.log_in()
    pk = tab.conversation_id(session)
    pages = [
        "/inbox/",
        f"/inbox/c/{pk}/",
        # Long reasons: the header and the audit line.
        *(f"/inbox/c/{tab.conversation_id(key)}/" for key in escalated),
        "/inbox/queue/",
        "/automations/",
        "/automations/new/",
        f"/automations/{trigger.pk}/",
        f"/automations/{trigger.pk}/versions/",
        "/automations/tickets/",
        "/monitors/",
        "/monitors/new/",
        f"/monitors/{monitor.pk}/",
        "/system/deliveries/",
        "/system/deliveries/1/",  # the webhook above (sequences start at 1)
        "/system/",
        "/reports/?range=30d",
        "/reports/digest/",
        "/profile/",
    ]
    wide = {}
    for path in pages:
        page.goto(f"{tab.server.url}{path}")
        page.wait_for_load_state("networkidle")
        name = path.strip("/").replace("/", "-") or "root"
        page.screenshot(path=screenshots / f"phone-{name}.png", full_page=True)
        if (extra := _overflow(page)) > 0:
            wide[path] = (extra, _culprits(page))
    assert wide == {}, f"wider than 390 px by: {wide}"


def test_the_inbox_is_one_column_on_a_phone_list_then_thread_and_back(
    lena: Any, open_inbox: Callable[[Any], Inbox], post: Callable[..., dict[str, Any]]
) -> None:
    session = session_key()
    post(session_id=session, text="Where is my order?")
    tab = open_inbox(lena)
    page = tab.page
    page.set_viewport_size(PHONE)
    tab.log_in()
    pk = tab.conversation_id(session)
    expect(page.locator("#list-pane")).to_be_visible()
    expect(page.locator("#thread-pane")).to_be_hidden()
    tab.open_conversation(pk)
    expect(page.locator("#thread-pane")).to_be_visible()
    expect(page.locator("#list-pane")).to_be_hidden()
    thread = page.locator(f"#thread-{pk}").bounding_box()
    assert thread["width"] >= 300  # the thread has the screen, not 90 px
    page.locator("#conversation-header a.back").click()
    expect(page.locator("#list-pane")).to_be_visible()
    expect(page.locator(f"#conv-{pk}")).to_be_visible()
    # (Back is a link to the list: a page load, so only errors are checked.)
    assert tab.errors == [] and tab.htmx_errors == [] and tab.csp_violations == []
