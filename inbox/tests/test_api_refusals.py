"""The write API refuses as the buttons do: the same status and the same words
as the page for the same refusal, and an OpenAPI schema that says so."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from core.testing import (
    create_user,
    message_event,
    post_action,
    post_webhook,
    session_key,
)
from inbox.models import Conversation

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


@pytest.fixture
def bobs() -> Conversation:
    """A conversation bob took over; alice is another agent."""
    post_webhook(message_event(session_id=session_key(), text="where is my order?"))
    conversation = Conversation.objects.get()
    create_user(role="agent", username="alice")
    conversation.take_over(create_user(role="agent", username="bob"))
    return conversation


def _api(username: str) -> Client:
    """``username``'s token, as a tool calls the API."""
    client = Client()
    user = get_user_model().objects.get(username=username)
    key = Token.objects.get_or_create(user=user)[0].key
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {key}"
    return client


def _page(username: str) -> Client:
    """``username`` logged in, as the browser presses the buttons."""
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


@pytest.mark.parametrize(
    ("api_action", "body", "page_action", "form", "status"),
    [
        ("reply", {"text": "mine now"}, "reply", {"text": "mine now"}, 409),
        ("take-over", {}, "take-over", {}, 409),
        ("resolve", {}, "resolve", {}, 403),
        ("hand-back", {}, "hand-back", {}, 403),
        ("snooze", {"minutes": 30}, "snooze", {"minutes": "30"}, 403),
    ],
)
def test_another_agents_conversation_gets_the_pages_status_and_words(
    bobs: Conversation,
    api_action: str,
    body: dict[str, Any],
    page_action: str,
    form: dict[str, str],
    status: int,
) -> None:
    page = _page("alice").post(f"/inbox/c/{bobs.pk}/{page_action}/", form, headers=HX)
    answer = post_action(_api("alice"), bobs, api_action, **body)
    assert (page.status_code, answer.status_code) == (status, status)
    assert answer.json() == {"detail": "already taken by bob"}
    assert "already taken by bob" in page.content.decode()
    bobs.refresh_from_db()
    assert (bobs.status, bobs.assignee.username) == ("human", "bob")


def test_a_reply_to_a_conversation_a_lead_assigned_says_so_as_the_composer(
    bobs: Conversation,
) -> None:
    lead = create_user(role="lead", username="lena")
    bobs.assign(lead, bobs.assignee)
    page = _page("alice").post(
        f"/inbox/c/{bobs.pk}/reply/", {"text": "mine now"}, headers=HX
    )
    answer = post_action(_api("alice"), bobs, "reply", text="mine now")
    reason = "a lead assigned this conversation to bob"
    assert page.status_code == answer.status_code == 409
    assert reason in page.content.decode()
    assert answer.json() == {"detail": reason}
    # Taking it from the owner one saw does not beat a lead's lock, either way.
    taken = post_action(_api("alice"), bobs, "take-over", from_owner="bob")
    assert taken.status_code == 409


def test_taking_it_from_the_owner_one_saw_works_as_the_button(
    bobs: Conversation,
) -> None:
    taken = post_action(_api("alice"), bobs, "take-over", from_owner="bob")
    assert taken.status_code == 200 and taken.json()["assignee"] == "alice"


def test_a_snooze_until_a_past_time_says_so_in_the_pages_words(
    bobs: Conversation,
) -> None:
    bob = _api("bob")
    past = post_action(bob, bobs, "snooze", until="2020-01-01T00:00:00Z")
    assert past.status_code == 400
    assert past.json() == {"until": ["pick a time in the future"]}
    page = _page("bob").post(
        f"/inbox/c/{bobs.pk}/snooze/",
        {"minutes": "custom", "until": "2020-01-01T00:00"},
        headers=HX,
    )
    assert (
        page.status_code == 400 and "pick a time in the future" in page.content.decode()
    )

    later = (timezone.now() + timedelta(days=400)).isoformat()
    far = post_action(bob, bobs, "snooze", until=later)
    assert far.json() == {"until": ["pick a time within a year"]}
    soon = (timezone.now() + timedelta(hours=2)).isoformat()
    assert post_action(bob, bobs, "snooze", until=soon).json()["status"] == "snoozed"


def _schema() -> dict[str, Any]:
    create_user(role="agent", username="reader")
    answer = _api("reader").get("/api/schema/?format=json")
    assert answer.status_code == 200
    return answer.json()


def test_the_schema_documents_each_refusal_and_says_it_writes() -> None:
    schema = _schema()
    assert "Read-only" not in schema["info"]["description"]
    assert "reply" in schema["info"]["description"]
    base = "/api/conversations/{session_id}"
    for action in ("reply", "take-over"):
        responses = schema["paths"][f"{base}/{action}/"]["post"]["responses"]
        assert "already taken by" in responses["409"]["description"]
        assert "another agent" not in responses["403"]["description"]
    for action in ("resolve", "hand-back", "snooze"):
        responses = schema["paths"][f"{base}/{action}/"]["post"]["responses"]
        assert "another agent" in responses["403"]["description"]
        assert "already taken" not in responses["409"]["description"]
