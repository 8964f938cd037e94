"""The API's write endpoints: the buttons' rules, row locks and refusals."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from core.testing import (
    create_user,
    message_event,
    post_action,
    post_webhook,
    session_key,
)
from inbox.models import Conversation, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation() -> Conversation:
    post_webhook(message_event(session_id=session_key(), text="환불 해주세요"))
    return Conversation.objects.get()


def _api(user: Any | None) -> Client:
    client = Client()
    if user is not None:
        key = Token.objects.get_or_create(user=user)[0].key
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {key}"
    return client


def test_an_agent_replies_takes_over_hands_back_tags_and_resolves(
    conversation: Conversation,
) -> None:
    alice = create_user(role="agent", username="alice")
    api = _api(alice)
    answer = post_action(api, conversation, "reply", text="도와드릴게요")
    assert answer.status_code == 201, answer.content
    assert answer.json()["deliveryState"] == "queued"
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == ("human", alice)

    note = post_action(api, conversation, "reply", text="VIP", note=True)
    assert note.status_code == 201 and note.json()["kind"] == "note"
    assert post_action(api, conversation, "tags", tag="환불").json()["channelInfo"][
        "tags"
    ] == ["환불"]
    back = post_action(api, conversation, "hand-back", to="queue")
    assert back.status_code == 200 and back.json()["status"] == "escalated"
    assert post_action(api, conversation, "take-over").json()["assignee"] == "alice"
    assert post_action(api, conversation, "snooze", until_reply=True).json()[
        "status"
    ] == ("snoozed")
    assert post_action(api, conversation, "resolve").json()["status"] == "resolved"


def test_another_agents_conversation_is_refused_as_on_the_page(
    conversation: Conversation,
) -> None:
    alice = create_user(role="agent", username="alice")
    bob = create_user(role="agent", username="bob")
    conversation.take_over(alice)
    bobs = _api(bob)
    answer = post_action(bobs, conversation, "reply", text="mine now")
    assert (
        answer.status_code == 409
        and "already taken by alice" in answer.json()["detail"]
    )
    assert post_action(bobs, conversation, "resolve").status_code == 403
    assert post_action(bobs, conversation, "take-over").status_code == 409
    # A note is anyone's; taking it from the owner he saw works, as the button.
    assert (
        post_action(bobs, conversation, "reply", text="fyi", note=True).status_code
        == 201
    )
    taken = post_action(bobs, conversation, "take-over", from_owner="alice")
    assert taken.status_code == 200 and taken.json()["assignee"] == "bob"
    assert not Message.objects.filter(author="agent", text="mine now").exists()


def test_assigning_is_for_leads_and_names_an_agent(conversation: Conversation) -> None:
    alice = create_user(role="agent", username="alice")
    lead = create_user(role="lead", username="lena")
    assert (
        post_action(_api(alice), conversation, "assign", agent="alice").status_code
        == 403
    )
    unknown = post_action(_api(lead), conversation, "assign", agent="nobody")
    assert unknown.status_code == 400 and "agent" in unknown.json()
    done = post_action(_api(lead), conversation, "assign", agent="alice")
    assert done.status_code == 200 and done.json()["assignee"] == "alice"
    conversation.refresh_from_db()
    assert conversation.is_locked


@pytest.mark.parametrize(
    ("who", "status"),
    [("anonymous", 401), ("no role", 403), ("revoked", 401)],
)
def test_who_may_not_write_at_all(
    conversation: Conversation, who: str, status: int
) -> None:
    if who == "anonymous":
        api = _api(None)
    elif who == "no role":
        api = _api(create_user(role=None))
    else:
        user = create_user(role="agent")
        api = _api(user)
        Token.objects.filter(user=user).delete()
    assert post_action(api, conversation, "take-over").status_code == status
    conversation.refresh_from_db()
    assert conversation.status == "bot"


def test_bad_input_is_a_400_naming_it(conversation: Conversation) -> None:
    api = _api(create_user(role="agent"))
    assert "text" in post_action(api, conversation, "reply", text="   ").json()
    assert post_action(api, conversation, "snooze").status_code == 400
    assert (
        post_action(
            api, conversation, "snooze", minutes=5, until_reply=True
        ).status_code
        == 400
    )
    assert post_action(api, conversation, "hand-back", to="nowhere").status_code == 400
    assert post_action(api, conversation, "tags", tag="no spaces").status_code == 400
    missing = _api(create_user(role="agent")).post(
        "/api/conversations/agent:main:nope/resolve/",
        {},
        content_type="application/json",
    )
    assert missing.status_code == 404


def test_the_docs_page_needs_what_the_api_needs() -> None:
    assert Client().get("/api/docs/").status_code in (401, 403)
    nobody = Client()
    nobody.force_login(create_user(role=None))
    assert nobody.get("/api/docs/").status_code == 403
    agent = Client()
    agent.force_login(create_user(role="agent"))
    page = agent.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<style" not in html and "swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    script = agent.get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()
