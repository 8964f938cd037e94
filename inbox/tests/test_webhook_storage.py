import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from core.testing import encode, message_event, post_webhook, session_key, sign
from inbox.models import Activity, Conversation, Message, WebhookDelivery


@pytest.mark.django_db
def test_message_creates_conversation_message_and_activity() -> None:
    session = "agent:main:telegram:dm:123456789"
    response = post_webhook(
        message_event(session_id=session, message_id=1, text="배송 언제 와요?")
    )
    assert response.json() == {"status": "stored", "messageId": "1"}
    conversation = Conversation.objects.get(session_id=session)
    assert conversation.platform == "telegram"
    assert conversation.customer_name == "김민준"
    assert conversation.customer_id == "123456789"
    assert conversation.message_count == 1 and conversation.inbound_count == 1
    assert conversation.last_message_preview == "배송 언제 와요?"
    message = conversation.messages.get()
    assert (message.direction, message.author, message.delivery_state) == (
        "inbound",
        "customer",
        "received",
    )
    kinds = list(Activity.objects.order_by("pk").values_list("kind", flat=True))
    assert kinds == ["conversation_created", "message_added"]


@pytest.mark.django_db
def test_platform_comes_from_the_session_key_when_channel_is_missing() -> None:
    payload = message_event(session_id="agent:main:whatsapp:dm:+15551234567")
    del payload["data"]["channel"]
    post_webhook(payload)
    assert Conversation.objects.get().platform == "whatsapp"


@pytest.mark.django_db
def test_duplicate_delivery_is_stored_once() -> None:
    body = encode(message_event(session_id=session_key(), message_id=7))
    first = post_webhook(body=body)
    again = post_webhook(body=body)
    assert first.json()["status"] == "stored"
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert Message.objects.count() == 1
    assert Conversation.objects.get().message_count == 1
    assert Activity.objects.filter(kind="message_added").count() == 1
    outcomes = sorted(WebhookDelivery.objects.values_list("outcome", flat=True))
    assert outcomes == ["duplicate", "stored"]


@pytest.mark.django_db
def test_same_platform_id_in_two_chats_is_two_messages() -> None:
    # Telegram numbers messages per chat: id "1" exists in every chat.
    post_webhook(message_event(session_id="agent:main:telegram:dm:1", message_id=1))
    post_webhook(message_event(session_id="agent:main:telegram:dm:2", message_id=1))
    assert Message.objects.count() == 2


@pytest.mark.django_db
def test_bot_reply_is_outbound_with_model_details_and_keeps_customer() -> None:
    session = session_key()
    post_webhook(message_event(session_id=session, message_id="in-1"))
    post_webhook(
        message_event(
            session_id=session,
            message_id="out-1",
            text="주문 내역을 확인해 볼게요.",
            direction="outbound",
            aiModel="claude-sonnet-4",
            tokensUsed=321,
            processingTimeMs=1450,
            senderName="",
            senderId="",
        )
    )
    reply = Message.objects.get(gateway_message_id="out-1")
    assert (reply.direction, reply.author, reply.delivery_state) == (
        "outbound",
        "bot",
        "sent",
    )
    assert (reply.ai_model, reply.tokens_used, reply.processing_time_ms) == (
        "claude-sonnet-4",
        321,
        1450,
    )
    conversation = Conversation.objects.get()
    assert conversation.customer_name == "김민준"
    assert conversation.inbound_count == 1 and conversation.message_count == 2


@pytest.mark.django_db
def test_status_ended_closes_and_a_new_message_reopens() -> None:
    session = session_key()
    post_webhook(message_event(session_id=session, message_id=1))
    ended = {"event": "status", "data": {"sessionId": session, "status": "ended"}}
    assert post_webhook(ended).json()["status"] == "stored"
    conversation = Conversation.objects.get()
    assert not conversation.is_active and conversation.status == "resolved"
    assert post_webhook(ended).json()["status"] == "duplicate"
    post_webhook(message_event(session_id=session, message_id=2))
    conversation.refresh_from_db()
    assert conversation.is_active and conversation.status == "bot"


@pytest.mark.django_db
def test_status_reset_adds_a_divider_once() -> None:
    session = session_key()
    reset = {"event": "status", "data": {"sessionId": session, "status": "reset"}}
    assert post_webhook(reset).json()["status"] == "stored"
    assert post_webhook(reset).json()["status"] == "duplicate"
    divider = Message.objects.get()
    assert divider.kind == "reset"


@pytest.mark.django_db
def test_media_event_stores_a_link_attachment() -> None:
    payload = {
        "event": "media",
        "data": {
            "sessionId": session_key(),
            "messageId": "m1",
            "mediaUrl": "https://media.example.com/a.jpg",
            "mediaType": "image/jpeg",
        },
    }
    assert post_webhook(payload).json()["status"] == "stored"
    message = Message.objects.get()
    assert message.kind == "media"
    assert message.attachments[0]["url"] == "https://media.example.com/a.jpg"
    assert Conversation.objects.get().last_message_preview == "📎 attachment"


@pytest.mark.django_db
def test_error_event_is_recorded_on_the_conversation() -> None:
    session = session_key()
    payload = {
        "event": "error",
        "data": {"sessionId": session, "error": "provider timeout"},
    }
    assert post_webhook(payload).json()["status"] == "stored"
    conversation = Conversation.objects.get()
    assert conversation.last_error == "provider timeout"
    assert conversation.messages.get().kind == "error"
    assert post_webhook(payload).json()["status"] == "duplicate"


@pytest.mark.django_db
def test_over_long_text_is_capped_but_kept_in_the_raw_body(settings) -> None:  # noqa: ANN001
    settings.OPENCLAW_MAX_TEXT_CHARS = 100
    text = "환불" * 200
    post_webhook(message_event(text=text))
    message = Message.objects.get()
    assert len(message.text) == 100
    assert message.metadata["truncated_from"] == 400
    assert text in WebhookDelivery.objects.get().raw_body


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_five_concurrent_duplicates_store_one_row() -> None:
    assert connection.vendor == "postgresql"
    session = session_key()
    body = encode(message_event(session_id=session, message_id="dup-1"))
    signature = sign(body)
    barrier = threading.Barrier(5)

    def deliver(_: int) -> str:
        from django.db import connection as thread_connection

        try:
            barrier.wait(timeout=10)
            return post_webhook(body=body, signature=signature).json()["status"]
        finally:
            thread_connection.close()

    with ThreadPoolExecutor(max_workers=5) as pool:
        statuses = sorted(pool.map(deliver, range(5)))
    assert statuses == ["duplicate"] * 4 + ["stored"]
    assert Message.objects.filter(gateway_message_id="dup-1").count() == 1
    assert Conversation.objects.get(session_id=session).message_count == 1
    assert Activity.objects.filter(kind="message_added").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_messages_of_a_new_session_share_one_conversation() -> None:
    session = session_key()
    bodies = [
        encode(message_event(session_id=session, message_id=f"m{i}")) for i in range(8)
    ]
    barrier = threading.Barrier(8)

    def deliver(body: bytes) -> int:
        from django.db import connection as thread_connection

        try:
            barrier.wait(timeout=10)
            return post_webhook(body=body).status_code
        finally:
            thread_connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(deliver, bodies)) == [200] * 8
    conversation = Conversation.objects.get(session_id=session)
    assert conversation.message_count == 8 == conversation.messages.count()
    assert Activity.objects.filter(kind="conversation_created").count() == 1
