"""What agents use all day, in Chromium: the customer beside the thread (tags,
merge, earlier conversations), the bell, attachments both ways, saved views
and mark unread. Shared fixtures: ``core/tests/browser.py``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from core.testing import create_user, session_key
from core.tests.browser import BROWSER_TEST, Inbox, expect
from inbox.tests.test_attachments import PNG

pytestmark = BROWSER_TEST


@pytest.fixture
def alice(transactional_db: None) -> Any:
    return create_user(role="agent", username="alice")


@pytest.fixture
def lena(transactional_db: None) -> Any:
    return create_user(role="lead", username="lena")


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def test_the_customer_beside_the_thread_tags_history_and_merge(
    alice: Any,
    open_inbox: Callable[[Any], Inbox],
    post: Callable[..., dict[str, Any]],
    screenshots: Path,
) -> None:
    first, second = session_key(peer="777"), "agent:support:telegram:direct:777"
    whatsapp = "agent:main:whatsapp:direct:821099998888"
    post(session_id=first, senderId="777", senderName="김민준", text="지난주 주문")
    post(session_id=whatsapp, channel="whatsapp", senderId="821099998888",
         senderName="Minjun K", text="hello from WhatsApp")  # fmt: skip
    post(session_id=second, senderId="777", senderName="김민준", text="다시 문의",
         channelInfo={"username": "minjun_k"})  # fmt: skip
    tab = open_inbox(alice)
    tab.log_in()
    tab.wait_for_socket(conversation=None)
    pk = tab.conversation_id(second)
    tab.open_conversation(pk)
    page = tab.page
    panel = page.locator("#contact-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".ids")).to_contain_text("minjun_k")
    expect(panel.locator(".history li")).to_have_count(1)
    expect(panel.locator(".history")).to_contain_text("지난주 주문")

    # Tags and notes from the keyboard: type, Enter saves.
    page.fill("#contact-tags", "VIP, 환불")
    page.fill("#contact-notes", "Prefers Korean")
    page.focus("#contact-name")
    page.keyboard.press("Enter")
    expect(panel.locator(".saved")).to_have_text("Saved")
    expect(panel.locator(".tags a")).to_have_text(["#vip", "#환불"])

    # Merge the same person's WhatsApp contact in.
    page.click(".merge summary")
    page.fill("#merge-q", "8210999")
    page.click("#merge-candidates button.merge-into")
    expect(page.locator(".merge-confirm")).to_contain_text("cannot be undone")
    page.click("#merge-candidates button.merge-yes")
    expect(panel.locator(".saved")).to_contain_text("Merged")
    expect(panel.locator(".history li")).to_have_count(2)
    expect(panel.locator(".history")).to_contain_text("hello from WhatsApp")
    page.screenshot(path=screenshots / "contact-panel.png")

    # A tag is a filter of the list.
    panel.locator(".tags a", has_text="#vip").click()
    page.wait_for_url("**/inbox/?tag=vip")
    expect(page.locator("#conversation-list > li.conversation")).to_have_count(3)
    tab.assert_healthy_but_reloaded()


def test_the_bell_rings_live_and_clears_when_opened(
    alice: Any,
    lena: Any,
    open_inbox: Callable[[Any], Inbox],
    post: Callable[..., dict[str, Any]],
) -> None:
    session = session_key()
    post(session_id=session, text="환불 문의", senderName="김민준")
    lead, agent = open_inbox(lena), open_inbox(alice)
    lead.log_in()
    agent.log_in()
    agent.wait_for_socket(conversation=None)
    page = agent.page
    bell = page.locator("#bell-count")
    expect(bell).to_be_hidden()
    page.click("#bell summary")
    page.check("#bell-sound")  # kept in this browser
    page.click("#bell summary")

    pk = lead.conversation_id(session)
    lead.page.goto(f"{lead.server.url}/inbox/c/{pk}/")
    lead.page.select_option("#assign-agent", label="alice")
    lead.page.get_by_role("button", name="Assign and lock").click()

    expect(bell).to_have_text("1")
    page.wait_for_function("document.body.dataset.bellRang === '1'")
    page.click("#bell summary")
    item = page.locator("#bell-list .notification.is-unread")
    expect(item).to_contain_text("lena assigned you 김민준")
    item.locator("a").click()
    expect(page.locator(f"#thread-{pk}")).to_be_visible()
    page.goto(f"{agent.server.url}/inbox/")
    expect(page.locator("#bell-count")).to_be_hidden()
    # On a phone the open list stays on the screen, its link text readable.
    page.set_viewport_size({"width": 390, "height": 844})
    page.click("#bell summary")
    expect(page.locator("#bell-list .bell-tools")).to_be_visible()
    box = page.locator("#bell-list").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    color = page.eval_on_selector(
        "#bell-list button.link", "b => getComputedStyle(b).color"
    )
    assert color != "rgb(255, 255, 255)"
    agent.assert_healthy_but_reloaded()


def test_images_both_ways_saved_views_and_mark_unread(
    alice: Any,
    media: Path,
    open_inbox: Callable[[Any], Inbox],
    post: Callable[..., dict[str, Any]],
    screenshots: Path,
    tmp_path: Path,
) -> None:
    tab = open_inbox(alice)
    base = tab.server.url
    # A customer's photo, hosted on loopback (the browser loads it, not us).
    stored = default_storage.save("attachments/abc123/receipt.png", ContentFile(PNG))
    session = session_key()
    post(session_id=session, text="영수증입니다",
         attachments=[{"url": f"{base}/media/{stored}", "type": "image/png"}])  # fmt: skip
    tab.log_in()
    tab.wait_for_socket(conversation=None)
    pk = tab.conversation_id(session)
    tab.open_conversation(pk)
    page = tab.page
    photo = page.locator(f"#thread-{pk} .attachment.preview img")
    expect(photo).to_have_attribute("referrerpolicy", "no-referrer")
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth === 1", arg=photo.element_handle()
    )

    # The agent answers with a picture of their own.
    upload = tmp_path / "guide.png"
    upload.write_bytes(PNG)
    page.set_input_files("#reply-files", str(upload))
    page.fill("#reply-text", "확인했습니다")
    page.keyboard.press("Enter")
    mine = page.locator(f"#thread-{pk} li.author-agent .attachment.preview img")
    expect(mine).to_have_count(1)
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth === 1", arg=mine.element_handle()
    )
    page.screenshot(path=screenshots / "attachments.png")

    # Mark unread with "u": back to the list, the badge says 1.
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("u")
    page.wait_for_url("**/inbox/")
    expect(page.locator(f"#unread-{pk}")).to_have_text("1")

    # A saved view of the filters.
    # The list pane (the save form with it) is redrawn: typing into the new
    # form before htmx has settled it would submit it natively.
    page.evaluate(
        "window.listSettled = false; document.body.addEventListener("
        "'htmx:afterSettle', (e) => { if (e.detail.target.id === 'list-pane')"
        " window.listSettled = true })"
    )
    page.select_option("#f-status", "human")
    page.wait_for_url("**/inbox/?*status=human*")
    page.wait_for_function("() => window.listSettled === true")
    expect(page.locator("#f-status")).to_have_value("human")
    page.fill("#view-name", "my human chats")
    page.keyboard.press("Enter")
    chip = page.locator("#saved-views a", has_text="my human chats")
    expect(chip).to_be_visible()
    page.select_option("#f-status", "")
    chip.click()
    page.wait_for_url("**/inbox/?status=human")
    expect(page.locator("#f-status")).to_have_value("human")
    tab.assert_healthy_but_reloaded()


def test_a_date_filter_typed_from_the_keyboard_narrows_the_list_once_typed(
    alice: Any,
    open_inbox: Callable[[Any], Inbox],
    post: Callable[..., dict[str, Any]],
) -> None:
    """Chromium reports a date while its year is still being typed (the first
    digit of 2026 gives 0002-…); the list must not reload on that, or the
    form (redrawn with it) drops the rest of what the agent types."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    from django.utils import timezone

    from inbox.models import Conversation

    recent, old = session_key(), session_key()
    post(session_id=recent, text="today's question")
    post(session_id=old, text="last year's question")
    # Playwright's loop runs in this thread: the database from another one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(
            Conversation.objects.filter(session_id=old).update,
            last_message_at=timezone.now() - timedelta(days=400),
        ).result()
    tab = open_inbox(alice)
    page = tab.page
    asked: list[str] = []
    page.on(
        "request",
        lambda request: asked.append(request.url) if "since=" in request.url else None,
    )
    tab.log_in()
    expect(page.locator("#conversation-list li.conversation")).to_have_count(2)
    page.locator(".more-filters summary").click()
    day = timezone.localdate() - timedelta(days=1)
    type_date(page, "#f-since", day)
    # Out of the field: the first Tab reaches its calendar button.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.wait_for_url(f"**/inbox/?*since={day:%Y-%m-%d}*")
    expect(page.locator("#conversation-list li.conversation")).to_have_count(1)
    expect(page.locator("#f-since")).to_have_value(f"{day:%Y-%m-%d}")
    assert [url for url in asked if f"since={day:%Y-%m-%d}" not in url] == []
    # Enter commits too.
    type_date(page, "#f-until", day)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/inbox/?*until={day:%Y-%m-%d}*")
    expect(page.locator("#conversation-list li.conversation")).to_have_count(0)
    tab.assert_healthy_but_reloaded()


def type_date(page: Any, selector: str, day: Any) -> None:
    """Type a date key by key from the field's first segment, as en-US lays
    it out (mm dd yyyy): each key is a change Chromium may report."""
    box = page.locator(selector).bounding_box()
    page.mouse.click(box["x"] + 12, box["y"] + box["height"] / 2)
    for key in f"{day:%m%d%Y}":
        page.keyboard.press(key)
        page.wait_for_timeout(40)
