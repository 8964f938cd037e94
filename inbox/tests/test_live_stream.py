"""The websocket stream, driven through the real ASGI application."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from core.asgi import application
from core.testing import (
    create_user,
    message_event,
    post_webhook,
    session_cookie,
    session_key,
)
from inbox import live
from inbox.models import Activity, Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://localhost")


async def connect(
    user: Any = None, query: str = "", origin: tuple = ORIGIN
) -> WebsocketCommunicator:
    headers = [origin]
    if user is not None:
        cookie = await sync_to_async(session_cookie)(user)
        headers.append((b"cookie", cookie.encode()))
    communicator = WebsocketCommunicator(
        application, f"/ws/inbox/?{query}", headers=headers
    )
    return communicator


async def receive_all(
    communicator: WebsocketCommunicator, timeout: float = 0.5
) -> list[str]:
    """Every frame until the socket stays quiet for ``timeout`` seconds."""
    frames = []
    while not await communicator.receive_nothing(timeout=timeout):
        frames.append(await communicator.receive_from())
    return frames


def seqs_in(frame: str) -> int:
    return int(re.search(r'id="live-seq" data-seq="(\d+)"', frame).group(1))


def post_and_close(payload: dict) -> Any:
    """``post_webhook`` on a thread of its own, leaving no connection open."""
    from django.db import connection

    try:
        return post_webhook(payload)
    finally:
        connection.close()


async def post(payload: dict) -> Any:
    return await sync_to_async(post_webhook)(payload)


async def test_anonymous_websocket_is_told_to_log_in() -> None:
    communicator = await connect(user=None)
    connected, _ = await communicator.connect()
    # Accepted only to be closed with 4401, which sends the page to the login
    # form instead of retrying forever; nothing is sent before the close.
    assert connected
    output = await communicator.receive_output(timeout=1)
    assert output == {"type": "websocket.close", "code": 4401}
    await communicator.disconnect()


async def test_foreign_origin_is_refused() -> None:
    user = await sync_to_async(create_user)(is_staff=True)
    communicator = await connect(user, origin=(b"origin", b"https://evil.example"))
    connected, _ = await communicator.connect()
    assert not connected


async def test_webhook_reaches_the_inbox_as_oob_fragments() -> None:
    user = await sync_to_async(create_user)(is_staff=True)
    communicator = await connect(user)
    connected, _ = await communicator.connect()
    assert connected
    await receive_all(communicator, timeout=0.2)  # nothing to catch up

    response = await post(
        message_event(message_id=1, text="<img src=x onerror=alert(1)> 환불")
    )
    assert response.status_code == 200
    frame = await communicator.receive_from(timeout=3)
    conversation = await Conversation.objects.aget()
    assert f'id="conv-{conversation.pk}"' in frame
    assert 'hx-swap-oob="afterbegin:#conversation-list"' in frame
    assert f'id="unread-{conversation.pk}" class="unread" hx-swap-oob="true"' in frame
    # Customer text is escaped in the fragment, never raw HTML.
    assert "<img src=x" not in frame
    assert "&lt;img src=x onerror=alert(1)&gt;" in frame
    await communicator.disconnect()


async def test_frames_do_not_wait_for_the_shared_sync_thread() -> None:
    """A busy sync thread (an ORM call elsewhere in the process) delays no frame.

    Channels' own dispatch hops to that one thread before every message; with
    hundreds of tabs every frame queued behind every other.
    """
    user = await sync_to_async(create_user)(is_staff=True)
    session = session_key()
    communicator = await connect(user)
    assert (await communicator.connect())[0]
    await receive_all(communicator, timeout=0.2)
    await post(message_event(session_id=session, message_id=1))
    await receive_all(communicator, timeout=0.5)  # the tab now knows the conversation

    release = threading.Event()
    busy = asyncio.ensure_future(sync_to_async(release.wait)())
    try:
        # Posted from another thread: the shared sync thread is taken.
        await asyncio.to_thread(
            post_and_close,
            message_event(session_id=session, message_id=2, text="while busy"),
        )
        frame = await communicator.receive_from(timeout=3)
        assert "while busy" in frame
    finally:
        release.set()
        await busy
    await communicator.disconnect()


async def test_open_conversation_receives_thread_items() -> None:
    user = await sync_to_async(create_user)(is_staff=True)
    session = session_key()
    await post(message_event(session_id=session, message_id=1, text="first"))
    conversation = await Conversation.objects.aget(session_id=session)
    seq = await sync_to_async(lambda: Activity.objects.latest("pk").pk)()
    communicator = await connect(user, f"after={seq}&conversation={conversation.pk}")
    assert (await communicator.connect())[0]
    await receive_all(communicator, timeout=0.2)

    await post(message_event(session_id=session, message_id=2, text="두 번째 메시지"))
    frame = await communicator.receive_from(timeout=3)
    message = await Message.objects.aget(gateway_message_id="2")
    assert f'<div id="msg-{message.pk}" hx-swap-oob="delete"></div>' in frame
    assert f'hx-swap-oob="beforeend:#thread-{conversation.pk}"' in frame
    assert "두 번째 메시지" in frame
    # Watching it means reading it: the badge says 0 and the mark is stored.
    assert (
        f'id="unread-{conversation.pk}" class="unread" hx-swap-oob="true" hidden'
        in frame
    )
    await communicator.disconnect()


async def test_other_tabs_do_not_get_thread_items_of_conversations_they_do_not_show() -> (
    None
):
    user = await sync_to_async(create_user)(is_staff=True)
    communicator = await connect(user)
    assert (await communicator.connect())[0]
    await post(message_event(message_id=1, text="only in the list"))
    frame = await communicator.receive_from(timeout=3)
    assert "beforeend:#thread-" not in frame
    await communicator.disconnect()


async def test_reconnect_with_an_old_sequence_number_replays_exactly_the_missed_events() -> (
    None
):
    user = await sync_to_async(create_user)(is_staff=True)
    session = session_key()
    await post(
        message_event(session_id=session, message_id=1, text="seen before the drop")
    )
    last_applied = await sync_to_async(lambda: Activity.objects.latest("pk").pk)()

    # The laptop lid is closed: three messages arrive with no socket open.
    for i in range(2, 5):
        await post(message_event(session_id=session, message_id=i, text=f"missed {i}"))
    missed = await sync_to_async(
        lambda: list(
            Activity.objects.filter(pk__gt=last_applied).values_list("pk", flat=True)
        )
    )()
    assert len(missed) == 3

    conversation = await Conversation.objects.aget(session_id=session)
    communicator = await connect(
        user, f"after={last_applied}&conversation={conversation.pk}"
    )
    assert (await communicator.connect())[0]
    frames = await receive_all(communicator)
    replay = "".join(frames)
    for i in range(1, 5):
        message = await Message.objects.aget(gateway_message_id=str(i))
        # Each missed message once in the thread; the one seen before, not at all.
        assert replay.count(f'<li id="msg-{message.pk}" class="message') == (i > 1)
    assert seqs_in(frames[-1]) == missed[-1]

    # Live again: the next event follows on, nothing is resent.
    await post(message_event(session_id=session, message_id=5, text="after reconnect"))
    frame = await communicator.receive_from(timeout=3)
    assert "after reconnect" in frame and "missed" not in frame
    assert seqs_in(frame) == missed[-1] + 1
    await communicator.disconnect()


async def open_new_conversation(user: Any) -> tuple[Any, WebsocketCommunicator]:
    """A new conversation, open in a tab of ``user``'s that has caught up."""
    session = session_key()
    await post(message_event(session_id=session, message_id=1))
    conversation = await Conversation.objects.aget(session_id=session)
    seq = await sync_to_async(lambda: Activity.objects.latest("pk").pk)()
    communicator = await connect(user, f"after={seq}&conversation={conversation.pk}")
    assert (await communicator.connect())[0]
    await receive_all(communicator, timeout=0.2)
    return conversation, communicator


async def test_a_dropped_group_message_is_filled_from_the_database() -> None:
    user = await sync_to_async(create_user)(is_staff=True)
    conversation, communicator = await open_new_conversation(user)

    # Store a message whose live push is lost (as Redis may drop one) ...
    def store_silently() -> None:
        from django.db import transaction

        with transaction.atomic():
            locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
            locked.add_message(
                gateway_message_id="lost", direction="inbound", text="lost in transit"
            )

    await sync_to_async(store_silently)()
    # ... then the next one is published normally.
    await post(
        message_event(session_id=conversation.session_id, message_id=3, text="next one")
    )
    replay = "".join(await receive_all(communicator, timeout=1.5))
    lost = await Message.objects.aget(gateway_message_id="lost")
    following = await Message.objects.aget(gateway_message_id="3")
    assert replay.count(f'<li id="msg-{lost.pk}" class="message') == 1
    assert replay.count(f'<li id="msg-{following.pk}" class="message') == 1
    await communicator.disconnect()


async def test_a_group_message_delivered_twice_is_sent_once() -> None:
    user = await sync_to_async(create_user)(is_staff=True)
    await post(message_event(message_id=1))
    activity = await sync_to_async(
        lambda: Activity.objects.select_related("conversation", "message").latest("pk")
    )()
    communicator = await connect(user, f"after={activity.pk - 1}")
    assert (await communicator.connect())[0]
    first = await receive_all(communicator, timeout=0.5)
    assert len(first) == 1
    await sync_to_async(live.publish)([activity])
    assert await receive_all(communicator, timeout=0.5) == []
    await communicator.disconnect()


async def test_filtered_list_drops_rows_that_no_longer_match() -> None:
    user = await sync_to_async(create_user)(is_staff=True)
    communicator = await connect(user, "platform=whatsapp")
    assert (await communicator.connect())[0]
    await receive_all(communicator, timeout=0.2)
    await post(message_event(channel="telegram", message_id=1))
    frame = await communicator.receive_from(timeout=3)
    conversation = await Conversation.objects.aget()
    assert f'<div id="conv-{conversation.pk}" hx-swap-oob="delete"></div>' in frame
    assert "afterbegin:#conversation-list" not in frame
    await communicator.disconnect()


async def test_a_tab_away_too_long_is_told_to_reload(monkeypatch) -> None:  # noqa: ANN001
    from inbox import consumers

    monkeypatch.setattr(consumers, "STALE_AFTER", 3)
    user = await sync_to_async(create_user)(is_staff=True)
    for i in range(3):
        await post(message_event(message_id=i))
    communicator = await connect(user, "after=0")
    assert (await communicator.connect())[0]
    frame = await communicator.receive_from(timeout=3)
    assert 'id="live-stale"' in frame and 'data-stale="1"' in frame
    assert (await communicator.receive_output(timeout=3))["type"] == "websocket.close"


@pytest.mark.parametrize("unread", [0, 1, 42])
def test_live_badge_matches_the_partial(unread: int) -> None:
    from django.template.loader import render_to_string

    partial = render_to_string(
        "inbox/inbox.html#unread-badge",
        {"conversation_id": 7, "unread": unread, "oob": True},
    )
    assert live.render_badge(7, unread) == partial.strip()


def test_a_delivery_state_changes_the_thread_item_and_no_row() -> None:
    agent = create_user(role="agent")
    session = session_key()
    post_webhook(message_event(session_id=session, message_id=1))
    conversation = Conversation.objects.get(session_id=session)
    reply = conversation.reply(agent, "on its way")
    assert reply.mark_sending()
    activity = Activity.objects.select_related("conversation", "message").latest("pk")
    assert activity.kind == Activity.Kind.MESSAGE_UPDATED
    event = live.event_for(activity)
    assert event["row"] == ""

    elsewhere = live.frame([event], view=live.View(), seq=activity.pk, unread={})
    assert f'data-seq="{activity.pk}"' in elsewhere
    assert f"conv-{conversation.pk}" not in elsewhere
    assert f"unread-{conversation.pk}" not in elsewhere

    here = live.frame(
        [event],
        view=live.View(conversation=conversation.pk),
        seq=activity.pk,
        unread={},
    )
    assert f'<li hx-swap-oob="true" id="msg-{reply.pk}"' in here
    assert "state-sending" in here
    assert f"conv-{conversation.pk}" not in here

    # Batched after the reply's own event, the state keeps that event's row.
    added = live.event_for(
        Activity.objects.select_related("conversation", "message").get(
            kind=Activity.Kind.MESSAGE_ADDED, message=reply
        )
    )
    batch = live.frame([added, event], view=live.View(), seq=activity.pk, unread={})
    assert batch.count(f'<li id="conv-{conversation.pk}"') == 1


@pytest.mark.postgres
def test_publishing_outside_the_web_server_reuses_its_redis_connection() -> None:
    """A worker publishing every state change must not open a connection each time."""
    import redis
    from django.conf import settings

    server = redis.Redis.from_url(settings.REDIS_URL)
    session = session_key()
    post_webhook(message_event(session_id=session, message_id=0))  # connects once
    before = server.info("stats")["total_connections_received"]
    for n in range(1, 11):
        post_webhook(message_event(session_id=session, message_id=n))
    opened = server.info("stats")["total_connections_received"] - before
    assert opened <= 1, f"{opened} new Redis connections for 10 publishes"


async def test_a_late_older_event_does_not_bring_back_an_older_reply_state(
    monkeypatch,  # noqa: ANN001
) -> None:
    """A reply's "sent" may reach a tab before the reply itself does (two
    processes publish them); the late "queued" must not win on screen."""
    from channels.layers import get_channel_layer

    agent = await sync_to_async(create_user)(role="agent")
    conversation, communicator = await open_new_conversation(agent)

    held: list[dict] = []
    # Hold every push back, rendered as it would have been sent.
    render = live.event_for
    monkeypatch.setattr(
        live, "publish", lambda activities: held.extend(map(render, activities))
    )

    def reply_and_send() -> int:
        message = Conversation.objects.get(pk=conversation.pk).reply(agent, "on it")
        assert message.mark_sending() and message.mark_sent("gw-1")
        return message.pk

    pk = await sync_to_async(reply_and_send)()
    events = held
    assert [e["kind"] for e in events][-3:] == [
        "message_added",
        "message_updated",
        "message_updated",
    ]
    layer = get_channel_layer()
    # Newest first: "sent", then the reply as it was written ("queued").
    for event in (events[-1], events[-3]):
        await layer.group_send(
            live.INBOX_GROUP, {"type": "inbox.events", "events": [event]}
        )
    frames = "".join(await receive_all(communicator, timeout=1.0))
    appended = frames[
        frames.index(f'hx-swap-oob="beforeend:#thread-{conversation.pk}"') :
    ]
    item = appended[appended.index(f'id="msg-{pk}"') :].split("</li>", 1)[0]
    assert "state-sent" in item
    assert "state-queued" not in item
    await communicator.disconnect()


async def test_a_connect_that_fails_leaves_no_channel_in_the_groups(
    monkeypatch,
) -> None:  # noqa: ANN001
    from channels.layers import get_channel_layer

    from inbox import metrics

    user = await sync_to_async(create_user)(is_staff=True)
    clients_before = metrics.WEBSOCKET_CLIENTS._value.get()

    def database_down() -> int:
        raise RuntimeError("database down")

    monkeypatch.setattr(live, "current_seq", database_down)
    communicator = await connect(user)  # no ?after=: it asks the database
    await communicator.connect()  # accepted first, then the database fails
    with pytest.raises(RuntimeError, match="database down"):
        await communicator.receive_output(timeout=2)
    layer = get_channel_layer()
    groups = layer._get_layer().groups if hasattr(layer, "_get_layer") else layer.groups
    assert not groups.get(live.INBOX_GROUP)
    assert metrics.WEBSOCKET_CLIENTS._value.get() == clients_before


async def test_a_frame_with_only_a_new_sequence_number_waits_for_the_next(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """Another conversation's reply going "sending" changes nothing on this tab:
    its number rides on the tab's next frame, or comes alone a moment later."""
    from inbox import consumers

    monkeypatch.setattr(consumers, "SEQ_ONLY_DELAY", 1.5)
    settings.INBOX_SEND_FROM_WEB = False  # only this test changes the reply's state
    agent = await sync_to_async(create_user)(role="agent")
    other, mine = session_key(), session_key()
    await post(message_event(session_id=other, message_id=1))
    await post(message_event(session_id=mine, message_id=1))
    conversation = await Conversation.objects.aget(session_id=other)
    open_one = await Conversation.objects.aget(session_id=mine)
    # From where the page was drawn, as the browser resumes (numbers do not
    # restart between tests; from 0, the tab would wait out the grace period
    # of the "hole" before this test's first row).
    drawn = await Activity.objects.alatest("pk")
    communicator = await connect(agent, f"conversation={open_one.pk}&after={drawn.pk}")
    assert (await communicator.connect())[0]
    await receive_all(communicator, timeout=0.3)

    reply = await sync_to_async(conversation.reply)(agent, "on its way")
    await communicator.receive_from(timeout=3)  # the row moves
    await receive_all(communicator, timeout=0.3)
    assert await sync_to_async(reply.mark_sending)()
    sending = await Activity.objects.alatest("pk")
    # Nothing to show: no frame at once ...
    assert await communicator.receive_nothing(timeout=0.5)
    # ... then the number alone, so a reconnect resumes after it.
    frame = await communicator.receive_from(timeout=5)
    assert frame == live.seq_marker(sending.pk)

    # A real frame soon after carries the newer number ...
    assert await sync_to_async(reply.mark_sent)("gw-1")
    sent = await Activity.objects.alatest("pk")
    await post(message_event(session_id=mine, message_id=2, text="still there?"))
    frame = await communicator.receive_from(timeout=5)
    while frame == live.seq_marker(sent.pk):  # a slow machine let it go first
        frame = await communicator.receive_from(timeout=5)
    assert "still there?" in frame and seqs_in(frame) == sent.pk + 1
    # ... and the held number, now old news, is never sent.
    assert await communicator.receive_nothing(timeout=2.5)
    await communicator.disconnect()


def test_channels_dispatch_still_does_what_our_consumer_skips() -> None:
    """Pins the one Channels internal the consumer relies on: its ``dispatch``
    closes old database connections before each handler, a hop to the sync
    thread per frame that InboxConsumer.dispatch leaves out (its database
    work runs in ``_db``, which does that in the thread it uses). If Channels
    changes how dispatch works, this fails and the override is looked at."""
    import inspect

    from channels.consumer import AsyncConsumer

    from inbox.consumers import InboxConsumer

    source = inspect.getsource(AsyncConsumer.dispatch)
    assert "aclose_old_connections()" in source
    assert "get_handler_name(message)" in source
    ours = inspect.getsource(InboxConsumer.dispatch).split('"""')[-1]  # the code
    assert "get_handler_name(message)" in ours and "close_old_connections" not in ours


def test_an_assignment_notice_goes_to_the_assignee_alone_and_is_escaped() -> None:
    from inbox.live import View, frame

    event = {
        "seq": 9, "kind": "status_changed", "conversation": 4, "assignee": 7,
        "assigned_by": "<b>lena</b>", "customer": "<img src=x>", "row": "",
        "to_top": False, "item": "", "header": "", "platform": "telegram",
        "status": "human", "escalations": None,
    }  # fmt: skip
    mine = frame([event], view=View(user_id=7), seq=9, unread={})
    assert 'id="notice"' in mine
    assert "&lt;b&gt;lena&lt;/b&gt; assigned you" in mine and "<img" not in mine
    assert 'id="notice"' not in frame([event], view=View(user_id=8), seq=9, unread={})
    taken = event | {"assigned_by": ""}  # a take-over, a wake: nobody to tell
    assert 'id="notice"' not in frame([taken], view=View(user_id=7), seq=9, unread={})
