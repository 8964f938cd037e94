"""The list's filters (tag, assignee, days), saved views and read state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from core.testing import create_user, message_event, post_webhook, session_key
from inbox.models import Contact, Conversation, ReadMark, SavedView
from inbox.tests.test_live_stream import connect, receive_all

HX = {"HX-Request": "true"}


def _as(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _conversation(text: str, *, peer: str | None = None) -> Conversation:
    session = session_key(peer=peer)
    post_webhook(message_event(session_id=session, text=text, senderId=peer or "1"))
    return Conversation.objects.get(session_id=session)


def _listed(client: Client, **params: str) -> set[int]:
    html = client.get("/inbox/", params).content.decode()
    return {c.pk for c in Conversation.objects.all() if f'id="conv-{c.pk}"' in html}


@pytest.mark.django_db
def test_filter_by_tag_on_the_conversation_or_its_customer() -> None:
    tagged = _conversation("a", peer="10")
    vip = _conversation("b", peer="20")
    plain = _conversation("c", peer="30")
    tagged.add_tag("refund")
    Contact.objects.filter(pk=vip.contact_id).update(tags=["refund", "vip"])
    alice = create_user(role="agent", username="alice")
    client = _as(alice)
    assert _listed(client, tag="refund") == {tagged.pk, vip.pk}
    assert _listed(client, tag="vip") == {vip.pk}
    assert _listed(client) == {tagged.pk, vip.pk, plain.pk}
    # A tag that is a prefix of another's matches nothing extra.
    assert _listed(client, tag="ref") == set()


@pytest.mark.django_db
def test_filter_by_assignee_and_by_days_in_the_agents_zone() -> None:
    old = _conversation("old")
    new = _conversation("new")
    alice = create_user(role="agent", username="alice")
    new.take_over(alice)
    Conversation.objects.filter(pk=old.pk).update(
        last_message_at=datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    )
    client = _as(alice)
    assert _listed(client, assignee="alice") == {new.pk}
    assert _listed(client, assignee="ghost") == set()
    assert _listed(client, since="2026-11-30", until="2026-11-30") == {old.pk}
    assert _listed(client, until="2026-11-29") == set()
    today = timezone.localdate().isoformat()
    assert _listed(client, since=today) == {new.pk}
    # 23:30 UTC is the next morning in Seoul.
    with timezone.override("Asia/Seoul"):
        assert _listed(client, since="2026-12-01", until="2026-12-01") == {old.pk}


@pytest.mark.django_db
def test_saved_views_belong_to_their_agent() -> None:
    alice = create_user(role="agent", username="alice")
    bob = create_user(role="agent", username="bob")
    client = _as(alice)
    answer = client.post(
        "/inbox/views/",
        {
            "name": "my escalated WhatsApp",
            "platform": "whatsapp",
            "status": "escalated",
            "owner": "mine",
            "q": "",
        },
        headers=HX,
    )
    assert answer.status_code == 200
    saved = SavedView.objects.get()
    assert saved.user == alice
    assert saved.query == "platform=whatsapp&status=escalated&owner=mine"
    assert "my escalated WhatsApp" in client.get("/inbox/").content.decode()
    assert "my escalated WhatsApp" not in _as(bob).get("/inbox/").content.decode()
    # A view of everything, or without a name, is refused with a reason.
    empty = client.post("/inbox/views/", {"name": "all"}, headers=HX)
    assert empty.status_code == 400 and "pick a filter" in empty.content.decode()
    # Bob cannot delete Alice's view.
    _as(bob).post(f"/inbox/views/{saved.pk}/delete/", headers=HX)
    assert SavedView.objects.count() == 1
    client.post(f"/inbox/views/{saved.pk}/delete/", headers=HX)
    assert SavedView.objects.count() == 0


@pytest.mark.django_db
def test_mark_unread_leaves_the_newest_message_unread_for_that_agent_only() -> None:
    conversation = _conversation("hi")
    post_webhook(message_event(session_id=conversation.session_id, text="again"))
    alice = create_user(role="agent", username="alice")
    bob = create_user(role="agent", username="bob")
    client = _as(alice)
    client.get(f"/inbox/c/{conversation.pk}/")  # opening reads it
    _as(bob).get(f"/inbox/c/{conversation.pk}/")
    answer = client.post(f"/inbox/c/{conversation.pk}/unread/", headers=HX)
    assert answer.status_code == 204 and answer["HX-Redirect"] == "/inbox/"
    marks = dict(ReadMark.objects.values_list("user__username", "inbound_seen"))
    assert marks == {"alice": 1, "bob": 2}
    html = client.get("/inbox/").content.decode()
    assert 'aria-label="1 unread">1</span>' in html


@pytest.mark.django_db(transaction=True)
async def test_a_tab_filtered_by_tag_and_assignee_gets_only_matching_rows() -> None:
    alice = await sync_to_async(create_user)(role="agent", username="alice")
    vip = await sync_to_async(_conversation)("a", peer="20")
    other = await sync_to_async(_conversation)("b", peer="30")
    await Contact.objects.filter(pk=vip.contact_id).aupdate(tags=["vip"])
    tab = await connect(alice, "tag=vip")
    assert (await tab.connect())[0]
    await receive_all(tab, timeout=0.3)
    await sync_to_async(post_webhook)(
        message_event(session_id=other.session_id, text="other")
    )
    await sync_to_async(post_webhook)(
        message_event(session_id=vip.session_id, text="v")
    )
    frames = "".join(await receive_all(tab, timeout=1.0))
    assert f'afterbegin:#conversation-list"><li id="conv-{vip.pk}"' in frames
    # Untagged: not added (and not removed: an event may predate a merge).
    assert f'id="conv-{other.pk}"' not in frames
    await tab.disconnect()

    mine = await connect(alice, "assignee=alice")
    assert (await mine.connect())[0]
    await receive_all(mine, timeout=0.3)
    await sync_to_async(vip.take_over)(alice)
    await sync_to_async(post_webhook)(message_event(session_id=other.session_id))
    frames = "".join(await receive_all(mine, timeout=1.0))
    assert f'id="conv-{vip.pk}" class="conversation' in frames
    assert f'id="conv-{other.pk}" class="conversation' not in frames
    await mine.disconnect()
