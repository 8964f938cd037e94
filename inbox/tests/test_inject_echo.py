"""A web chat reply with files comes back from ``chat.inject`` as one text (the
reply, then each file's URL on a line of its own): its echo confirms that
reply, and is never a second message.

Against the simulated gateway's real WebSocket RPC, with the connector reading
its feed, as in ``test_connector.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from core.testing import create_user, drain, wait_for
from inbox.connector import Connector
from inbox.models import Conversation, Message
from inbox.simulated_gateway import GatewayServer

pytestmark = pytest.mark.django_db(transaction=True)

WEB = "agent:main:web-5d1c0a"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
    b"\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01"
    b"\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Any) -> Any:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _reply_with_files(conversation: Conversation, text: str) -> Message:
    alice = create_user(role="agent", username="alice")
    client = Client()
    client.force_login(alice)
    answer = client.post(
        f"/inbox/c/{conversation.pk}/reply/",
        {
            "text": text,
            "attach": [
                SimpleUploadedFile("photo.png", PNG, content_type="image/png"),
                SimpleUploadedFile(
                    "invoice.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf"
                ),
            ],
        },
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200, answer.content
    return Message.objects.filter(author="agent").latest("pk")


@pytest.mark.parametrize("answer_delay", [0.5, 0.0], ids=["echo-first", "no-delay"])
def test_a_web_chat_reply_with_files_is_delivered_by_its_echo_and_stored_once(
    gateway: GatewayServer, connector: Connector, worker: Any, answer_delay: float
) -> None:
    gateway.customer_writes(WEB, "can I have my invoice?", bot=False)
    conversation = wait_for(lambda: Conversation.objects.filter(session_id=WEB).first())
    # The echo is pushed as the row is written, before the RPC's answer: with a
    # slow answer it is read while the reply is still "sending".
    gateway.slow(answer_delay)
    message = _reply_with_files(conversation, "Here is your invoice.")
    drain(worker, "replies", rounds=3)
    gateway.slow(0)
    wait_for(
        lambda: Message.objects.get(pk=message.pk).delivery_state == "delivered",
        what="delivered",
    )

    urls = [a["url"] for a in message.attachments]
    [sent] = gateway.received
    assert sent.kind == "inject"
    # What the real gateway writes for chat.inject: "[label]\n\n" + the message.
    body = "\n".join(["Here is your invoice.", *urls])
    assert (WEB, f"[alice]\n\n{body}") in gateway.delivered
    [ours] = conversation.messages.filter(direction=Message.Direction.OUTBOUND)
    assert ours.pk == message.pk
    assert (ours.sender, ours.delivery_state) == ("alice", "delivered")
    assert ours.metadata["gateway_id"] == sent.message_id
    assert not conversation.messages.filter(sender="gateway operator").exists()


def test_a_web_chat_file_without_text_is_delivered_by_its_echo_and_stored_once(
    gateway: GatewayServer, connector: Connector, worker: Any
) -> None:
    gateway.customer_writes(WEB, "send the photo please", bot=False)
    conversation = wait_for(lambda: Conversation.objects.filter(session_id=WEB).first())
    gateway.slow(0.5)
    message = _reply_with_files(conversation, "")
    drain(worker, "replies", rounds=3)
    gateway.slow(0)
    wait_for(
        lambda: Message.objects.get(pk=message.pk).delivery_state == "delivered",
        what="delivered",
    )
    assert conversation.messages.filter(direction="outbound").count() == 1
