"""The inbox in Korean, in Chromium: the agent's saved language (or the
browser's), live rows included, and every time in the one stamp format in the
agent's zone. Shared fixtures: ``core/tests/browser.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from core.models import Profile
from core.templatetags.clock import format_stamp
from core.testing import create_user, session_key
from core.tests.browser import (
    BROWSER_TEST,
    VIEWPORT,
    WAIT_MS,
    WATCH_SOCKETS,
    Inbox,
    LiveServer,
    expect,
)

pytestmark = BROWSER_TEST
SEOUL = ZoneInfo("Asia/Seoul")


@pytest.fixture
def minji(transactional_db: None) -> Any:
    agent = create_user(role="agent", username="minji")
    Profile.objects.create(user=agent, language="ko", time_zone="Asia/Seoul")
    return agent


@pytest.fixture
def bob(transactional_db: None) -> Any:
    return create_user(role="agent", username="bob")


@pytest.fixture
def open_in(
    transactional_db: None, daphne_server: LiveServer, browser: Any
) -> Iterator[Callable[[Any, str], Inbox]]:
    """``open_in(user, locale)``: a tab whose browser asks for ``locale``."""
    contexts: list[Any] = []

    def open_for(user: Any, locale: str) -> Inbox:
        context = browser.new_context(viewport=VIEWPORT, locale=locale)
        contexts.append(context)
        context.set_default_timeout(WAIT_MS)
        context.add_init_script(WATCH_SOCKETS)
        return Inbox(context.new_page(), daphne_server, user)

    try:
        yield open_for
    finally:
        for context in contexts:
            context.close()


def _live(tab: Inbox, *, conversation: int | None) -> None:
    """``Inbox.wait_for_socket`` without its English status word."""
    wanted = f"conversation={conversation}" if conversation else None
    tab.page.wait_for_function(
        """(wanted) => {
          const urls = window.__wsOpened;
          if (!urls.length) return false;
          const last = urls[urls.length - 1];
          return wanted ? last.includes(wanted) : !last.includes("conversation=");
        }""",
        arg=wanted,
        timeout=WAIT_MS,
    )
    expect(tab.page.locator("#live-status")).to_have_attribute("data-state", "live")


def _stamp(iso: str, language: str) -> str:
    when = datetime.fromisoformat(iso).astimezone(SEOUL)
    return format_stamp(when, language, timezone.now().astimezone(SEOUL))


def test_an_agent_who_chose_korean_works_in_korean_live_and_in_her_zone(
    minji: Any,
    open_in: Callable[[Any, str], Inbox],
    post: Callable[..., dict[str, Any]],
) -> None:
    first = session_key()
    post(session_id=first, senderName="김민준", text="주문이 아직 안 왔어요")
    # Her browser asks for English: her profile wins.
    tab = open_in(minji, "en-US")
    tab.log_in()
    page = tab.page
    assert page.locator("html").get_attribute("lang") == "ko"
    _live(tab, conversation=None)
    expect(page.locator("#live-status")).to_have_text("실시간")
    nav = page.locator("nav.nav")
    expect(nav).to_contain_text("받은편지함")
    expect(nav).to_contain_text("에스컬레이션")
    expect(page.locator("#f-status option").first).to_have_text("모든 상태")
    expect(page.locator("#f-owner option").nth(1)).to_have_text("내 대화")
    expect(page.locator("#save-view button")).to_have_text("보기 저장")

    pk = tab.conversation_id(first)
    # Inbox.open_conversation waits for the English status word: by hand.
    page.click(f"#conv-{pk} a")
    expect(page.locator(f"#thread-{pk}")).to_be_visible()
    _live(tab, conversation=pk)
    header = page.locator("#conversation-header")
    expect(header.locator("button.take-over")).to_have_text("대화 인수")
    expect(header.locator("button.resolve")).to_have_text("해결")
    expect(header.locator(".status-pill")).to_have_text("봇")
    assert (
        page.locator("#reply-text")
        .get_attribute("placeholder")
        .startswith("답장… Enter 보내기")
    )
    expect(page.locator("#composer button[type=submit]")).to_have_text("보내기")

    # Times: the one stamp format, in Korean, in Seoul.
    byline = page.locator(f"#thread-{pk} li.message time[data-stamp]").first
    iso = byline.get_attribute("datetime")
    expect(byline).to_have_text(_stamp(iso, "ko"))
    assert "월" in _stamp(iso, "ko")

    # Taking over: the header and the timeline's audit line, in Korean.
    page.click("button.take-over")
    expect(header.locator(".owner")).to_contain_text("담당:")
    expect(page.locator(f"#thread-{pk} li.audit")).to_contain_text(
        "minji님이 대화를 인수함"
    )
    audit = page.locator(f"#thread-{pk} li.audit time[data-stamp]").last
    expect(audit).to_have_text(_stamp(audit.get_attribute("datetime"), "ko"))

    # A customer writing in another conversation: its row arrives live (in
    # the list beside the thread), in Korean.
    second = session_key()
    post(session_id=second, senderName="이서연", text="환불 문의드립니다")
    row = page.locator("#conversation-list li.conversation", has_text="이서연")
    expect(row).to_be_visible()
    expect(row.locator(".status")).to_have_text("봇")
    expect(row.locator("time[data-relative]")).to_have_text("방금")
    tab.assert_healthy_but_reloaded()


@pytest.mark.parametrize(
    ("locale", "take_over", "status", "nav"),
    [
        ("ko-KR", "대화 인수", "봇", "받은편지함"),
        ("en-US", "Take over", "Bot", "Inbox"),
    ],
)
def test_the_browsers_language_until_the_agent_chooses(
    bob: Any,
    open_in: Callable[[Any, str], Inbox],
    post: Callable[..., dict[str, Any]],
    locale: str,
    take_over: str,
    status: str,
    nav: str,
) -> None:
    session = session_key()
    post(session_id=session, senderName="Kim", text="hello")
    tab = open_in(bob, locale)
    tab.log_in()
    page = tab.page
    _live(tab, conversation=None)
    expect(page.locator("nav.nav")).to_contain_text(nav)
    pk = tab.conversation_id(session)
    page.click(f"#conv-{pk} a")
    _live(tab, conversation=pk)
    expect(page.locator("#conversation-header button.take-over")).to_have_text(
        take_over
    )
    # Live: a new customer's row speaks the same language.
    post(session_id=session_key(), senderName="Lee", text="hi")
    row = page.locator("#conversation-list li.conversation", has_text="Lee")
    expect(row.locator(".status")).to_have_text(status)
    stamp = page.locator(f"#thread-{pk} li.message time[data-stamp]").first
    language = "ko" if locale.startswith("ko") else "en"
    when = datetime.fromisoformat(stamp.get_attribute("datetime"))
    team = timezone.get_default_timezone()
    expect(stamp).to_have_text(
        format_stamp(when.astimezone(team), language, timezone.now().astimezone(team))
    )
    tab.assert_healthy_but_reloaded()
