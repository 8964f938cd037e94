"""Ops commands from a chat through the real OpenClaw gateway (``real_gateway``
in the root conftest: npm openclaw with a stub model, a fake Telegram and the
inbox plugin). The inbox answers an allowlisted admin's command; the plugin
keeps the gateway's agent out of it (no model call, nothing sent, no bot row).

Marked ``gateway``, like inbox/tests/test_real_gateway.py.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from core.testing import drain, wait_for
from inbox.connector import Connector
from inbox.devgateway import RealGateway
from inbox.models import Conversation, Message
from operations.models import ChatCommand, CommandSender

pytestmark = [pytest.mark.gateway, pytest.mark.django_db(transaction=True)]

TURN = 60.0


def chat_id() -> int:
    return random.randrange(10**8, 10**9)


def key_of(chat: int) -> str:
    return f"agent:main:telegram:direct:{chat}"


@pytest.fixture
def admin(settings: Any) -> int:
    """An allowlisted admin's Telegram chat, set before the connector connects."""
    chat = chat_id()
    settings.OPS_COMMAND_SENDERS = [f"telegram:{chat}"]
    return chat


@pytest.fixture
def inbox(admin: int, real_inbox: Connector) -> Connector:
    return real_inbox


def sent_to(gateway: RealGateway, chat: int) -> list[str]:
    return [m.text for m in gateway.telegram.sent_to(chat)]


def run_commands(worker: Any) -> None:
    drain(worker, "ops", "default", rounds=3)


def assert_answered_by_the_inbox_alone(
    gateway: RealGateway, worker: Any, chat: int, command: str
) -> None:
    """``command`` from ``chat`` gets the inbox's answer once; a stranger's
    same message, sent after it, is a customer message the bot answers."""
    marker = uuid.uuid4().hex[:8]
    gateway.telegram.customer(chat, f"{command} {marker}", name="Admin")
    wait_for(lambda: ChatCommand.objects.exists(), TURN, "the command")
    run_commands(worker)
    wait_for(lambda: sent_to(gateway, chat), TURN, "the inbox's answer")
    # A stranger's turn, model call and all: by its end the agent would have
    # answered the admin long ago.
    stranger = chat_id()
    gateway.telegram.customer(stranger, f"{command} {marker}-x", name="Eve")
    wait_for(
        lambda: Message.objects.filter(
            conversation__session_id=key_of(stranger), author="bot"
        ).exists(),
        TURN,
        "the bot's answer to the stranger",
    )
    wait_for(lambda: sent_to(gateway, stranger), TURN, "the stranger's answer")
    run_commands(worker)

    [answer] = sent_to(gateway, chat)  # the inbox's, and nothing from the bot
    assert "so far" in answer.splitlines()[0]
    command_row = ChatCommand.objects.get()
    assert (command_row.name, command_row.outcome) == ("digest", "ran")
    assert command_row.replied_at is not None
    # The model saw the stranger's message alone.
    assert [c.last_user_text for c in gateway.model.calls_containing(marker)] == [
        f"{command} {marker}-x"
    ]
    assert not Conversation.objects.filter(session_id=key_of(chat)).exists()
    assert not Message.objects.filter(conversation__session_id=key_of(chat)).exists()

    assert sent_to(gateway, stranger) == [f"bot: {command} {marker}-x"]
    assert list(
        Message.objects.filter(conversation__session_id=key_of(stranger))
        .order_by("pk")
        .values_list("author", "text")
    ) == [
        ("customer", f"{command} {marker}-x"),
        ("bot", f"bot: {command} {marker}-x"),
    ]


def test_an_admins_command_is_answered_by_the_inbox_once_and_never_by_the_bot(
    real_gateway: RealGateway, inbox: Connector, worker: Any, admin: int
) -> None:
    assert_answered_by_the_inbox_alone(real_gateway, worker, admin, "/digest")


def test_the_ops_namespace_reaches_the_inbox_past_the_gateways_own_commands(
    real_gateway: RealGateway, inbox: Connector, worker: Any, admin: int
) -> None:
    # /status and /help are the gateway's own: they never reach the inbox.
    assert_answered_by_the_inbox_alone(real_gateway, worker, admin, "/ops digest")


def test_a_sender_added_in_the_admin_is_kept_from_the_bot_at_once(
    real_gateway: RealGateway, inbox: Connector, worker: Any
) -> None:
    chat = chat_id()
    CommandSender.objects.create(platform="telegram", sender_id=str(chat))
    run_commands(worker)  # tells the plugin, without a reconnect
    assert_answered_by_the_inbox_alone(real_gateway, worker, chat, "/digest")
