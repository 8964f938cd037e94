"""The automations editor in Chromium: write a trigger, see it answer a customer.

The server (daphne in a thread of this process), the browser and the signed
webhook poster are the shared fixtures (``core/tests/browser.py``).
A real Dramatiq worker runs the triggers and delivers the reply to the gateway
simulator. The test thread reads the database only through the server's API
while Chromium runs (see ``browser`` in ``core/tests/browser.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from automations.models import Trigger
from core.testing import create_user, drain, session_key
from core.tests.browser import BROWSER_TEST, WAIT_MS, Inbox, expect

pytestmark = BROWSER_TEST


# Made before Chromium starts: see ``browser``. Request these before ``open_inbox``.
@pytest.fixture
def lena(transactional_db: None) -> Any:
    return create_user(role="lead", username="lena")


@pytest.fixture
def arno(transactional_db: None) -> Any:
    return create_user(role="agent", username="arno")


@pytest.fixture
def three_triggers(lena: Any) -> list[Trigger]:
    triggers = []
    for priority, name in ((10, "Greeting"), (20, "Shipping FAQ"), (30, "Refund FAQ")):
        trigger = Trigger(
            name=name,
            priority=priority,
            patterns=[name.split()[0].lower()],
            actions=[{"type": "escalate"}],
        )
        trigger.save_version(lena)
        triggers.append(trigger)
    return triggers


def _new_trigger_page(tab: Inbox) -> tuple[Inbox, Any]:
    """Logged in, on the editor of a new trigger (a fresh page load)."""
    tab.log_in()
    tab.page.goto(f"{tab.server.url}/automations/new/")
    tab.page.evaluate("window.__notReloaded = true")
    return tab, tab.page


def shot(page: Any, screenshots: Path, name: str) -> None:
    page.mouse.move(0, 0)  # no hover highlight in the picture
    page.screenshot(path=screenshots / f"editor-{name}.png", full_page=True)


def test_a_lead_writes_a_trigger_and_the_customer_gets_its_reply(
    lena: Any,
    open_inbox: Callable[[Any], Inbox],
    post: Callable[..., dict[str, Any]],
    worker: Any,
    gateway: Any,
    screenshots: Path,
) -> None:
    tab = open_inbox(lena)
    tab.log_in()
    page = tab.page
    page.get_by_role("link", name="Automations").click()
    expect(page.get_by_role("heading", name="Automations")).to_be_visible()
    page.get_by_role("link", name="New trigger").click()
    expect(page.get_by_role("heading", name="New trigger")).to_be_visible()
    page.evaluate("window.__notReloaded = true")

    page.get_by_label("Name", exact=True).fill("Refund answer")
    page.get_by_label("Telegram").check()
    patterns = page.locator("#id_patterns")
    patterns.press_sequentially(r"(a)\1", delay=40)
    # Checked as typed, nothing submitted: RE2's reason, and where.
    feedback = page.locator("#pattern-feedback")
    expect(feedback).to_contain_text("Line 1, column 4")
    expect(feedback).to_contain_text("backreferences are not supported")
    expect(feedback.locator(".caret")).to_have_text("^")
    expect(patterns).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("heading", name="New trigger")).to_be_visible()
    shot(page, screenshots, "1-backreference-refused-as-typed")

    patterns.press("Control+a")
    patterns.press("Backspace")
    patterns.press_sequentially("환불|refund", delay=40)
    expect(feedback).to_contain_text("RE2 accepts these patterns")
    expect(patterns).not_to_have_attribute("aria-invalid", "true")

    page.get_by_label("Action", exact=True).select_option(label="Reply")
    reply_text = page.get_by_label("Reply text")
    expect(reply_text).to_be_visible()
    reply_text.fill("Refunds reach your card in 3–5 days, {customer_name}.")
    shot(page, screenshots, "2-draft-ready")
    page.get_by_role("button", name="Create trigger").click()
    expect(page.locator(".saved")).to_have_text("Saved as version 1.")
    expect(page).to_have_url(re.compile(r"/automations/\d+/$"))
    expect(page.get_by_role("heading", name="Refund answer")).to_be_visible()
    tab.assert_healthy()

    # A customer on Telegram asks for a refund.
    session = session_key(chat="telegram")
    post(session_id=session, channel="telegram", text="I want a refund")
    # The worker runs the triggers and delivers their replies.
    drain(worker, "default", "automations", "replies", timeout_ms=WAIT_MS)

    page.get_by_role("link", name="Inbox", exact=True).click()
    page.wait_for_url(re.compile(r"/inbox/$"))
    pk = tab.conversation_id(session)
    tab.wait_for_socket(conversation=None)
    tab.open_conversation(pk)
    answer = "Refunds reach your card in 3–5 days, 김민준."
    automated = page.locator(f"#thread-{pk} li.message.author-automation")
    expect(automated).to_have_count(1)
    expect(automated.locator(".text")).to_have_text(answer)
    expect(automated.locator(".sender")).to_have_text("automation: Refund answer")
    shot(page, screenshots, "3-auto-reply-in-the-thread")

    [sent] = gateway.received
    assert (sent.kind, sent.session_key, sent.text) == ("send", session, answer)
    assert tab.errors == []


def test_a_lead_reorders_backtests_and_reverts_from_the_keyboard(
    lena: Any,
    three_triggers: list[Trigger],
    open_inbox: Callable[[Any], Inbox],
    post: Callable[..., dict[str, Any]],
    worker: Any,
    screenshots: Path,
) -> None:
    greeting, shipping, refund = three_triggers
    texts = ["refund please", "<b>where is</b> order {}", "thanks <i>{}</i>"]
    for index in range(30):
        post(session_id=session_key(), text=texts[index % 3].format(index))
    tab = open_inbox(lena)
    tab.log_in()
    page = tab.page
    page.goto(f"{tab.server.url}/automations/")
    page.evaluate("window.__notReloaded = true")

    def names() -> list[str]:
        return page.eval_on_selector_all(
            "#trigger-rows th.name a", "links => links.map(a => a.textContent)"
        )

    assert names() == ["Greeting", "Shipping FAQ", "Refund FAQ"]
    # Up from the keyboard: the row moves and the focus stays on its button.
    page.focus(f"#up-{refund.pk}")
    page.keyboard.press("Enter")
    expect(page.locator("#trigger-rows tr").nth(1)).to_have_id(f"trigger-{refund.pk}")
    expect(page.locator(f"#up-{refund.pk}")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#trigger-rows tr").first).to_have_id(f"trigger-{refund.pk}")
    assert names() == ["Refund FAQ", "Greeting", "Shipping FAQ"]
    # Space on the switch turns it off at once.
    page.focus(f"#enabled-{shipping.pk}")
    page.keyboard.press("Space")
    expect(page.locator(f"#trigger-{shipping.pk}")).to_have_class("disabled")
    expect(page.locator(f"#enabled-{shipping.pk}")).not_to_be_checked()
    shot(page, screenshots, "4-list-reordered")

    # Edit the refund trigger: try it, backtest the draft, save version 2.
    page.get_by_role("link", name="Refund FAQ").click()
    page.evaluate("window.__notReloaded = true")
    patterns = page.locator("#id_patterns")
    patterns.fill("refund\nwhere is")
    page.get_by_label("Customer message").fill(
        "<script>x()</script> Where is my REFUND?"
    )
    page.get_by_role("button", name="Try it").click()
    result = page.locator("#try-result")
    expect(result.locator(".verdict")).to_contain_text("Would fire")
    expect(result.locator("mark")).to_have_text(["Where is", "REFUND"])
    expect(result.locator(".sample")).to_contain_text("<script>x()</script>")

    page.get_by_label("Last", exact=True).fill("20")
    page.get_by_label("Last", exact=True).press("Enter")
    progress = page.locator("#backtest-progress")
    expect(progress).to_have_attribute("data-state", "done")
    expect(progress.locator("progress")).to_have_attribute("value", "100")
    # The newest 20 of 30: 6 ask for a refund, 7 where their order is.
    expect(progress.locator(".verdict")).to_have_text(
        "Would have fired on 13 of the last 20 messages."
    )
    expect(progress.locator(".samples > li").first).to_contain_text(
        "<b>where is</b> order 28"
    )
    expect(progress.locator(".samples > li")).to_have_count(10)
    expect(progress.locator(".samples mark").first).to_be_visible()
    shot(page, screenshots, "5-try-it-and-backtest")

    page.get_by_role("button", name="Save changes").click()
    # Versions 2 and 3 were the two moves.
    expect(page.locator(".saved")).to_have_text(
        "Saved as version 4 (changed: patterns)."
    )

    # History: the diff, then back to version 3 (as a new version 5).
    page.get_by_role("link", name="History").click()
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#version-list tbody tr")).to_have_count(4)
    page.get_by_role("link", name="Show changes in v4").click()
    diff = page.locator("#diff")
    expect(diff.locator(".add")).to_have_text(["+where is"])
    expect(page).to_have_url(re.compile(r"/versions/4/$"))
    page.get_by_role("button", name="Revert to this version (v3)").click()
    expect(page.locator("#version-list .saved")).to_have_text(
        "Reverted to version 3: saved as version 5."
    )
    expect(page.locator("#version-list tbody tr")).to_have_count(5)
    shot(page, screenshots, "6-history-reverted")
    tab.assert_healthy()


def test_an_agent_sees_the_editor_read_only(
    arno: Any,
    three_triggers: list[Trigger],
    open_inbox: Callable[[Any], Inbox],
    screenshots: Path,
) -> None:
    tab = open_inbox(arno)
    tab.log_in()
    page = tab.page
    page.goto(f"{tab.server.url}/automations/")
    expect(page.get_by_role("link", name="New trigger")).to_have_count(0)
    expect(page.locator("#trigger-rows button, #trigger-rows input")).to_have_count(0)
    page.get_by_role("link", name="Refund FAQ").click()
    expect(page.locator("#id_name")).to_be_disabled()
    expect(page.locator("#id_patterns")).to_be_disabled()
    expect(page.get_by_role("button", name="Save changes")).to_have_count(0)
    expect(page.get_by_role("button", name="Try it")).to_have_count(0)
    shot(page, screenshots, "7-agent-read-only")
    assert tab.errors == []


def test_try_it_needs_only_patterns_not_a_name_or_an_action(
    lena: Any, open_inbox: Callable[[Any], Inbox]
) -> None:
    tab, page = _new_trigger_page(open_inbox(lena))
    # A brand-new trigger: no name, its one action row not chosen yet.
    page.locator("#id_patterns").fill("refund|환불")
    page.locator("#try-sample").fill("I want a REFUND please")
    page.locator("#try-button").click()
    result = page.locator("#try-result")
    expect(result.locator(".verdict")).to_contain_text("Would fire")
    expect(result.locator("mark")).to_have_text(["REFUND"])
    tab.assert_healthy()


def test_a_hangul_word_boundary_is_warned_and_fixed_with_one_click(
    lena: Any, open_inbox: Callable[[Any], Inbox]
) -> None:
    tab, page = _new_trigger_page(open_inbox(lena))
    page.locator("#id_patterns").fill("\\b환불\\b")
    page.locator("#id_patterns").press("End")  # a keyup: the live check runs
    warning = page.locator("#pattern-feedback .warning")
    expect(warning).to_contain_text("ASCII words only")
    warning.get_by_role("button", name="Use the Unicode form").click()
    expect(page.locator("#id_patterns")).to_have_value(
        "(?:^|[^\\p{L}\\p{N}_])환불(?:[^\\p{L}\\p{N}_]|$)"
    )
    expect(page.locator("#pattern-feedback .ok")).to_have_text(
        "RE2 accepts these patterns."
    )
    page.locator("#try-sample").fill("환불 부탁드려요")
    page.locator("#try-button").click()
    expect(page.locator("#try-result .verdict")).to_contain_text("Would fire")
    tab.assert_healthy()


def test_saving_an_invalid_trigger_shows_its_errors_inside_the_page(
    lena: Any, open_inbox: Callable[[Any], Inbox], settings: Any
) -> None:
    settings.DEBUG = True  # as the README's run command serves it
    tab, page = _new_trigger_page(open_inbox(lena))
    page.get_by_label("Name").fill("Broken on purpose")
    page.locator("#id_patterns").fill("(")
    page.locator("select[name$='-type']").select_option("escalate")
    page.locator("#save-trigger").click()
    expect(page.locator("#trigger-form")).to_contain_text("Missing )")
    # Still the whole page: styles, navigation and the try-it panel.
    expect(page.locator("header.topbar")).to_be_visible()
    expect(page.locator("#try-form")).to_be_visible()
    assert (
        page.evaluate(
            "getComputedStyle(document.querySelector('header.topbar')).display"
        )
        != "inline"
    )
    tab.assert_healthy()
