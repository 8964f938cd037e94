"""The system page in Chromium: a lead watches the gateway go down and a
webhook arrive without reloading (htmx polling); an admin filters the ops
commands' audit with the keyboard; both pages fit a phone."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.testing import create_user, drain
from core.tests.browser import BROWSER_TEST, Inbox, expect
from inbox.simulated_gateway import GatewayServer
from operations import status

pytestmark = BROWSER_TEST
PHONE = {"width": 390, "height": 844}
ADMIN = "777001"
ADMIN_KEY = f"agent:main:telegram:direct:{ADMIN}"


@pytest.fixture
def lena(transactional_db: None) -> Any:
    return create_user(role="lead", username="lena")


@pytest.fixture
def root(transactional_db: None) -> Any:
    return create_user(role="admin", username="root")


@pytest.fixture(autouse=True)
def _fresh_page_client() -> Any:
    status.reset_gateway_client()
    yield
    status.reset_gateway_client()


def _culprits(page: Any) -> list[str]:
    """The innermost elements reaching past the right edge, to name in a failure."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('main *'))
          .filter(e => e.closest('main')
                       && e.getBoundingClientRect().right > window.innerWidth + 1
                       && !Array.from(e.children).some(
                         c => c.getBoundingClientRect().right > window.innerWidth + 1))
          .slice(0, 5)
          .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                    + (e.className && typeof e.className === 'string'
                       ? '.' + e.className.trim().split(/\\s+/).join('.') : ''))"""
    )


def _overflow(page: Any) -> int:
    """How many pixels the page's own content (``main``) reaches past the
    screen's right edge (0: none). The top bar is base.html's, tested apart."""
    return page.evaluate(
        """() => Math.max(0, ...Array.from(document.querySelectorAll('main *'))
             .map(e => Math.ceil(e.getBoundingClientRect().right)))
           - window.innerWidth"""
    )


def test_a_lead_sees_the_gateway_go_down_and_a_webhook_arrive_live(
    lena: Any,
    gateway: GatewayServer,
    open_inbox: Callable[[Any], Inbox],
    post: Callable[..., dict[str, Any]],
    screenshots: Path,
) -> None:
    tab = open_inbox(lena)
    tab.log_in()
    page = tab.page
    page.goto(f"{tab.server.url}/system/")
    expect(page.get_by_role("heading", name="System", exact=True)).to_be_visible()
    expect(page.locator("#card-gateway [data-state]")).to_have_attribute(
        "data-state", "healthy"
    )
    expect(page.locator("#last-webhook")).to_have_text("none yet")
    page.evaluate("window.__notReloaded = true")

    gateway.go_down()
    post(text="hello from a customer")
    # The health region polls every 5 s: both show up without a reload.
    expect(page.locator("#card-gateway [data-state]")).to_have_attribute(
        "data-state", "unreachable", timeout=15_000
    )
    expect(page.locator("#card-gateway .ops-reason")).to_contain_text(
        "connection refused"
    )
    expect(page.locator("#last-webhook")).to_contain_text("Stored")
    assert page.evaluate("window.__notReloaded") is True
    page.screenshot(path=screenshots / "system-down.png", full_page=True)

    page.set_viewport_size(PHONE)
    page.reload()
    page.wait_for_load_state("networkidle")
    assert _overflow(page) <= 0, _culprits(page)
    assert tab.errors == [] and tab.htmx_errors == [] and tab.csp_violations == []


def test_an_admin_filters_the_commands_audit_with_the_keyboard(
    root: Any,
    settings: Any,
    gateway: GatewayServer,
    worker: Any,
    open_inbox: Callable[[Any], Inbox],
    post: Callable[..., dict[str, Any]],
    screenshots: Path,
) -> None:
    settings.OPS_COMMAND_SENDERS = [f"telegram:{ADMIN}"]
    settings.OPS_COMMANDS = {
        "hello": {"argv": [sys.executable, "-c", "print('ok')"], "timeout": 20}
    }
    for text in ("/hello", "/reboot now"):
        assert post(session_id=ADMIN_KEY, text=text, senderId=ADMIN) == {
            "status": "ignored"
        }
    drain(worker, "ops", rounds=2)
    tab = open_inbox(root)
    tab.log_in()
    page = tab.page
    page.goto(f"{tab.server.url}/system/")
    page.get_by_role("link", name="Ops commands").click()
    expect(page.get_by_role("heading", name="Ops commands")).to_be_visible()
    rows = page.locator("#command-table tbody tr")
    expect(rows).to_have_count(2)
    select = page.get_by_label("Show")
    select.focus()
    select.select_option("refused")  # change: htmx swaps the table in place
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("/reboot")
    expect(rows.first).to_contain_text("unknown command")
    expect(page).to_have_url(re.compile(r"outcome=refused"))
    select.select_option("ran")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("/hello")
    rows.first.get_by_text("3 characters").click()  # the output, escaped
    expect(rows.first.locator("td[data-label=Output] pre")).to_have_text("ok\n")
    # And what the sender was answered, one click away.
    reply = rows.first.locator("details.ops-reply")
    expect(reply.locator("pre")).to_be_hidden()
    reply.get_by_text("the reply").click()
    expect(reply.locator("pre")).to_have_text("/hello exited 0:\nok\n")

    page.set_viewport_size(PHONE)
    for path in ("/system/", "/system/commands/"):
        page.goto(f"{tab.server.url}{path}")
        page.wait_for_load_state("networkidle")
        name = path.strip("/").replace("/", "-")
        page.screenshot(path=screenshots / f"phone-{name}.png", full_page=True)
        assert _overflow(page) <= 0, (path, _culprits(page))
    assert tab.errors == [] and tab.htmx_errors == [] and tab.csp_violations == []
