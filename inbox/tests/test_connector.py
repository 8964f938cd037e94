"""The gateway connector against the simulated gateway's real WebSocket RPC.

Customers write on the simulated gateway; the connector (its own thread and
event loop, as inside ``manage.py serve``) stores what it reads into the test
database. Nothing here is mocked: sockets, the database and the worker are
real. The same flows against the real gateway are in ``test_real_gateway.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from core.testing import create_user, drain, metric, post_reply, wait_for
from inbox import connector as connector_module
from inbox import gateway as gateway_module
from inbox.connector import Connector, ConnectorThread, event_from
from inbox.models import Conversation, GatewayLink, Message
from inbox.protocol import TranscriptMessage
from inbox.simulated_gateway import GatewayServer

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "agent:main:telegram:direct:881580"
WEB = "agent:main:web-e38723"


def texts(key: str = KEY) -> list[str]:
    return list(
        Message.objects.filter(conversation__session_id=key)
        .order_by("pk")
        .values_list("text", flat=True)
    )


def start_connector(server: GatewayServer) -> ConnectorThread:
    """A connector that may have to stand by: not waited for."""
    thread = ConnectorThread(Connector(server.url, server.token))
    thread.start()
    return thread


# -- the live feed ---------------------------------------------------------------------


def test_a_customer_and_the_bot_are_stored_live_with_name_model_and_tokens(
    gateway: GatewayServer, connector: Connector
) -> None:
    gateway.customer_writes(KEY, "hi, my parcel never arrived", name="Carol")
    wait_for(lambda: Message.objects.count() == 2, what="both rows")
    conversation = Conversation.objects.get(session_id=KEY)
    assert (conversation.platform, conversation.customer_name) == ("telegram", "Carol")
    assert conversation.customer_id == "881580"
    customer, bot = conversation.messages.order_by("pk")
    assert (customer.author, customer.sender) == ("customer", "Carol")
    assert customer.text == "hi, my parcel never arrived"
    assert (bot.author, bot.text) == ("bot", "bot: hi, my parcel never arrived")
    assert (bot.ai_model, bot.tokens_used, bot.delivery_state) == (
        "stub-model",
        15,
        "sent",
    )
    assert conversation.gateway_seq == 2


def test_a_bot_reply_written_under_deny_is_a_suppressed_draft(
    gateway: GatewayServer, connector: Connector
) -> None:
    gateway.customer_writes(KEY, "first")
    gateway_module.client().set_send_policy(KEY, "deny")
    gateway.customer_writes(KEY, "hello? is anyone there")
    bot = wait_for(
        lambda: Message.objects.filter(text="bot: hello? is anyone there").first()
    )
    assert bot.delivery_state == Message.DeliveryState.SUPPRESSED
    assert (KEY, "bot: hello? is anyone there") not in gateway.delivered


def test_text_the_database_cannot_hold_is_stored_readably() -> None:
    row = TranscriptMessage(
        session_key=KEY, message_id="m1", seq=1, role="user", text="a\x00b\ud800c"
    )
    event = event_from(row)
    assert event is not None
    assert event.fields["message"]["text"] == "a\ufffdb\ufffdc"


def test_tool_rows_and_empty_rows_are_not_shown() -> None:
    for role, text in (("toolResult", "{}"), ("user", "")):
        row = TranscriptMessage(
            session_key=KEY, message_id="m", seq=1, role=role, text=text
        )
        assert event_from(row) is None


# -- our replies come back ---------------------------------------------------------------


@pytest.mark.parametrize("key", [KEY, WEB], ids=["telegram-send", "webchat-inject"])
def test_an_agents_reply_is_delivered_by_its_echo_and_stored_once(
    gateway: GatewayServer, connector: Connector, worker: Any, key: str
) -> None:
    gateway.customer_writes(key, "I need a human", name="Carol")
    conversation = wait_for(lambda: Conversation.objects.filter(session_id=key).first())
    alice = create_user(role="agent", username="alice")
    message = post_reply(alice, conversation, "Refund issued, 3-5 days.")
    drain(worker, "replies")
    wait_for(
        lambda: Message.objects.get(pk=message.pk).delivery_state == "delivered",
        what="delivered",
    )
    # The echo confirmed it; it is not a second message in the thread.
    assert texts(key).count("Refund issued, 3-5 days.") == 1
    [sent] = gateway.received
    assert sent.kind == ("send" if key == KEY else "inject")
    if key == WEB:
        assert (WEB, "[alice]\n\nRefund issued, 3-5 days.") in gateway.delivered


def test_an_echo_that_beats_the_rpc_answer_still_matches_the_reply(
    gateway: GatewayServer, connector: Connector, worker: Any
) -> None:
    """chat.inject's echo carries no key: it can arrive before the sender wrote
    down the id the RPC answered with, and must match by the reply in flight."""
    gateway.customer_writes(WEB, "hello")
    conversation = wait_for(lambda: Conversation.objects.filter(session_id=WEB).first())
    alice = create_user(role="agent", username="alice")
    gateway.slow(0.5)  # the answer comes half a second after the echo
    message = post_reply(alice, conversation, "right here")
    drain(worker, "replies")
    gateway.slow(0)
    message.refresh_from_db()
    wait_for(lambda: Message.objects.get(pk=message.pk).delivery_state == "delivered")
    message.refresh_from_db()
    assert message.metadata["gateway_id"] == gateway.received[0].message_id
    assert texts(WEB).count("right here") == 1


def test_a_reply_sent_by_another_operator_client_is_shown_once(
    gateway: GatewayServer, connector: Connector
) -> None:
    gateway.customer_writes(KEY, "hi")
    gateway_module.client().send_message(KEY, "from the CLI", idempotency_key="cli-1")
    other = wait_for(lambda: Message.objects.filter(text="from the CLI").first())
    assert (other.author, other.delivery_state) == ("agent", "delivered")
    assert other.sender == "gateway operator"


# -- nothing lost --------------------------------------------------------------------------


def test_a_seq_gap_seen_live_fetches_the_missing_rows(
    gateway: GatewayServer, connector: Connector
) -> None:
    gateway.customer_writes(KEY, "one", bot=False)
    wait_for(lambda: texts() == ["one"])
    gateway.mute(KEY, 2)  # written, never pushed
    gateway.customer_writes(KEY, "two", bot=False)
    gateway.customer_writes(KEY, "three", bot=False)
    gateway.customer_writes(KEY, "four", bot=False)
    wait_for(lambda: sorted(texts()) == sorted(["one", "two", "three", "four"]))
    # The counter moves just after the commit the test sees.
    wait_for(lambda: connector.recovered == 2, 5, "the recovered count")
    assert Conversation.objects.get(session_id=KEY).gateway_seq == 4


def test_a_reset_session_starts_counting_again_and_loses_nothing(
    gateway: GatewayServer, connector: Connector
) -> None:
    gateway.customer_writes(KEY, "before reset", bot=False)
    wait_for(lambda: texts() == ["before reset"])
    gateway_module.client().reset_session(KEY)
    gateway.mute(KEY, 1)
    gateway.customer_writes(KEY, "first of the new session", bot=False)
    gateway.customer_writes(KEY, "second of the new session", bot=False)
    wait_for(lambda: len(texts()) == 3, what="three rows")
    conversation = Conversation.objects.get(session_id=KEY)
    assert conversation.gateway_seq == 2
    assert set(texts()) == {
        "before reset",
        "first of the new session",
        "second of the new session",
    }


def test_messages_written_while_disconnected_are_caught_up_once(
    gateway: GatewayServer, connector: Connector
) -> None:
    gateway.customer_writes(KEY, "before", name="Carol")
    wait_for(lambda: len(texts()) == 2)
    gateway.go_down()  # the socket is gone; the transcript is not
    for n in range(3):
        gateway.customer_writes(KEY, f"while away {n}", bot=False)
    gateway.customer_writes(WEB, "a new webchat customer", bot=False)
    gateway.come_up()
    wait_for(lambda: len(texts()) == 5 and texts(WEB), seconds=15, what="catch-up")
    assert connector.connections >= 2
    wait_for(lambda: connector.recovered == 4, 5, "the recovered count")
    # Every row once: the transcript's ids are unique in the thread.
    ids = list(Message.objects.values_list("gateway_message_id", flat=True))
    assert len(ids) == len(set(ids)) == 6


def test_a_gateway_that_falls_silent_is_left_and_reconnected(
    settings: Any, transactional_db: None
) -> None:
    with GatewayServer(token="t", tick_interval=0.2) as server:
        thread = start_connector(server)
        try:
            wait_for(lambda: thread.connector.state == "live")
            server.ticks_paused = True
            wait_for(lambda: thread.connector.connections >= 2, seconds=10)
            server.ticks_paused = False
            server.customer_writes(KEY, "after the silence", bot=False)
            wait_for(lambda: texts() == ["after the silence"])
        finally:
            thread.stop()


def test_one_connector_leads_and_a_standby_takes_over(
    gateway: GatewayServer, transactional_db: None
) -> None:
    first, second = start_connector(gateway), start_connector(gateway)
    try:
        wait_for(
            lambda: (
                {first.connector.state, second.connector.state} == {"live", "standby"}
            ),
            what="one leader, one standby",
        )
        leader, standby = (
            (first, second) if first.connector.state == "live" else (second, first)
        )
        # Several polls later the standby still stands by: it holds no feed.
        time.sleep(connector_module.STANDBY_POLL * 2.5)
        assert standby.connector.state == "standby"
        assert gateway.subscribers == 1
        gateway.customer_writes(KEY, "one", bot=False)
        wait_for(lambda: texts() == ["one"])
        # The row is visible at commit, a moment before the connector's thread
        # counts it: stopping in between would lose the count, not the row.
        wait_for(lambda: leader.connector.stored == 1, 5)
        leader.stop()
        started = time.monotonic()
        wait_for(lambda: standby.connector.state == "live", seconds=10)
        assert time.monotonic() - started < 10
        gateway.customer_writes(KEY, "two", bot=False)
        wait_for(lambda: texts() == ["one", "two"])
        wait_for(lambda: leader.connector.stored + standby.connector.stored == 2, 5)
        # The new leader holds the feed alone: the old one never comes back.
        time.sleep(connector_module.STANDBY_POLL * 2)
        assert gateway.subscribers == 1
        assert standby.connector.state == "live"
    finally:
        first.stop()
        second.stop()


def test_the_connector_records_the_link_and_keeps_the_device_token(
    gateway: GatewayServer, connector: Connector
) -> None:
    link = GatewayLink.objects.get()
    assert link.is_connected and link.server_version == "2026.9.6-sim"
    assert link.device_token == gateway.devices[link.identity().id]
    assert not link.has_plugin
    gateway.customer_writes(KEY, "hi", bot=False)
    wait_for(lambda: GatewayLink.objects.get().last_event_at is not None)


# -- takeover ---------------------------------------------------------------------------


@pytest.fixture
def plugin_gateway(settings: Any, transactional_db: None) -> Iterator[GatewayServer]:
    with GatewayServer(token="t", plugin=True) as server:
        settings.OPENCLAW_GATEWAY_URL = server.url
        settings.OPENCLAW_GATEWAY_TOKEN = server.token
        gateway_module.reset_client()
        thread = start_connector(server)
        wait_for(lambda: thread.connector.state == "live")
        yield server
        thread.stop()
    gateway_module.reset_client()


@pytest.mark.parametrize("key", [KEY, WEB], ids=["telegram", "webchat"])
def test_with_the_plugin_a_takeover_stops_the_bot_before_its_model_call(
    plugin_gateway: GatewayServer, worker: Any, key: str
) -> None:
    gateway = plugin_gateway
    gateway.customer_writes(key, "need a person")
    conversation = wait_for(lambda: Conversation.objects.filter(session_id=key).first())
    alice = create_user(role="agent", username="alice")
    conversation.take_over(alice)
    drain(worker, "replies")
    assert gateway.owners == {key: "alice"}
    # The turn the bot may be in is stopped too, or the customer's next
    # message would be steered into it (tests/test_real_gateway.py).
    assert gateway.aborts == [key]
    calls = len(gateway.model_calls)
    gateway.customer_writes(key, "are you there?")
    gateway.customer_writes(key, "hello??")
    wait_for(lambda: {"are you there?", "hello??"} <= set(texts(key)))
    assert len(gateway.model_calls) == calls  # no model call for this session
    assert gateway.policy(key) == "allow"  # and no send policy needed
    conversation.hand_back(alice)
    drain(worker, "replies")
    assert gateway.owners == {}
    assert gateway.aborts == [key]  # handing back stops nothing
    gateway.customer_writes(key, "thanks")
    wait_for(lambda: "bot: thanks" in texts(key))


def test_the_plugin_learns_every_human_owned_session_when_the_connector_connects(
    settings: Any, transactional_db: None
) -> None:
    alice = create_user(role="agent", username="alice")
    owned = Conversation.objects.create(session_id=KEY, status="human", assignee=alice)
    Conversation.objects.create(session_id=WEB)
    with GatewayServer(token="t", plugin=True) as server:
        server.owners = {"agent:main:telegram:direct:1": "stale"}
        thread = start_connector(server)
        try:
            wait_for(lambda: thread.connector.state == "live")
            assert server.owners == {owned.session_id: "alice"}
        finally:
            thread.stop()


def test_without_the_plugin_a_channel_falls_back_to_deny_and_webchat_to_nothing(
    gateway: GatewayServer, connector: Connector, worker: Any
) -> None:
    alice = create_user(role="agent", username="alice")
    for key in (KEY, WEB):
        gateway.customer_writes(key, "hi", bot=False)
    wait_for(lambda: Conversation.objects.count() == 2)
    for conversation in Conversation.objects.all():
        conversation.take_over(alice)
    drain(worker, "replies")
    assert gateway.policy(KEY) == "deny"
    assert gateway.aborts == [KEY]  # its turn in progress stopped
    # Deny on webchat would refuse the customer's own messages: left alone,
    # and its turns too (the next one would answer anyway).
    assert gateway.policy(WEB) == "allow"
    gateway.customer_writes(WEB, "still heard")
    wait_for(lambda: "still heard" in texts(WEB))


def test_metrics_show_the_connector(
    gateway: GatewayServer, connector: Connector
) -> None:
    before = Client().get("/metrics").content.decode()
    gateway.customer_writes(KEY, "counted", bot=False)
    gateway.mute(KEY, 1)
    gateway.customer_writes(KEY, "recovered", bot=False)
    gateway.customer_writes(KEY, "after the gap", bot=False)
    wait_for(lambda: connector.recovered == 1, what="the gap refetched")
    text = Client().get("/metrics").content.decode()
    events = 'openclaw_connector_events_total{outcome="stored",role="user"}'
    assert metric(text, events) == metric(before, events) + 3
    assert metric(text, "openclaw_connector_recovered_total") == (
        metric(before, "openclaw_connector_recovered_total") + 1
    )
    assert metric(text, "openclaw_connector_connected") == 1
    assert "openclaw_connector_lag_seconds_bucket" in text
    assert "openclaw_connector_reconnects_total" in text


def test_a_database_outage_ends_the_connection_and_the_row_is_caught_up(
    gateway: GatewayServer, connector: Connector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store raises as an unreachable database does: nothing is skipped;
    the connector reconnects and catch-up stores the row it could not."""
    from django.db import OperationalError

    from inbox import ingest

    real_store = ingest.store
    failures = []

    def flaky_store(event, delivery=None):  # noqa: ANN001, ANN202
        if not failures:
            failures.append(event.message_id)
            raise OperationalError("server closed the connection unexpectedly")
        return real_store(event, delivery)

    monkeypatch.setattr(ingest, "store", flaky_store)
    gateway.customer_writes(KEY, "during the outage", bot=False)
    wait_for(lambda: texts() == ["during the outage"], what="the row, caught up")
    assert connector.connections >= 2
    assert failures and Message.objects.get().gateway_message_id == failures[0]


def test_a_plugin_that_cannot_stop_the_bot_falls_back_and_says_so(
    settings: Any, transactional_db: None, worker: Any
) -> None:
    """Loaded without the gateway's allowConversationAccess, the plugin answers
    ``enforcing: false``: the inbox falls back to deny on a channel, the header
    does not claim the bot is stopped, and the bot's drafts are suppressed."""
    with GatewayServer(token="t", plugin=True, enforcing=False) as server:
        settings.OPENCLAW_GATEWAY_URL = server.url
        settings.OPENCLAW_GATEWAY_TOKEN = server.token
        gateway_module.reset_client()
        thread = start_connector(server)
        try:
            wait_for(lambda: GatewayLink.objects.filter(has_plugin=True).exists())
            assert not GatewayLink.objects.get().plugin_enforcing
            server.customer_writes(KEY, "hi")
            conversation = wait_for(
                lambda: Conversation.objects.filter(session_id=KEY).first()
            )
            alice = create_user(role="agent", username="alice")
            conversation.take_over(alice)
            drain(worker, "replies")
            assert server.owners == {KEY: "alice"}
            assert server.policy(KEY) == "deny"
            conversation.refresh_from_db()
            assert conversation.pause_mode == "deny"
            server.customer_writes(KEY, "still there?")
            draft = wait_for(
                lambda: Message.objects.filter(text="bot: still there?").first()
            )
            assert draft.delivery_state == Message.DeliveryState.SUPPRESSED
        finally:
            thread.stop()
            gateway_module.reset_client()


def test_a_bot_reply_landing_after_the_takeover_is_a_suppressed_draft(
    gateway: GatewayServer, connector: Connector
) -> None:
    """A run already under way when the agent took over writes its reply
    afterwards: the gateway held it back, so the thread must not say sent."""
    gateway.customer_writes(KEY, "hello", bot=False)
    conversation = wait_for(lambda: Conversation.objects.filter(session_id=KEY).first())
    conversation.take_over(create_user(role="agent", username="alice"))
    gateway.bot_replies(KEY, customer_text="hello")
    draft = wait_for(lambda: Message.objects.filter(author="bot").first())
    assert draft.delivery_state == Message.DeliveryState.SUPPRESSED
