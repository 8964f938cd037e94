"""Agents' replies: queued at once, sent through the gateway exactly once.

The gateway here is the simulated gateway (``gateway`` fixture): its real
WebSocket RPC on 127.0.0.1, never a mock.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from core.testing import (
    create_user,
    drain,
    message_event,
    post_webhook,
    session_key,
)
from inbox.models import Conversation, Message
from inbox.tasks import deliver_reply, resume_stalled_replies, retry_delay

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast_retries(settings):  # noqa: ANN001, ANN201
    settings.INBOX_REPLY_BACKOFF_SECONDS = 0.05
    settings.INBOX_REPLY_BACKOFF_MAX_SECONDS = 0.2
    return settings


@pytest.fixture
def one_web_slot(settings, monkeypatch):  # noqa: ANN001, ANN201
    """The web process sends replies itself, one at a time."""
    import threading

    from inbox import tasks

    settings.INBOX_SEND_FROM_WEB = True
    slots = threading.BoundedSemaphore(1)
    monkeypatch.setattr(tasks, "_web_slots", slots)
    return slots


@pytest.fixture
def alice():  # noqa: ANN201
    return create_user(role="agent", username="alice")


@pytest.fixture
def conversation() -> Conversation:
    post_webhook(message_event(session_id=session_key(), text="환불 해주세요"))
    return Conversation.objects.get()


def _reply(user, conversation: Conversation, text: str, **extra) -> Message:  # noqa: ANN001, ANN003
    client = Client()
    client.force_login(user)
    response = client.post(
        f"/inbox/c/{conversation.pk}/reply/",
        {"text": text, **extra},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200, response.content
    return Message.objects.filter(author="agent").latest("pk")


def _drain(worker) -> None:  # noqa: ANN001
    drain(worker, "replies", rounds=3)  # a retry enqueues again, with a delay


def _wait_for_state(message: Message, state: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while message.delivery_state != state and time.monotonic() < deadline:
        time.sleep(0.02)
        message.refresh_from_db()


def _work_off_replies() -> None:
    """Run a worker until the replies queue (delayed jobs too) is empty."""
    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(broker, worker_timeout=100, worker_threads=1)
    worker.start()
    try:
        drain(worker, "replies")
    finally:
        worker.stop()


def _states(message: Message) -> list[str]:
    return list(
        message.conversation.activities.filter(
            kind="message_updated", message=message
        ).values_list("data__state", flat=True)
    )


def test_a_reply_is_queued_then_sent_once_and_the_bot_is_paused(
    worker, gateway, alice, conversation
) -> None:  # noqa: ANN001
    message = _reply(alice, conversation, "환불 도와드릴게요, {not a placeholder}")
    assert message.delivery_state in ("queued", "sending", "sent")
    assert message.gateway_message_id.startswith("inbox-")
    conversation.refresh_from_db()
    # Replying to a bot conversation takes it over.
    assert conversation.status == "human" and conversation.assignee == alice

    _drain(worker)
    message.refresh_from_db()
    assert message.delivery_state == "sent" and message.attempts == 1
    [sent] = gateway.received
    assert sent.text == "환불 도와드릴게요, {not a placeholder}"
    assert sent.session_key == conversation.session_id
    assert sent.idempotency_key == message.gateway_message_id
    assert _states(message) == ["sending", "sent"]
    # The gateway was told to stop the bot for this session only.
    assert gateway.policy(conversation.session_id) == "deny"

    # Its receipt, a signed webhook, marks it delivered; a repeat is a duplicate.
    receipt = {
        "event": "status",
        "data": {
            "sessionId": conversation.session_id,
            "messageId": message.gateway_message_id,
            "status": "delivered",
        },
    }
    assert post_webhook(receipt).json()["status"] == "stored"
    assert post_webhook(receipt).json()["status"] == "duplicate"
    message.refresh_from_db()
    assert message.delivery_state == "delivered" and message.delivered_at

    conversation.hand_back(alice)
    _drain(worker)
    assert gateway.policy(conversation.session_id) == "allow"


def test_internal_notes_never_reach_the_gateway(
    worker, gateway, alice, conversation
) -> None:  # noqa: ANN001
    note = _reply(alice, conversation, "customer is a VIP", note="on")
    _drain(worker)
    note.refresh_from_db()
    assert note.kind == "note" and note.delivery_state == "received"
    assert gateway.received == [] and gateway.attempts == 0
    conversation.refresh_from_db()
    # A note takes nothing over.
    assert conversation.status == "bot" and conversation.assignee is None
    deliver_reply.fn(note.pk)  # even a stray job for it sends nothing
    assert gateway.attempts == 0


def test_a_flapping_gateway_gets_the_reply_exactly_once(
    worker, gateway, alice, conversation, fast_retries
) -> None:  # noqa: ANN001
    gateway.fail_next(2, status=503)
    message = _reply(alice, conversation, "one moment please")
    _drain(worker)
    message.refresh_from_db()
    assert message.delivery_state == "sent" and message.attempts == 3
    assert gateway.attempts == 3 and len(gateway.received) == 1
    assert _states(message) == [
        "sending", "retrying", "sending", "retrying", "sending", "sent"
    ]  # fmt: skip


def test_a_reply_waits_while_the_gateway_is_down_and_goes_out_once_back(
    worker, gateway, alice, conversation, fast_retries
) -> None:  # noqa: ANN001
    gateway.go_down()
    message = _reply(alice, conversation, "sorry for the wait")
    deadline = time.monotonic() + 10
    while message.attempts < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        message.refresh_from_db()
    assert message.delivery_state in ("retrying", "sending")
    assert "unreachable" in message.failure_reason
    assert message.state_label.startswith("retrying (") or message.attempts >= 2
    gateway.come_up()
    _drain(worker)
    message.refresh_from_db()
    assert message.delivery_state == "sent" and message.failure_reason == ""
    assert len(gateway.received) == 1


def test_a_permanent_refusal_fails_at_once_and_retry_sends_it(
    worker, gateway, alice, conversation, fast_retries
) -> None:  # noqa: ANN001
    gateway.fail_next(1, status=400)
    message = _reply(alice, conversation, "here is your refund")
    _drain(worker)
    message.refresh_from_db()
    assert message.delivery_state == "failed" and message.attempts == 1
    assert "INVALID_REQUEST" in message.failure_reason
    assert gateway.received == []

    client = Client()
    client.force_login(alice)
    html = client.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert f"/inbox/m/{message.pk}/retry/" in html  # the "Retry" button

    response = client.post(
        f"/inbox/m/{message.pk}/retry/", headers={"HX-Request": "true"}
    )
    assert response.status_code == 204
    _drain(worker)
    message.refresh_from_db()
    assert message.delivery_state == "sent" and message.attempts == 1
    assert [s.text for s in gateway.received] == ["here is your refund"]


def test_retry_after_is_honoured_and_backoff_grows(settings) -> None:  # noqa: ANN001
    settings.INBOX_REPLY_BACKOFF_SECONDS = 1.0
    settings.INBOX_REPLY_BACKOFF_MAX_SECONDS = 30.0
    assert retry_delay(1, retry_after=7) >= 7
    assert all(0.5 <= retry_delay(1) <= 1.0 for _ in range(50))
    assert all(8 <= retry_delay(5) <= 16 for _ in range(50))  # never right back
    assert max(retry_delay(6) for _ in range(200)) > 16
    assert all(retry_delay(20) <= 30 for _ in range(50))


def test_another_agents_reply_is_refused(gateway, alice, conversation) -> None:  # noqa: ANN001
    conversation.take_over(alice)
    bob = create_user(role="agent", username="bob")
    client = Client()
    client.force_login(bob)
    response = client.post(
        f"/inbox/c/{conversation.pk}/reply/",
        {"text": "me too"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 409
    assert "already taken by alice" in response.content.decode()
    assert not Message.objects.filter(author="agent").exists()


def test_an_owners_reply_costs_eleven_queries_live_push_included(
    alice, conversation, django_assert_max_num_queries
) -> None:  # noqa: ANN001
    """Session, user, role, the page's row; then one transaction: lock, message,
    conversation, its search document (PostgreSQL), activity. The live row
    names the owner without asking again, and an id made here needs no
    savepoint."""
    conversation.take_over(alice)
    client = Client()
    client.force_login(alice)
    url = f"/inbox/c/{conversation.pk}/reply/"
    client.post(url, {"text": "warm-up"}, headers={"HX-Request": "true"})
    from django.db import connection

    budget = 11 if connection.vendor == "postgresql" else 10
    with django_assert_max_num_queries(budget) as captured:
        response = client.post(url, {"text": "on it"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert not any("SAVEPOINT" in q["sql"] for q in captured.captured_queries)
    assert Message.objects.filter(author="agent", text="on it").count() == 1


def test_an_empty_or_oversized_reply_is_refused_with_the_reason(
    alice, conversation, settings
) -> None:  # noqa: ANN001
    settings.INBOX_MAX_REPLY_CHARS = 10
    client = Client()
    client.force_login(alice)
    url = f"/inbox/c/{conversation.pk}/reply/"
    response = client.post(url, {"text": "   "}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "Write a reply or attach a file." in response.content.decode()
    response = client.post(url, {"text": "x" * 11}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "at most 10 characters" in response.content.decode()
    assert not Message.objects.filter(author="agent").exists()


@pytest.mark.postgres
def test_a_worker_killed_mid_send_does_not_send_twice(
    gateway, alice, conversation, tmp_path
) -> None:  # noqa: ANN001
    """kill -9 a real worker process while the gateway holds its request.

    The job is then redelivered (here by the scheduler's sweep, which a lost
    job also meets); it sends under the same idempotency key and the gateway
    sends once.
    """
    gateway.slow(30)  # takes the message, answers only much later
    message = conversation.reply(alice, "we are on it")
    db = connection.settings_dict
    env = os.environ | {
        "DATABASE_URL": (
            f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        ),
        "OPENCLAW_GATEWAY_URL": gateway.url,
        "OPENCLAW_GATEWAY_TOKEN": gateway.token,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "rundramatiq",
            "--processes",
            "1",
            "--threads",
            "1",
            "--queues",
            "replies",
        ],  # fmt: skip
        cwd=Path(django_settings.BASE_DIR),
        env=env,
        start_new_session=True,
        stdout=(tmp_path / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while gateway.attempts < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gateway.attempts == 1, (tmp_path / "worker.log").read_text()
        message.refresh_from_db()
        assert message.delivery_state == "sending"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    gateway.slow(0)

    # Minutes later the scheduler finds it stuck in "sending" and resends.
    Message.objects.filter(pk=message.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=5)
    )
    resume_stalled_replies.fn()
    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(broker, worker_timeout=100, worker_threads=1)
    worker.start()
    try:
        # Not broker.join(): the dead worker's unacknowledged jobs still count
        # until Redis hands them back a minute later.
        _wait_for_state(message, "sent", seconds=20)
    finally:
        worker.stop()
    assert message.delivery_state == "sent" and message.attempts == 2
    assert gateway.attempts == 2
    assert [s.text for s in gateway.received] == ["we are on it"]


def test_the_web_process_sends_at_once_and_the_queued_job_does_not_resend(
    gateway,
    alice,
    conversation,
    settings,  # noqa: ANN001
) -> None:
    settings.INBOX_SEND_FROM_WEB = True
    settings.INBOX_REPLY_FALLBACK_SECONDS = 0.5
    message = _reply(alice, conversation, "right away")
    # No worker is running: only the web process's own attempt can send it.
    _wait_for_state(message, "sent")
    assert message.delivery_state == "sent"
    assert [s.text for s in gateway.received] == ["right away"]

    # The fallback job behind it finds the reply sent and does nothing.
    _work_off_replies()
    message.refresh_from_db()
    assert message.delivery_state == "sent" and message.attempts == 1
    assert gateway.attempts == 1


def test_past_its_send_slots_the_web_process_leaves_replies_to_the_worker(
    gateway,
    alice,
    conversation,
    settings,  # noqa: ANN001
    one_web_slot,  # noqa: ANN001
) -> None:
    settings.INBOX_REPLY_FALLBACK_SECONDS = 0.5
    gateway.slow(1.0)  # the first send holds the only slot for a second
    first = _reply(alice, conversation, "first, from the web")
    second = _reply(alice, conversation, "second, for the worker")

    _wait_for_state(first, "sent")
    second.refresh_from_db()
    assert first.delivery_state == "sent"
    assert second.delivery_state == "queued"  # the web process did not take it
    assert [s.text for s in gateway.received] == ["first, from the web"]

    gateway.slow(0)
    # The second reply's job, and the first one's fallback, which finds it
    # sent and does nothing.
    _work_off_replies()
    second.refresh_from_db()
    assert second.delivery_state == "sent"
    assert [s.text for s in gateway.received] == [
        "first, from the web",
        "second, for the worker",
    ]


def test_with_the_broker_down_the_web_process_still_sends_and_frees_its_slot(
    gateway,
    alice,
    conversation,
    one_web_slot,  # noqa: ANN001
    monkeypatch,  # noqa: ANN001
) -> None:
    from inbox import tasks

    def broker_down(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.deliver_reply, "send_with_options", broker_down)
    message = _reply(alice, conversation, "even without a broker")
    _wait_for_state(message, "sent")
    assert message.delivery_state == "sent"
    assert [s.text for s in gateway.received] == ["even without a broker"]
    assert one_web_slot.acquire(timeout=5)  # given back: the next reply may use it


@pytest.mark.parametrize(
    ("state", "moves"),
    [("sent", True), ("delivered", False), ("retrying", False), ("queued", False)],
)
def test_a_failed_receipt_moves_only_a_sent_reply(
    settings, alice, conversation, state: str, moves: bool
) -> None:  # noqa: ANN001
    """A receipt is about a send the gateway accepted. A replayed one (the hex
    signature has no timestamp) must not turn a delivered reply, or one being
    retried, back to failed."""
    settings.INBOX_SEND_FROM_WEB = False  # nobody sends it while the test looks
    message = conversation.auto_reply("on its way", sender="rule", metadata={})
    Message.objects.filter(pk=message.pk).update(delivery_state=state)
    receipt = {
        "event": "status",
        "data": {
            "sessionId": conversation.session_id,
            "messageId": message.gateway_message_id,
            "status": "failed",
            "error": "blocked by the customer",
        },
    }
    answer = post_webhook(receipt).json()["status"]
    message.refresh_from_db()
    assert answer == ("stored" if moves else "duplicate")
    assert message.delivery_state == ("failed" if moves else state)


@pytest.mark.parametrize("pause", [True, False])
def test_a_queued_conversation_pauses_the_bot_unless_configured_not_to(
    worker, gateway, alice, conversation, settings, pause: bool
) -> None:  # noqa: ANN001
    settings.INBOX_PAUSE_BOT_WHILE_QUEUED = pause
    conversation.escalate(reason="asked for a person")
    drain(worker, "default", "replies", rounds=3)
    conversation.refresh_from_db()
    assert conversation.status == "escalated" and conversation.is_bot_paused is pause
    assert gateway.policy(conversation.session_id) == ("deny" if pause else "allow")
    header = Client()
    header.force_login(alice)
    html = header.get(f"/inbox/c/{conversation.pk}/").content.decode()
    if pause:
        assert 'data-pause="deny"' in html and "bot held back" in html
    else:
        assert "the bot keeps answering until someone takes over" in html

    # Taken from the queue, the bot stays paused; handed back, it answers.
    conversation.take_over(alice)
    drain(worker, "default", "replies", rounds=3)
    assert gateway.policy(conversation.session_id) == "deny"
    conversation.hand_back(alice)
    drain(worker, "default", "replies", rounds=3)
    assert gateway.policy(conversation.session_id) == "allow"
