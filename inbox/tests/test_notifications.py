"""The bell: assignments, @mentions in notes and SLA breaches, live and once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from core.asgi import application
from core.testing import (
    create_user,
    message_event,
    post_webhook,
    session_cookie,
    session_key,
)
from inbox.models import Conversation, Notification
from inbox.tasks import notify_sla_breaches
from inbox.tests.test_live_stream import ORIGIN, connect, receive_all

HX = {"HX-Request": "true"}


def _as(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _conversation() -> Conversation:
    session = session_key()
    post_webhook(message_event(session_id=session))
    return Conversation.objects.get(session_id=session)


@pytest.mark.django_db
def test_an_assignment_rings_the_assignees_bell_until_they_open_it() -> None:
    conversation = _conversation()
    lead = create_user(role="lead", username="lena")
    bob = create_user(role="agent", username="bob")
    _as(lead).post(f"/inbox/c/{conversation.pk}/assign/", {"agent": bob.pk})
    note = Notification.objects.get()
    assert (note.user, note.kind) == (bob, "assigned")
    assert "lena assigned you" in note.text
    client = _as(bob)
    page = client.get("/inbox/queue/").content.decode()
    assert 'id="bell-count" class="count" data-count="1">1</span>' in page
    listed = client.get("/inbox/notifications/", headers=HX).content.decode()
    assert "lena assigned you" in listed and f"/inbox/c/{conversation.pk}/" in listed
    client.get(f"/inbox/c/{conversation.pk}/")  # opening it reads it
    assert Notification.objects.unread().count() == 0
    assert (
        'id="bell-count" class="count" data-count="0" hidden'
        in client.get("/inbox/queue/").content.decode()
    )
    # The lead's own page has no bell entry for it.
    assert not Notification.objects.filter(user=lead).exists()


@pytest.mark.django_db
def test_mentions_in_notes_notify_the_named_staff_only() -> None:
    conversation = _conversation()
    alice = create_user(role="agent", username="alice")
    bob = create_user(role="agent", username="bob.kim")
    create_user(role=None, username="carol")  # not staff: never notified
    conversation.reply(
        alice, "@bob.kim can you check? cc @carol @ghost @alice me@bob.kim", note=True
    )
    notes = list(Notification.objects.values_list("user__username", "kind"))
    assert notes == [("bob.kim", "mention")]
    # A reply to the customer mentions nobody.
    conversation.take_over(alice)
    conversation.reply(alice, "@bob.kim will call you", note=False)
    assert Notification.objects.count() == 1
    # Marking all read from the bell.
    answer = _as(bob).post("/inbox/notifications/", headers=HX)
    assert answer.status_code == 200
    assert Notification.objects.unread().count() == 0


@pytest.mark.django_db
def test_an_escalation_past_its_sla_notifies_every_staff_member_once(
    settings: Any,
) -> None:
    settings.INBOX_SLA_RED_SECONDS = 300
    late, fresh = _conversation(), _conversation()
    late.escalate(reason="refund")
    fresh.escalate(reason="refund")
    Conversation.objects.filter(pk=late.pk).update(
        escalated_at=timezone.now() - timedelta(minutes=7)
    )
    create_user(role="agent", username="alice")
    create_user(role="lead", username="lena")
    notify_sla_breaches()
    notify_sla_breaches()  # the next minute, or a second scheduler
    rows = Notification.objects.filter(kind="sla")
    assert sorted(rows.values_list("user__username", flat=True)) == ["alice", "lena"]
    assert {r.conversation_id for r in rows} == {late.pk}
    assert "waited 7 min" in rows[0].text
    # Escalated again later: a new occasion, a new notification.
    Conversation.objects.filter(pk=late.pk).update(
        escalated_at=timezone.now() - timedelta(minutes=6)
    )
    notify_sla_breaches()
    assert Notification.objects.filter(kind="sla").count() == 4


@pytest.mark.django_db(transaction=True)
async def test_the_bell_rings_live_in_every_tab_of_its_owner_only() -> None:
    conversation = await sync_to_async(_conversation)()
    lead = await sync_to_async(create_user)(role="lead", username="lena")
    bob = await sync_to_async(create_user)(role="agent", username="bob")
    alice = await sync_to_async(create_user)(role="agent", username="alice")
    tabs = [await connect(bob), await connect(bob), await connect(alice)]
    for tab in tabs:
        assert (await tab.connect())[0]
        await receive_all(tab, timeout=0.2)
    await sync_to_async(conversation.assign)(lead, bob)
    bell = 'id="bell-count" class="count" hx-swap-oob="true" data-count="1"'
    for tab in tabs[:2]:
        frames = "".join(await receive_all(tab, timeout=1.0))
        assert bell in frames and 'data-new="assigned"' in frames
    assert "bell-count" not in "".join(await receive_all(tabs[2], timeout=0.5))
    for tab in tabs:
        await tab.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_pages_without_the_inbox_stream_get_the_bell_over_the_nav_socket() -> (
    None
):
    lead = await sync_to_async(create_user)(role="lead", username="lena")
    alice = await sync_to_async(create_user)(role="agent", username="alice")
    headers = [
        ORIGIN,
        (b"cookie", (await sync_to_async(session_cookie)(lead)).encode()),
    ]
    nav = WebsocketCommunicator(application, "/ws/nav/", headers=headers)
    assert (await nav.connect())[0]
    stranger = WebsocketCommunicator(application, "/ws/nav/", headers=[ORIGIN])
    await stranger.connect()
    assert (await stranger.receive_output(1))["code"] == 4401

    await sync_to_async(Notification.send)(
        [lead, alice],
        kind="monitor",
        key="change-1",
        text="a page changed",
        link="/m/1/",
    )

    frame = await nav.receive_from(timeout=2)
    assert 'id="bell-count"' in frame and 'data-count="1"' in frame
    assert 'data-new="monitor"' in frame
    await nav.disconnect()


@pytest.mark.django_db
def test_every_page_shows_the_escalation_count_and_opens_the_nav_socket() -> None:
    _conversation().escalate(reason="angry")
    client = Client()
    client.force_login(create_user(role="lead", username="lena"))

    page = client.get("/reports/").content.decode()

    assert 'id="escalation-count" class="count" data-count="1"' in page
    assert 'ws-connect="/ws/nav/"' in page
    inbox = client.get("/inbox/").content.decode()
    assert 'ws-connect="/ws/nav/"' not in inbox  # the inbox stream carries it
