"""The inbox against the real OpenClaw gateway (``openclaw@2026.9.6`` from npm).

One real gateway for the test session (the root conftest's ``real_gateway``:
``inbox.devgateway.RealGateway`` with a stub model, a fake Telegram and the inbox
plugin loaded), the product's own connector and
client, a real database and Dramatiq worker. Customers write through the fake
Telegram API or as webchat clients (``chat.send``); what the bot "thinks" is
counted at the stub model, what customers receive at the fake Telegram.

Marked ``gateway``: deselect with ``-m "not gateway"`` without Node; CI runs
them (a failed install fails, never skips).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from websockets.sync.client import connect

from core import testing as core_testing
from core.testing import create_user, drain, post_reply
from inbox import gateway as gateway_module
from inbox import protocol
from inbox.connector import Connector
from inbox.devgateway import RealGateway
from inbox.devgateway.stub_model import default_reply
from inbox.models import Conversation, Message

pytestmark = [pytest.mark.gateway, pytest.mark.django_db(transaction=True)]

TURN = 60.0  # the first agent turn on a fresh workspace takes ~6 s


def wait_for(check: Callable[[], Any], seconds: float = TURN, what: str = "") -> Any:
    return core_testing.wait_for(check, seconds, what)


@pytest.fixture
def inbox(real_inbox: Connector) -> Connector:
    """The root conftest's ``real_inbox``: the product on the real gateway."""
    return real_inbox


def chat_id() -> int:
    return random.randrange(10**8, 10**9)


def telegram_key(chat: int) -> str:
    return f"agent:main:telegram:direct:{chat}"


def thread_of(key: str) -> list[tuple[str, str]]:
    return list(
        Message.objects.filter(conversation__session_id=key)
        .order_by("pk")
        .values_list("author", "text")
    )


def webchat_send(gateway: RealGateway, key: str, text: str) -> dict[str, Any]:
    """A webchat customer's message, as the gateway's own web client sends it."""
    with connect(gateway.ws_url, compression=None) as ws:
        from inbox.gateway import handshake

        handshake(ws, token=gateway.token, device=None, timeout=10)
        request_id, frame = protocol.request(
            "chat.send",
            {"sessionKey": key, "message": text, "idempotencyKey": str(uuid.uuid4())},
        )
        ws.send(frame)
        while True:
            answer = protocol.parse_frame(ws.recv(timeout=30))
            if answer.get("type") == "res" and answer.get("id") == request_id:
                return answer


# -- tests ---------------------------------------------------------------------------


def test_a_telegram_customer_and_the_bot_are_stored_with_name_model_and_tokens(
    real_gateway: RealGateway, inbox: Connector
) -> None:
    chat = chat_id()
    marker = uuid.uuid4().hex[:8]
    real_gateway.telegram.customer(chat, f"my parcel {marker} never came", name="Carol")
    key = telegram_key(chat)
    bot = wait_for(
        lambda: Message.objects.filter(
            conversation__session_id=key, author="bot"
        ).first(),
        what="the bot's reply",
    )
    conversation = Conversation.objects.get(session_id=key)
    assert (conversation.platform, conversation.customer_name) == ("telegram", "Carol")
    customer = conversation.messages.get(author="customer")
    assert customer.text == f"my parcel {marker} never came"
    assert bot.text == f"bot: my parcel {marker} never came"
    assert bot.ai_model == "stub-model" and bot.tokens_used
    assert len(real_gateway.model.calls_containing(marker)) == 1


def test_an_agents_reply_reaches_telegram_once_and_shows_delivered(
    real_gateway: RealGateway, inbox: Connector, worker: Any
) -> None:
    chat = chat_id()
    key = telegram_key(chat)
    real_gateway.telegram.customer(chat, "I want a human", name="Dana")
    conversation = wait_for(
        lambda: Conversation.objects.filter(session_id=key).first(), what="the chat"
    )
    alice = create_user(role="agent", username="alice")
    text = f"Alice here, refund issued {uuid.uuid4().hex[:6]}"
    message = post_reply(alice, conversation, text)
    drain(worker, "replies")
    wait_for(
        lambda: Message.objects.get(pk=message.pk).delivery_state == "delivered",
        what="delivered",
    )
    real_gateway.telegram.wait_for_sent(chat, text, timeout=30)
    # A forced resend under the same key (a worker that died mid-send) is
    # answered from the gateway's idempotency record: nothing new goes out.
    again = gateway_module.client().send_message(
        key, text, idempotency_key=message.gateway_message_id
    )
    assert again["messageId"] == Message.objects.get(pk=message.pk).metadata.get(
        "gateway_id"
    )
    time.sleep(1.0)
    assert [m.text for m in real_gateway.telegram.sent_to(chat)].count(text) == 1
    assert [t for _, t in thread_of(key)].count(text) == 1


def test_a_webchat_customer_gets_the_agents_reply_by_inject(
    real_gateway: RealGateway, inbox: Connector, worker: Any
) -> None:
    key = f"agent:main:web-{uuid.uuid4().hex[:8]}"
    answer = webchat_send(real_gateway, key, "hello, I need help with order 42")
    assert answer["ok"], answer
    conversation = wait_for(
        lambda: Conversation.objects.filter(session_id=key).first(), what="the chat"
    )
    alice = create_user(role="agent", username="alice")
    message = post_reply(alice, conversation, "Alice here: order 42 ships today")
    drain(worker, "replies")
    wait_for(
        lambda: Message.objects.get(pk=message.pk).delivery_state == "delivered",
        what="delivered",
    )
    history = gateway_module.client().history(key)
    injected = [
        m for m in history["messages"] if m.get("model") == protocol.INJECTED_MODEL
    ]
    assert len(injected) == 1
    assert protocol.content_text(injected[0]["content"])[0] == (
        "[alice]\n\nAlice here: order 42 ships today"
    )
    assert [t for _, t in thread_of(key)].count("Alice here: order 42 ships today") == 1


def test_a_takeover_stops_the_bot_before_its_model_call_and_hand_back_restarts_it(
    real_gateway: RealGateway, inbox: Connector, worker: Any
) -> None:
    """Escalation → takeover → the customer writes twice: the stub model gets
    no call for that session and the customer no bot message; the agent's
    reply still goes out; hand back → the bot answers again."""
    chat = chat_id()
    key = telegram_key(chat)
    real_gateway.telegram.customer(
        chat, "this is the worst, I want a person", name="Ha"
    )
    conversation = wait_for(
        lambda: Conversation.objects.filter(session_id=key).first(), what="the chat"
    )
    wait_for(lambda: len(real_gateway.telegram.sent_to(chat)) >= 1, what="bot")
    conversation.escalate(reason="asked for a person")
    alice = create_user(role="agent", username="alice")
    conversation.take_over(alice)
    drain(worker, "replies")
    bot_messages = len(real_gateway.telegram.sent_to(chat))
    marker = uuid.uuid4().hex[:8]
    real_gateway.telegram.customer(chat, f"hello? {marker} one", name="Ha")
    wait_for(lambda: marker in customer_text(key), what="first held message")
    real_gateway.telegram.customer(chat, f"still there {marker} two", name="Ha")
    wait_for(lambda: f"{marker} two" in customer_text(key), what="second")
    time.sleep(2.0)  # a bot turn, were one running, would have called by now
    assert real_gateway.model.calls_containing(marker) == []
    assert len(real_gateway.telegram.sent_to(chat)) == bot_messages
    assert not Message.objects.filter(
        conversation__session_id=key, author="bot", text__contains=marker
    ).exists()
    # The agent still answers through the gateway.
    message = post_reply(alice, conversation, f"Alice here {marker}")
    drain(worker, "replies")
    real_gateway.telegram.wait_for_sent(chat, f"Alice here {marker}", timeout=30)
    # Hand back: the bot answers the next message.
    conversation.hand_back(alice)
    drain(worker, "replies")
    real_gateway.telegram.customer(chat, f"thanks {marker} three", name="Ha")
    wait_for(
        lambda: real_gateway.model.calls_containing(f"{marker} three"),
        what="the bot's model call after hand back",
    )
    real_gateway.telegram.wait_for_sent(chat, f"{marker} three", timeout=60)
    message.refresh_from_db()
    assert message.delivery_state == "delivered"


def test_a_takeover_on_webchat_records_the_customer_and_calls_no_model(
    real_gateway: RealGateway, inbox: Connector, worker: Any
) -> None:
    key = f"agent:main:web-{uuid.uuid4().hex[:8]}"
    assert webchat_send(real_gateway, key, "first question")["ok"]
    conversation = wait_for(
        lambda: Conversation.objects.filter(session_id=key).first(), what="the chat"
    )
    alice = create_user(role="agent", username="alice")
    conversation.take_over(alice)
    drain(worker, "replies")
    marker = uuid.uuid4().hex[:8]
    answer = webchat_send(real_gateway, key, f"are you a human {marker}")
    assert answer["ok"], answer  # not refused, as sendPolicy deny would
    wait_for(lambda: marker in customer_text(key), what="the held message")
    time.sleep(2.0)
    assert real_gateway.model.calls_containing(marker) == []


@pytest.mark.parametrize("channel", ["telegram", "webchat"])
def test_a_takeover_during_the_bots_turn_stops_that_turn(
    real_gateway: RealGateway, inbox: Connector, worker: Any, channel: str
) -> None:
    """A takeover in the middle of the bot's turn stops that turn.

    The plugin's hook holds turns that start after the takeover; a turn
    already running would write its answer (on webchat the customer watches
    it stream in), and the gateway steers a message that arrives meanwhile
    into it (its default queue mode), past the hook: seen answered by the
    model, or, when the turn was still starting up, never written at all."""
    first, second = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    thinking, release = threading.Event(), threading.Event()

    def slow_model(text: str) -> str:
        if first in text:
            thinking.set()
            release.wait(30)
        return default_reply(text)

    chat = chat_id()
    key = telegram_key(chat) if channel == "telegram" else f"agent:main:web-{first}"

    def customer(text: str) -> None:
        if channel == "telegram":
            real_gateway.telegram.customer(chat, text, name="Mia")
        else:
            assert webchat_send(real_gateway, key, text)["ok"]

    real_gateway.model.reply = slow_model
    try:
        customer(f"where is my order {first}")
        conversation = wait_for(
            lambda: Conversation.objects.filter(session_id=key).first(), what="chat"
        )
        assert thinking.wait(TURN), "the bot's turn never called the model"
        alice = create_user(role="agent", username="alice")
        conversation.take_over(alice)
        drain(worker, "replies")
        customer(f"hello? {second}")
        release.set()
        wait_for(lambda: second in customer_text(key), what="the held message")
        time.sleep(2.0)  # a steered message would have reached the model by now
    finally:
        release.set()
        real_gateway.model.reply = default_reply
    assert real_gateway.model.calls_containing(second) == []
    assert not Message.objects.filter(
        conversation__session_id=key, author="bot"
    ).exists()
    assert real_gateway.telegram.sent_to(chat) == []


@pytest.mark.postgres
def test_a_killed_connector_and_a_restarted_gateway_lose_and_double_nothing(
    real_gateway: RealGateway, settings: Any, transactional_db: None, tmp_path: Path
) -> None:
    """SIGKILL the connector process and restart the gateway while a customer
    keeps writing: afterwards every message is stored exactly once."""
    chat = chat_id()
    key = telegram_key(chat)
    db = connection.settings_dict
    env = os.environ | {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "OPENCLAW_GATEWAY_URL": real_gateway.ws_url,
        "OPENCLAW_GATEWAY_TOKEN": real_gateway.token,
        "PYTHONUNBUFFERED": "1",  # its log survives the SIGKILL
    }

    def start() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "manage.py", "openclaw_connect"],
            cwd=Path(django_settings.BASE_DIR),
            env=env,
            start_new_session=True,
            stdout=(tmp_path / "connector.log").open("a"),
            stderr=subprocess.STDOUT,
        )

    sent: list[str] = []

    def write(n: int) -> None:
        text = f"message {n} {uuid.uuid4().hex[:6]}"
        real_gateway.telegram.customer(chat, text, name="Erik")
        sent.append(text)

    process = start()
    try:
        write(0)
        wait_for(lambda: Message.objects.filter(text=sent[0]).exists(), what="first")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        for n in range(1, 4):
            write(n)
            time.sleep(0.3)
        # Restart once the gateway holds them: a Telegram update it had fetched
        # but not yet recorded when stopped is the gateway's to lose, not ours.
        wait_for(
            lambda: all(text in gateway_recorded(real_gateway, key) for text in sent),
            what="the gateway recording what was written while no connector ran",
        )
        real_gateway.restart()
        for n in range(4, 6):
            write(n)
        process = start()
        write(6)
        wait_for(
            lambda: all(text in customer_text(key) for text in sent),
            seconds=120,
            what="every customer message stored",
        )
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    # The gateway merges messages that arrive within its debounce window
    # into one turn ("m1\nm2\nm3"): each text is in exactly one stored row.
    stored = customer_text(key)
    for text in sent:
        assert stored.count(text) == 1, (text, stored)
    ids = list(
        Message.objects.filter(conversation__session_id=key).values_list(
            "gateway_message_id", flat=True
        )
    )
    assert len(ids) == len(set(ids))
    # Stored in the transcript's order (seq), whatever came live or by catch-up.
    rows = list(
        Message.objects.filter(conversation__session_id=key, author="customer")
        .order_by("pk")
        .values_list("text", flat=True)
    )
    order = [next(i for i, text in enumerate(sent) if text in row) for row in rows]
    assert order == sorted(order)


def gateway_recorded(gateway: RealGateway, key: str) -> str:
    """The customer's words in the gateway's own transcript of ``key``."""
    client = gateway_module.OpenClawClient(gateway.ws_url, gateway.token, device=None)
    try:
        messages = client.history(key)["messages"]
    except gateway_module.GatewayError:
        return ""  # no such session yet
    finally:
        client.close()
    return "\n".join(
        protocol.content_text(m.get("content"))[0]
        for m in messages
        if m.get("role") == "user"
    )


def customer_text(key: str) -> str:
    return "\n".join(
        Message.objects.filter(
            conversation__session_id=key, author="customer"
        ).values_list("text", flat=True)
    )
