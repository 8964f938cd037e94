"""Live fragments in each tab's language, from one published event."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from core.asgi import application
from core.models import Profile
from core.testing import (
    create_user,
    message_event,
    post_webhook,
    session_cookie,
    session_key,
)
from inbox import live
from inbox.models import Activity, Conversation
from inbox.tests.test_live_stream import ORIGIN, receive_all

pytestmark = pytest.mark.django_db(transaction=True)


async def _tab(user: Any, query: str = "", language: str = "") -> WebsocketCommunicator:
    cookie = await sync_to_async(session_cookie)(user)
    headers = [ORIGIN, (b"cookie", cookie.encode())]
    if language:
        headers.append((b"accept-language", language.encode()))
    communicator = WebsocketCommunicator(
        application, f"/ws/inbox/?{query}", headers=headers
    )
    connected, _ = await communicator.connect()
    assert connected
    await receive_all(communicator, timeout=0.3)
    return communicator


async def test_each_tab_gets_the_same_event_in_its_agents_language(
    monkeypatch,  # noqa: ANN001
) -> None:
    # Chose Korean on her profile, though her browser asks for English.
    minji = await sync_to_async(create_user)(role="agent", username="minji")
    await Profile.objects.acreate(user=minji, language="ko")
    # No choice made: the browser's language decides.
    bob = await sync_to_async(create_user)(role="agent", username="bob")
    jisoo = await sync_to_async(create_user)(role="agent", username="jisoo")

    renders = []
    render_row = live.render_row
    monkeypatch.setattr(
        live, "render_row", lambda *a, **k: renders.append(1) or render_row(*a, **k)
    )
    korean = await _tab(minji, language="en-US,en;q=0.9")
    english = await _tab(bob, language="en-US,en;q=0.9")
    korean_browser = await _tab(jisoo, language="ko-KR,ko;q=0.9,en;q=0.5")

    before = await Activity.objects.acount()
    await sync_to_async(post_webhook)(message_event(session_id=session_key()))
    events = await Activity.objects.acount() - before
    conversation = await Conversation.objects.alatest("pk")

    ko_frames = "".join(await receive_all(korean))
    en_frames = "".join(await receive_all(english))
    browser_frames = "".join(await receive_all(korean_browser))
    row = f'id="conv-{conversation.pk}"'
    assert row in ko_frames and row in en_frames and row in browser_frames
    assert '<span class="status">봇</span>' in ko_frames
    assert '<span class="status">봇</span>' in browser_frames
    assert '<span class="status">Bot</span>' in en_frames and "봇" not in en_frames
    # Rendered once per event and language, not once per tab.
    assert len(renders) == events * len(settings.LANGUAGES)

    # The open conversation's header and audit line, live.
    for tab in (korean, english, korean_browser):
        await tab.disconnect()
    korean = await _tab(minji, f"conversation={conversation.pk}", "en")
    english = await _tab(bob, f"conversation={conversation.pk}", "en")
    alice = await sync_to_async(create_user)(role="agent", username="alice")
    await sync_to_async(conversation.take_over)(alice)

    ko_frames = "".join(await receive_all(korean))
    en_frames = "".join(await receive_all(english))
    assert 'id="conversation-header"' in ko_frames
    assert "담당: <strong>alice</strong>" in ko_frames
    assert "alice님이 대화를 인수함" in ko_frames
    assert ">대화 인수<" not in ko_frames  # hers now: no take-over button
    assert "Owned by <strong>alice</strong>" in en_frames
    assert "alice took over" in en_frames
    assert "함께 보는 중: bob" in ko_frames or "Also here: minji" in en_frames
    for tab in (korean, english):
        await tab.disconnect()


def test_an_event_carries_every_language_and_stays_json() -> None:
    import json

    post_webhook(message_event(session_id=session_key()))
    activity = Activity.objects.select_related(
        "conversation", "message__conversation"
    ).latest("pk")
    event = json.loads(json.dumps(live.event_for(activity)))
    assert "Bot" in event["row"]
    korean = live.localized(event, "ko")
    assert "봇" in korean["row"] and korean["seq"] == event["seq"]
    assert live.localized(event, "en")["row"] == event["row"]


def test_presence_and_notices_speak_the_tabs_language() -> None:
    assert "함께 보는 중: bob" in live.render_presence(
        4, viewers=["bob"], typing=[], language="ko"
    )
    assert "Also here: bob" in live.render_presence(
        4, viewers=["bob"], typing=[], language="en"
    )
    event = {
        "seq": 9, "kind": "status_changed", "conversation": 4, "assignee": 7,
        "assigned_by": "Auto-assign", "auto_assigned": True, "customer": "",
        "row": "", "to_top": False, "item": "", "header": "",
        "platform": "telegram", "status": "human", "escalations": None,
    }  # fmt: skip
    view = live.View(user_id=7)
    assert '자동 배정으로 <a href="/inbox/c/4/">고객</a> 대화가' in live.frame(
        [event], view=view, seq=9, unread={}, language="ko"
    )
    assert "Auto-assign assigned you <a" in live.frame(
        [event], view=view, seq=9, unread={}, language="en"
    )
