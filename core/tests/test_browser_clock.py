"""clock.js writes what the stamp filter writes, in the agent's zone and language.

Live fragments are rendered once for every agent (in UTC); the browser puts
them in each agent's zone. So the two must agree to the character.
"""

from __future__ import annotations

import datetime as dt
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
