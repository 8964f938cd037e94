"""The JSON API masks personal data for users without view_personal_data:
message texts, customer names and contact fields. The web inbox does not."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.authtoken.models import Token

from core.testing import create_user, message_event, post_webhook, session_key

pytestmark = pytest.mark.django_db

TEXT = "번호는 010-1234-5678 이고 카드는 4111 1111 1111 1111, 메일 minji@example.com"


def api_for(user: Any) -> Client:
    token = Token.objects.create(user=user)
    return Client(headers={"Authorization": f"Token {token.key}"})


def grant(user: Any) -> None:
    user.user_permissions.add(
        Permission.objects.get(
            codename="view_personal_data", content_type__app_label="core"
        )
    )


@pytest.fixture
def session() -> str:
    key = session_key()
    post_webhook(
        message_event(
            session_id=key,
            text=TEXT,
            senderName="김민지",
            senderId="+821012345678",
            channelInfo={
                "username": "minji_k",
                "displayName": "김민지",
                "tags": ["vip"],
            },
        )
    )
    return key


def test_an_agent_without_the_permission_reads_masked_data(session: str) -> None:
    api = api_for(create_user(role="agent"))
    conversation = api.get("/api/conversations/").json()["results"][0]
    assert conversation["sessionId"] == session  # the resource's address
    assert conversation["customerName"] == "[name]"
    assert conversation["customerId"] == "[phone]"
    assert "010-1234-5678" not in conversation["lastMessagePreview"]
    assert conversation["channelInfo"]["username"] == "[name]"
    assert conversation["channelInfo"]["displayName"] == "[name]"
    assert conversation["channelInfo"]["tags"] == ["vip"]

    message = api.get(f"/api/conversations/{session}/messages/").json()["results"][0]
    assert message["text"] == "번호는 [phone] 이고 카드는 [card], 메일 [email]"
    assert message["sender"] == "[name]"


def test_a_user_granted_the_permission_reads_data_as_written(session: str) -> None:
    agent = create_user(role="agent")
    grant(agent)
    api = api_for(agent)
    conversation = api.get("/api/conversations/").json()["results"][0]
    assert conversation["customerName"] == "김민지"
    assert conversation["customerId"] == "+821012345678"
    assert conversation["channelInfo"]["username"] == "minji_k"
    message = api.get(f"/api/conversations/{session}/messages/").json()["results"][0]
    assert message["text"] == TEXT
    assert message["sender"] == "김민지"


def test_action_answers_are_masked_too(session: str) -> None:
    agent = create_user(role="agent")
    api = api_for(agent)
    response = api.post(f"/api/conversations/{session}/take-over/", {})
    assert response.status_code == 200, response.content
    assert response.json()["customerName"] == "[name]"
    response = api.post(
        f"/api/conversations/{session}/reply/",
        {"text": "Call us on 02-123-4567"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["text"] == "Call us on [phone]"
    assert response.json()["sender"] == agent.get_username()  # not a customer


def test_the_web_inbox_shows_the_text_as_written(session: str) -> None:
    from inbox.models import Conversation

    client = Client()
    client.force_login(create_user(role="agent"))
    pk = Conversation.objects.get(session_id=session).pk
    html = client.get(f"/inbox/c/{pk}/").content.decode()
    assert "010-1234-5678" in html
