"""The key flow in Chromium, fed by the real OpenClaw gateway.

A customer writes on the (fake) Telegram; the real gateway records it, its stub
model answers; the product's connector stores both and the agent's page shows
them live, with the sender's name, the model and its tokens. The agent takes
over, the header says the bot is stopped (the inbox plugin is loaded), the
customer writes again without a bot answer, and the agent's reply reaches
Telegram once and shows "Delivered".
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.testing import create_user
from core.tests.browser import BROWSER_TEST, Inbox, LiveServer, expect
from inbox.connector import Connector
from inbox.devgateway import RealGateway

pytestmark = [*BROWSER_TEST, pytest.mark.gateway]


@pytest.fixture
def alice(transactional_db: None) -> Any:
    return create_user(role="agent", username="alice")


@pytest.fixture
def wired(real_inbox: Connector, daphne_server: LiveServer, worker: Any) -> Connector:
    """The live server and its worker, with the connector on the real gateway."""
    return real_inbox


def test_a_telegram_customer_is_worked_live_in_the_browser(
    alice: Any,
    open_inbox: Callable[[Any], Inbox],
    wired: Connector,
    real_gateway: RealGateway,
    screenshots: Path,
) -> None:
    tab = open_inbox(alice)
    tab.log_in()
    tab.wait_for_socket(conversation=None)
    page = tab.page
    chat = random.randrange(10**8, 10**9)
    marker = uuid.uuid4().hex[:6]
    name = f"Carol {marker}"
    real_gateway.telegram.customer(chat, f"where is my parcel {marker}?", name=name)

    # The conversation appears without a reload, named after the sender.
    row = page.locator("#conversation-list > li.conversation", has_text=name)
    expect(row).to_have_count(1, timeout=60_000)
    row.locator("a").click()
    thread = page.locator("[id^=thread-]")
    expect(thread.locator("li.message.author-customer").first).to_contain_text(
        f"where is my parcel {marker}?"
    )
    bot = thread.locator("li.message.author-bot").first
    expect(bot).to_contain_text(f"bot: where is my parcel {marker}?", timeout=60_000)
    expect(bot.locator(".ai")).to_contain_text(re.compile(r"stub-model · \d+ tokens"))
    page.screenshot(path=screenshots / "real-gateway-1-customer-and-bot.png")

    # Take over: the plugin is loaded, so the header says the bot is stopped.
    header = page.locator("#conversation-header")
    header.locator("button.take-over").click()
    expect(header).to_have_attribute("data-status", "human")
    expect(header.locator(".bot-pause")).to_have_attribute("data-pause", "plugin")
    time.sleep(1.5)  # the takeover job reaches the gateway's plugin
    real_gateway.telegram.customer(chat, f"hello?? {marker}", name=name)
    expect(thread.locator("li.message.author-customer")).to_have_count(
        2, timeout=60_000
    )

    reply = f"Alice here, it ships today {marker}"
    composer = page.locator("#reply-text")
    composer.fill(reply)
    composer.press("Enter")
    mine = thread.locator("li.message.author-agent", has_text=reply)
    expect(mine.locator(".state")).to_have_text("Delivered", timeout=60_000)
    real_gateway.telegram.wait_for_sent(chat, reply, timeout=30)
    sent = [m.text for m in real_gateway.telegram.sent_to(chat)]
    assert sent.count(reply) == 1
    # The held message got no bot answer, on screen or on Telegram.
    assert real_gateway.model.calls_containing(f"hello?? {marker}") == []
    assert not any(f"hello?? {marker}" in text for text in sent)
    expect(thread.locator("li.message.author-bot")).to_have_count(1)
    page.screenshot(path=screenshots / "real-gateway-2-agent-reply-delivered.png")
    tab.assert_healthy()
