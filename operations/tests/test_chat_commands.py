"""Ops commands typed in a chat: signed webhooks and the gateway connector in,
a real Dramatiq worker runs them, answers go out through the simulated
gateway. Nothing is mocked."""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from automations.models import Trigger, TriggerRun
from core.testing import (
    create_user,
    drain,
    message_event,
    post_webhook,
    wait_for,
)
from inbox.models import Conversation, Message, WebhookDelivery
from inbox.simulated_gateway import GatewayServer
from operations import logs
from operations.models import ChatCommand, CommandSender

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = "777001"
ADMIN_KEY = f"agent:main:telegram:direct:{ADMIN}"
PRINT_ARGV = [sys.executable, "-c", "import sys; print('ok', sys.argv[1:])"]


@pytest.fixture(autouse=True)
def ops_settings(settings: Any) -> Any:
    settings.OPS_COMMAND_SENDERS = [f"telegram:{ADMIN}"]
    settings.OPS_COMMANDS = {
        "hello": {"argv": PRINT_ARGV, "timeout": 20},
        "slow": {
            "argv": [sys.executable, "-c", "import time; time.sleep(10)"],
            "timeout": 0.5,
        },
        "deploy": {
            "argv": [sys.executable, "-c", "print('deployed')"],
            "timeout": 20,
        },
    }
    logs.clear()
    return settings


def send(
    text: str,
    *,
    sender: str = ADMIN,
    session: str = ADMIN_KEY,
    message_id: str | None = None,
) -> Any:
    """A chat message from ``sender`` as a signed webhook; the response."""
    event = message_event(
        session_id=session, text=text, senderId=sender, message_id=message_id
    )
    response = post_webhook(event)
    assert response.status_code == 200, response.content
    return response


def replies(gateway: GatewayServer, session: str = ADMIN_KEY) -> list[str]:
    return [s.text for s in gateway.received if s.session_key == session]


def run(worker: Any) -> None:
    drain(worker, "ops", "default", "automations", "replies", rounds=3)


def test_an_admins_status_is_answered_in_the_chat_and_stored_as_nothing(
    gateway: GatewayServer, worker: Any
) -> None:
    Trigger.objects.create(
        name="anything", patterns=["status"], actions=[{"type": "escalate"}]
    )
    response = send("/status")
    assert response.json() == {"status": "ignored"}
    run(worker)
    [reply] = replies(gateway)
    assert reply.startswith("Queues:") and "Open escalations: 0" in reply
    assert Message.objects.count() == 0
    assert Conversation.objects.count() == 0  # the admin's chat is not a customer's
    assert TriggerRun.objects.count() == 0
    command = ChatCommand.objects.get()
    assert (command.name, command.outcome, command.platform) == (
        "status",
        "ran",
        "telegram",
    )
    assert command.replied_at is not None and command.reply_attempts == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.outcome, delivery.error) == ("ignored", "ops command")


def test_a_stranger_typing_deploy_is_a_customer_message_and_runs_nothing(
    gateway: GatewayServer, worker: Any
) -> None:
    Trigger.objects.create(
        name="deploy words", patterns=["deploy"], actions=[{"type": "escalate"}]
    )
    stranger = "agent:main:telegram:direct:555"
    send("/deploy", sender="555", session=stranger)
    run(worker)
    assert ChatCommand.objects.count() == 0
    message = Message.objects.get()
    assert (message.text, message.author) == ("/deploy", "customer")
    assert TriggerRun.objects.filter(message=message).count() == 1  # as usual
    assert Conversation.objects.get().status == "escalated"
    assert replies(gateway, stranger) == []


def test_a_sender_added_in_the_admin_may_send_commands(
    gateway: GatewayServer, worker: Any
) -> None:
    CommandSender.objects.create(platform="telegram", sender_id="4242")
    send("/help", sender="4242", session="agent:main:telegram:direct:4242")
    run(worker)
    [reply] = replies(gateway, "agent:main:telegram:direct:4242")
    assert "/logs [N]" in reply and "/hello: runs a fixed program" in reply
    assert Message.objects.count() == 0


def test_a_redelivered_command_is_recorded_and_run_once(
    gateway: GatewayServer, worker: Any
) -> None:
    send("/hello", message_id="m-1")
    send("/hello", message_id="m-1")
    run(worker)
    send("/hello", message_id="m-1")  # after it ran, too
    run(worker)
    command = ChatCommand.objects.get()
    assert command.outcome == "ran" and command.output.startswith("ok")
    assert len(replies(gateway)) == 1
    assert (
        list(WebhookDelivery.objects.values_list("outcome", flat=True))
        == ["ignored"] * 3
    )


def test_a_program_runs_with_its_fixed_argv_and_the_senders_words_never_reach_it(
    gateway: GatewayServer, worker: Any
) -> None:
    send("/hello; rm -rf / $(reboot)")
    run(worker)
    command = ChatCommand.objects.get()
    assert command.name == "hello"
    assert command.args == [";", "rm", "-rf", "/", "$(reboot)"]  # recorded only
    assert (command.outcome, command.exit_code) == ("ran", 0)
    assert command.output == "ok []\n"  # argv unchanged: no extra arguments
    assert command.output_length == len("ok []\n")
    assert command.seconds is not None and command.seconds >= 0
    assert replies(gateway) == ["/hello exited 0:\nok []\n"]


def test_a_program_past_its_timeout_is_recorded_as_timed_out(
    gateway: GatewayServer, worker: Any
) -> None:
    send("/slow")
    run(worker)
    command = ChatCommand.objects.get()
    assert (command.outcome, command.exit_code) == ("timed_out", None)
    assert command.seconds is not None and command.seconds < 5
    assert replies(gateway) == ["/slow timed out after 0.5 s."]


def test_an_unknown_command_is_refused_with_a_pointer_to_help(
    gateway: GatewayServer, worker: Any
) -> None:
    send("/reboot now")
    run(worker)
    command = ChatCommand.objects.get()
    assert (command.outcome, command.reason) == ("refused", "unknown command")
    assert replies(gateway) == ["Unknown command /reboot. Send /help for the list."]


def _code(reply: str) -> str:
    return reply.split("/confirm ", 1)[1].split()[0]


def test_deploy_runs_only_after_the_same_sender_confirms_its_code_in_time(
    gateway: GatewayServer, worker: Any, settings: Any
) -> None:
    other = "777002"
    settings.OPS_COMMAND_SENDERS = [f"telegram:{ADMIN}", f"telegram:{other}"]
    send("/deploy")
    run(worker)
    deploy = ChatCommand.objects.get()
    assert deploy.outcome == "needs_confirmation"
    assert (deploy.exit_code, deploy.output) == (None, "")  # nothing ran
    [ask] = replies(gateway)
    code = _code(ask)
    assert ask == f"/deploy needs a confirmation: send /confirm {code} within 60 s."
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    send(f"/confirm {wrong}")
    # Another admin repeating the right code confirms nothing of this one.
    send(
        f"/confirm {code}", sender=other, session=f"agent:main:telegram:direct:{other}"
    )
    run(worker)
    deploy.refresh_from_db()
    assert deploy.outcome == "needs_confirmation" and deploy.output == ""
    refusals = ChatCommand.objects.filter(name="confirm").order_by("pk")
    assert [(c.outcome, c.reason) for c in refusals] == [
        ("refused", "wrong confirmation code"),
        ("refused", "nothing is waiting for a confirmation"),
    ]
    send(f"/confirm {code}")
    send(f"/confirm {code}")  # twice: it runs once
    run(worker)
    deploy.refresh_from_db()
    assert (deploy.outcome, deploy.output) == ("ran", "deployed\n")
    assert sorted(replies(gateway)) == sorted(
        [
            ask,
            "Refused: wrong confirmation code.",
            "Confirmed: running /deploy.",
            "Refused: nothing is waiting for a confirmation.",
            "/deploy exited 0:\ndeployed\n",
        ]
    )
    assert [c.outcome for c in ChatCommand.objects.filter(confirms=deploy)] == [
        "refused",
        "confirmed",
    ]


def test_a_code_sent_after_sixty_seconds_is_refused_and_the_deploy_expires(
    gateway: GatewayServer, worker: Any
) -> None:
    send("/deploy")
    run(worker)
    deploy = ChatCommand.objects.get()
    code = deploy.confirm_code
    assert deploy.expires_at is not None
    assert timedelta(seconds=59) < deploy.expires_at - deploy.received_at
    assert deploy.expires_at - deploy.received_at < timedelta(seconds=61)
    # The clock moves on: the code was due a second ago.
    ChatCommand.objects.filter(pk=deploy.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    send(f"/confirm {code}")
    run(worker)
    deploy.refresh_from_db()
    assert (deploy.outcome, deploy.output) == ("expired", "")
    confirm = ChatCommand.objects.get(name="confirm")
    assert (confirm.outcome, confirm.reason) == (
        "refused",
        "the confirmation code expired",
    )
    assert replies(gateway)[-1] == "Refused: the confirmation code expired."


def test_logs_returns_the_last_error_lines_masked(
    gateway: GatewayServer, worker: Any
) -> None:
    log = logging.getLogger("ops.test")
    for n in range(8):
        log.error("payment %s failed for kim.minjun@example.com", n)
    log.warning("not an error")
    send("/logs 5")
    run(worker)
    [reply] = replies(gateway)
    lines = reply.splitlines()
    assert lines[0] == "The last 5 error lines:"
    assert [line.split(" failed")[0].rsplit(" ", 1)[1] for line in lines[1:]] == [
        "3",
        "4",
        "5",
        "6",
        "7",
    ]
    assert "example.com" not in reply and "[email]" in reply
    assert "not an error" not in reply


def test_a_gateway_that_is_down_is_retried_and_the_page_shows_it(
    gateway: GatewayServer, worker: Any, settings: Any
) -> None:
    gateway.fail_next(2, status=503)
    send("/help")
    run(worker)
    command = wait_for(
        lambda: ChatCommand.objects.filter(replied_at__isnull=False).first(),
        30,
        "the reply after retries",
    )
    assert command.reply_attempts == 3 and command.reply_error == ""
    assert len(replies(gateway)) == 1


# -- the connector -----------------------------------------------------------------


def test_the_connector_takes_an_admins_command_and_stores_no_conversation(
    gateway: GatewayServer, connector: Any, worker: Any
) -> None:
    gateway.customer_writes(ADMIN_KEY, "/hello", sender_id=ADMIN, bot=False)
    wait_for(lambda: ChatCommand.objects.exists(), what="the command")
    run(worker)
    wait_for(lambda: replies(gateway), what="the answer")
    command = ChatCommand.objects.get()
    assert (command.outcome, command.output) == ("ran", "ok []\n")
    # The answer's echo comes back through the feed: known, not stored either.
    gateway.customer_writes("agent:main:telegram:direct:1", "hi")
    wait_for(lambda: Message.objects.filter(author="bot").exists(), what="a customer")
    assert Message.objects.filter(conversation__session_id=ADMIN_KEY).count() == 0
    assert ChatCommand.objects.count() == 1


def test_the_connector_keeps_the_transcript_position_past_a_command(
    gateway: GatewayServer, connector: Any, worker: Any
) -> None:
    gateway.customer_writes(ADMIN_KEY, "hello, just testing", sender_id=ADMIN)
    wait_for(lambda: Message.objects.count() == 2, what="the admin's chat")
    row = gateway.customer_writes(ADMIN_KEY, "/help", sender_id=ADMIN, bot=False)
    assert row is not None
    # Stored as nothing, yet the position moves past it (and past its answer's
    # echo): the next row is no gap to fetch again.
    wait_for(lambda: replies(gateway), what="the answer")
    wait_for(
        lambda: Conversation.objects.get().gateway_seq == row["messageSeq"] + 1,
        what="the position past the answer",
    )
    last = gateway.customer_writes(ADMIN_KEY, "thanks", sender_id=ADMIN, bot=False)
    assert last is not None
    wait_for(lambda: Message.objects.count() == 3, what="the next message")
    conversation = Conversation.objects.get()
    assert conversation.gateway_seq == last["messageSeq"]
    assert list(
        conversation.messages.order_by("pk").values_list("text", flat=True)
    ) == ["hello, just testing", "bot: hello, just testing", "thanks"]
    assert ChatCommand.objects.get().outcome == "ran"


# -- the audit page ---------------------------------------------------------------


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(create_user(role="admin"))
    return client


def test_the_audit_page_lists_commands_for_admins_only_escaped(
    admin_client: Client, worker: Any, gateway: GatewayServer, settings: Any
) -> None:
    settings.OPS_COMMANDS = {
        "html": {
            "argv": [sys.executable, "-c", "print('<script>alert(1)</script>')"],
            "timeout": 20,
        }
    }
    send("/html")
    send("/nope")
    run(worker)
    page = admin_client.get("/system/commands/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert "/html" in html and "/nope" in html
    refused = admin_client.get(
        "/system/commands/?outcome=refused",
        headers={"HX-Request": "true", "HX-Target": "command-table"},
    )
    body = refused.content.decode()
    assert "/nope" in body and "/html</code>" not in body
    assert "<html" not in body  # the region alone
    for role in ("agent", "lead"):
        client = Client()
        client.force_login(create_user(role=role))
        assert client.get("/system/commands/").status_code == 403


@pytest.mark.postgres
def test_postgres_two_deliveries_at_once_record_one_command(
    gateway: GatewayServer, worker: Any
) -> None:
    import threading

    from django.db import close_old_connections

    answers: list[int] = []

    def deliver() -> None:
        try:
            answers.append(send("/hello", message_id="twin").status_code)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    run(worker)
    assert answers == [200, 200]
    assert ChatCommand.objects.count() == 1
    assert len(replies(gateway)) == 1


def test_digest_answers_with_today_so_far(gateway: GatewayServer, worker: Any) -> None:
    post_webhook(message_event(text="where is my parcel?"))
    send("/digest")
    run(worker)
    [reply] = replies(gateway)
    assert ChatCommand.objects.get().outcome == "ran"
    assert "so far" in reply.splitlines()[0].lower()


def test_an_admins_command_in_a_group_chat_is_an_ordinary_message(
    gateway: GatewayServer, worker: Any
) -> None:
    group = "agent:main:telegram:group:-100200300"
    send("/status", session=group)  # the answer would reach everyone in it
    run(worker)
    assert ChatCommand.objects.count() == 0
    assert Message.objects.get().text == "/status"
    assert replies(gateway, group) == []


def test_the_heartbeat_expires_unconfirmed_commands_and_frees_stuck_ones() -> None:
    from operations.tasks import STUCK_AFTER, ops_heartbeat

    now = timezone.now()
    common = {"platform": "telegram", "sender_id": ADMIN, "session_key": ADMIN_KEY}
    waiting = ChatCommand.objects.create(
        **common,
        gateway_message_id="a",
        name="deploy",
        outcome="needs_confirmation",
        confirm_code="123456",
        expires_at=now - timedelta(seconds=1),
    )
    fresh = ChatCommand.objects.create(
        **common,
        gateway_message_id="b",
        name="deploy",
        outcome="needs_confirmation",
        confirm_code="654321",
        expires_at=now + timedelta(seconds=30),
    )
    stuck = ChatCommand.objects.create(
        **common,
        gateway_message_id="c",
        name="hello",
        outcome="running",
        started_at=now - STUCK_AFTER - timedelta(seconds=1),
    )
    ops_heartbeat()
    outcomes = dict(ChatCommand.objects.values_list("pk", "outcome"))
    assert outcomes == {
        waiting.pk: "expired",
        fresh.pk: "needs_confirmation",
        stuck.pk: "failed",
    }


def test_a_command_written_long_before_it_arrives_is_refused_not_run_late(
    gateway: GatewayServer, worker: Any
) -> None:
    # As a connector catching up after the inbox was down would bring it.
    written = timezone.now() - timedelta(minutes=11)
    event = message_event(
        session_id=ADMIN_KEY,
        text="/hello",
        senderId=ADMIN,
        timestamp=int(written.timestamp() * 1000),
    )
    assert post_webhook(event).json() == {"status": "ignored"}
    run(worker)
    command = ChatCommand.objects.get()
    assert (command.outcome, command.output, command.exit_code) == ("refused", "", None)
    assert command.reason == "sent too long ago (caught up late)"
    assert replies(gateway) == [
        "/hello was sent too long ago; send it again to run it."
    ]


def test_the_audit_page_shows_each_reply_escaped_and_masked_where_it_carries_logs(
    admin_client: Client, worker: Any, gateway: GatewayServer, caplog: Any
) -> None:
    logging.getLogger("ops.test").error("<b>refund</b> for kim.minjun@example.com")
    with caplog.at_level("INFO", logger="inbox.simulated_gateway"):
        send("/status")
        send("/logs 1")
        run(worker)
    status_cmd = ChatCommand.objects.get(name="status")
    logs_cmd = ChatCommand.objects.get(name="logs")
    html = admin_client.get("/system/commands/").content.decode()
    row = html.split(f'id="command-{status_cmd.pk}"', 1)[1].split("</tr>", 1)[0]
    assert f'<details class="ops-reply" id="reply-{status_cmd.pk}">' in row
    assert "Queues:" in row and "Open escalations: 0" in row
    row = html.split(f'id="command-{logs_cmd.pk}"', 1)[1].split("</tr>", 1)[0]
    assert "&lt;b&gt;refund&lt;/b&gt; for [email]" in row
    assert "example.com" not in row and "<b>refund" not in row
    # The simulated gateway logged each send: where and how long, no text.
    sent = [r.getMessage() for r in caplog.records if r.name.endswith("gateway")]
    assert f"send to telegram:{ADMIN}, {len(status_cmd.reply_text)} chars" in sent
    assert f"send to telegram:{ADMIN}, {len(logs_cmd.reply_text)} chars" in sent
    assert not any("Queues" in line or "refund" in line for line in sent)


def test_the_simulated_gateway_logs_each_send_without_its_text(
    gateway: GatewayServer, caplog: Any
) -> None:
    from inbox import gateway as gateway_client

    webchat = "agent:main:webchat:direct:visitor-1"
    gateway.customer_writes(webchat, "hello")
    client = gateway_client.client()
    with caplog.at_level("INFO", logger="inbox.simulated_gateway"):
        client.send_to("telegram", "-100123", "d" * 312, idempotency_key="digest-1")
        client.send_message(webchat, "private words", idempotency_key="inbox-9")
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("gateway")]
    assert "send to telegram:-100123, 312 chars" in lines
    assert f"chat.inject into {webchat}, 13 chars" in lines
    assert not any("private words" in line or "ddd" in line for line in lines)


@pytest.mark.postgres  # the recent error lines live in the real Redis
def test_recent_errors_follow_the_redis_url_of_the_moment(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client made while a test pointed REDIS_URL at a dead port (the health
    # check's test) must not be the one every later test gets.
    monkeypatch.setattr(logs, "_redis", None)  # as in a fresh process
    real = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    logging.getLogger("openclaw.test").error("while Redis was elsewhere")
    settings.REDIS_URL = real
    logs.clear()
    logs.remember("after")
    assert [line for _, line in logs.recent(5)] == ["after"]
