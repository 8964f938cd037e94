import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from core.testing import create_user, message_event, post_webhook, session_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> Client:
    user = create_user(is_staff=True)
    token = Token.objects.create(user=user)
    return Client(headers={"Authorization": f"Token {token.key}"})


def test_api_needs_a_token() -> None:
    assert Client().get("/api/conversations/").status_code == 401
    bad = Client(headers={"Authorization": "Token nope"})
    assert bad.get("/api/conversations/").status_code == 401


def test_conversations_newest_first_with_filters(api: Client) -> None:
    post_webhook(
        message_event(
            channel="telegram", session_id=session_key(chat="telegram"), text="첫 번째"
        )
    )
    post_webhook(
        message_event(
            channel="whatsapp", session_id=session_key(chat="whatsapp"), text="second"
        )
    )
    body = api.get("/api/conversations/").json()
    assert [c["platform"] for c in body["results"]] == ["whatsapp", "telegram"]
    assert body["results"][0]["unreadCount"] == 1
    assert body["results"][1]["lastMessagePreview"] == "첫 번째"
    only = api.get("/api/conversations/?platform=telegram").json()["results"]
    assert [c["platform"] for c in only] == ["telegram"]
    found = api.get("/api/conversations/?q=second").json()["results"]
    assert [c["platform"] for c in found] == ["whatsapp"]


def test_conversations_cursor_pages(api: Client) -> None:
    for _ in range(5):
        post_webhook(message_event(session_id=session_key()))
    first = api.get("/api/conversations/?limit=2").json()
    ids = [c["id"] for c in first["results"]]
    url = first["next"]
    while url:
        page = api.get(url).json()
        ids += [c["id"] for c in page["results"]]
        url = page["next"]
    assert len(ids) == 5 == len(set(ids))


def test_messages_oldest_first_with_raw_text(api: Client) -> None:
    session = "agent:main:telegram:dm:123456789"
    xss = '<img src=x onerror=alert(1)> & "quotes"'
    post_webhook(message_event(session_id=session, message_id=41, text=xss))
    post_webhook(
        message_event(
            session_id=session,
            message_id=42,
            text="bot",
            direction="outbound",
            aiModel="m",
            tokensUsed=3,
        )
    )
    response = api.get(f"/api/conversations/{session}/messages/")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [m["messageId"] for m in results] == ["41", "42"]
    # JSON-escaped only: the exact characters the customer typed, no HTML entities.
    assert results[0]["text"] == xss
    assert "&lt;" not in response.content.decode()
    assert (
        results[1]["direction"] == "outbound" and results[1]["deliveryState"] == "sent"
    )
    assert results[1]["tokensUsed"] == 3
    assert (
        api.get("/api/conversations/agent:main:none:dm:0/messages/").status_code == 404
    )


def test_openapi_schema_lists_the_read_endpoints(api: Client) -> None:
    response = api.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/conversations/" in paths
    assert "/api/conversations/{session_id}/messages/" in paths
