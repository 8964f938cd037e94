"""clock.js writes what the stamp filter writes, in the agent's zone and language.

Live fragments are rendered once for every agent (in UTC); the browser puts
them in each agent's zone. So the two must agree to the character.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from core.models import Profile
from core.templatetags.clock import format_stamp
from core.testing import create_user
from core.tests.browser import BROWSER_TEST, Inbox, expect

pytestmark = BROWSER_TEST
SEOUL = ZoneInfo("Asia/Seoul")
YEAR = timezone.now().astimezone(SEOUL).year
MADE = dt.datetime(YEAR, 12, 5, 0, 0, tzinfo=dt.UTC)
INSTANTS = [
    MADE,
    dt.datetime(YEAR, 6, 30, 15, 0, tzinfo=dt.UTC),  # midnight in Seoul
    dt.datetime(YEAR - 1, 1, 3, 23, 7, tzinfo=dt.UTC),  # another year
    dt.datetime(YEAR - 1, 12, 31, 20, 0, tzinfo=dt.UTC),  # this year in Seoul only
]


@pytest.fixture
def minji(transactional_db: None) -> Any:
    agent = create_user(role="agent", username="minji")
    Profile.objects.create(user=agent, language="ko", time_zone="Asia/Seoul")
    token = Token.objects.create(user=agent)
    Token.objects.filter(pk=token.pk).update(created=MADE)
    return agent


def _expected(language: str) -> dict[str, str]:
    now = timezone.now().astimezone(SEOUL)
    return {
        when.isoformat(): format_stamp(when.astimezone(SEOUL), language, now)
        for when in INSTANTS
    }


def test_the_browser_writes_the_filters_text_in_the_agents_zone(
    minji: Any, open_inbox: Callable[[Any], Inbox]
) -> None:
    korean, english = _expected("ko"), _expected("en")
    assert korean[MADE.isoformat()] == "12월 5일 09:00"
    tab = open_inbox(minji)
    tab.log_in()
    page = tab.page
    page.goto(f"{tab.server.url}/profile/")
    assert page.locator("html").get_attribute("lang") == "ko"
    assert page.locator("body").get_attribute("data-tz") == "Asia/Seoul"
    expect(page.locator("#token-state time")).to_have_text("12월 5일 09:00")

    # A fragment rendered in UTC and English, as live updates are, swapped in
    # plainly and out of band: each is rewritten for this agent.
    page.evaluate(
        """(iso) => {
          htmx.swap("#token-state", '<span id="slot"></span>', {swapStyle: "beforeend"});
          htmx.swap("#token-state",
            '<time id="plain" datetime="' + iso + '" data-stamp>Dec 5, 00:00</time>',
            {swapStyle: "beforeend"});
          htmx.swap("#token-state",
            '<time id="slot" hx-swap-oob="true" datetime="' + iso + '" data-stamp>Dec 5, 00:00</time>',
            {swapStyle: "beforeend"});
        }""",
        MADE.isoformat(),
    )
    expect(page.locator("#plain")).to_have_text("12월 5일 09:00")
    expect(page.locator("#slot")).to_have_text("12월 5일 09:00")

    written = page.evaluate(
        """(isos) => Object.fromEntries(isos.map(
             (iso) => [iso, window.openclawClock.stamp(new Date(iso))]))""",
        list(korean),
    )
    assert written == korean
    page.evaluate("document.body.dataset.lang = 'en'")
    written = page.evaluate(
        """(isos) => Object.fromEntries(isos.map(
             (iso) => [iso, window.openclawClock.stamp(new Date(iso))]))""",
        list(english),
    )
    assert written == english
    assert tab.errors == [] and tab.csp_violations == []


@pytest.fixture
def list_times(transactional_db: None) -> tuple[Any, dict[str, int]]:
    """An English agent in Seoul, and conversations last active three days,
    ten minutes and a moment ago."""
    from core.testing import message_event, post_webhook, session_key
    from inbox.models import Conversation

    agent = create_user(role="agent", username="jun")
    Profile.objects.create(user=agent, language="en", time_zone="Asia/Seoul")
    pks = {}
    for name, ago in (("old", dt.timedelta(days=3)), ("recent", dt.timedelta(0))):
        session = session_key()
        post_webhook(message_event(session_id=session, text=f"{name} question"))
        pks[name] = Conversation.objects.get(session_id=session).pk
        Conversation.objects.filter(pk=pks[name]).update(
            last_message_at=timezone.now() - ago
        )
    return agent, pks


def test_the_list_reads_the_stamp_and_within_the_hour_how_long_ago(
    list_times: tuple[Any, dict[str, int]], open_inbox: Callable[[Any], Inbox]
) -> None:
    """One format with the thread and the header: the stamp, as its tooltip
    too; only the last hour reads "just now" / "n minutes ago"."""
    agent, pks = list_times
    tab = open_inbox(agent)
    page = tab.page
    page.clock.install()
    tab.log_in()
    old = page.locator(f"#conv-{pks['old']} time.when")
    recent = page.locator(f"#conv-{pks['recent']} time.when")
    stamps = page.evaluate(
        """(ids) => ids.map((id) => window.openclawClock.stamp(new Date(
             document.querySelector("#conv-" + id + " time.when").getAttribute("datetime"))))""",
        [pks["old"], pks["recent"]],
    )
    assert all(
        re.fullmatch(r"[A-Z][a-z]{2} \d+, (\d{4}, )?\d\d:\d\d", s) for s in stamps
    )
    expect(old).to_have_text(stamps[0])
    expect(old).to_have_attribute("title", stamps[0])
    expect(recent).to_have_text("just now")
    expect(recent).to_have_attribute("title", stamps[1])

    page.clock.fast_forward("10:30")  # the list's 30-second refresh has run
    expect(old).to_have_text(stamps[0])
    expect(recent).to_have_text("10 minutes ago")
    page.clock.fast_forward("50:00")  # over an hour: the stamp
    expect(recent).to_have_text(stamps[1])
    expect(recent).to_have_attribute("title", stamps[1])
    assert tab.errors == [] and tab.csp_violations == []
