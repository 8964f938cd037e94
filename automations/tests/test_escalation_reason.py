"""An automation's escalation names its trigger, never the pattern that matched:
patterns are staff configuration, and long enough to widen a phone's page."""

from __future__ import annotations

import pytest
from django.test import Client

from automations import engine
from automations.models import Trigger
from core.models import Profile
from core.testing import create_user, message_event, post_webhook, session_key
from inbox.models import Activity, Conversation, Message

pytestmark = pytest.mark.django_db

PATTERN = r"\b(angry|furious|terrible|worst|awful|disappointed|unacceptable)\b"


def _client(user) -> Client:  # noqa: ANN001
    client = Client()
    client.force_login(user)
    return client


def _inbound(text: str) -> Message:
    post_webhook(message_event(session_id=session_key(), text=text))
    return Message.objects.select_related("conversation").latest("pk")


def _pages(conversation: Conversation, user) -> list[str]:  # noqa: ANN001
    client = _client(user)
    return [
        client.get(f"/inbox/c/{conversation.pk}/").content.decode(),
        client.get("/inbox/queue/").content.decode(),
    ]


def test_a_trigger_escalates_in_its_name_and_the_pattern_is_not_stored() -> None:
    Trigger.objects.create(
        name="Upset customer", patterns=[PATTERN], actions=[{"type": "escalate"}]
    )
    message = _inbound("This is unacceptable")
    engine.forget()
    engine.run_for_message(message)

    conversation = Conversation.objects.get(pk=message.conversation_id)
    assert conversation.status == "escalated"
    assert conversation.escalation_reason == "trigger “Upset customer”"
    activity = Activity.objects.filter(conversation=conversation).latest("pk")
    assert activity.data["reason"] == "trigger “Upset customer”"
    assert activity.summary == (
        "escalated to the queue by system (trigger “Upset customer”)"
    )
    for html in _pages(conversation, create_user(role="agent")):
        assert "trigger “Upset customer”" in html
        assert "furious" not in html


def test_a_reason_stored_with_its_pattern_shows_the_name_alone() -> None:
    """Rows from before: the pattern stays in the database, not on the page."""
    conversation = _inbound("hello").conversation
    conversation.escalate(reason=f"trigger “Upset customer”: {PATTERN}")
    conversation.refresh_from_db()
    assert conversation.escalation_reason_shown == "trigger “Upset customer”"
    activity = Activity.objects.filter(conversation=conversation).latest("pk")
    assert activity.summary == (
        "escalated to the queue by system (trigger “Upset customer”)"
    )
    korean = create_user(role="agent")
    Profile.objects.create(user=korean, language="ko")
    for html in _pages(conversation, korean):
        assert "“Upset customer” 트리거" in html
        assert "furious" not in html and "trigger “" not in html
