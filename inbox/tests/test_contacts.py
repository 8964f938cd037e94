"""The customer beside the thread: contacts, their history, tags, notes, merging."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from core.testing import create_user, message_event, post_webhook, session_key
from inbox.models import Activity, Contact, Conversation

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


def _as(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _write(
    *, peer: str, channel: str = "telegram", sender: str = "", name: str = "김민준"
) -> Conversation:
    session = session_key(chat=channel, peer=peer)
    post_webhook(
        message_event(
            session_id=session,
            channel=channel,
            senderId=sender or peer,
            senderName=name,
            channelInfo={"username": "minjun_k", "language": "ko"},
        )
    )
    return Conversation.objects.get(session_id=session)


def test_conversations_of_one_sender_share_a_contact() -> None:
    first = _write(peer="111", name="김민준")
    # A new session (after a reset, another agent) from the same sender id.
    post_webhook(
        message_event(
            session_id="agent:support:telegram:direct:111",
            senderId="111",
            senderName="",
        )
    )
    second = Conversation.objects.get(session_id="agent:support:telegram:direct:111")
    other = _write(peer="222", name="Jane")
    assert first.contact_id is not None
    assert first.contact_id == second.contact_id != other.contact_id
    contact = Contact.objects.get(pk=first.contact_id)
    assert (contact.platform, contact.external_id, contact.name) == (
        "telegram",
        "111",
        "김민준",
    )
    assert Contact.objects.count() == 2


def test_panel_shows_ids_channel_info_and_earlier_conversations() -> None:
    old = _write(peer="111")
    alice = create_user(role="agent", username="alice")
    old.resolve(alice)
    post_webhook(
        message_event(
            session_id="agent:b:telegram:direct:111",
            senderId="111",
            text="다시 문의드려요",
            channelInfo={"username": "minjun_k"},
        )
    )
    new = Conversation.objects.get(session_id="agent:b:telegram:direct:111")
    page = _as(alice).get(f"/inbox/c/{new.pk}/").content.decode()
    panel = page[page.index('id="contact-panel"') :]
    assert "<code>111</code>" in panel
    assert "minjun_k" in panel  # channelInfo
    assert f"/inbox/c/{old.pk}/" in panel  # the earlier conversation
    assert f'href="/inbox/c/{new.pk}/"' not in panel  # not itself
    assert "Resolved" in panel


def test_agents_edit_tags_and_notes_and_text_stays_text() -> None:
    conversation = _write(peer="111")
    alice = create_user(role="agent", username="alice")
    answer = _as(alice).post(
        f"/inbox/c/{conversation.pk}/contact/",
        {
            "name": "Minjun <b>Kim</b>",
            "tags": "VIP, 환불 요청, vip",
            "notes": "Prefers <script>alert(1)</script> Korean",
        },
        headers=HX,
    )
    assert answer.status_code == 200
    contact = Contact.objects.get()
    assert contact.tags == ["vip", "환불-요청"]
    assert contact.notes.startswith("Prefers <script>")
    html = answer.content.decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "Minjun &lt;b&gt;Kim&lt;/b&gt;" in html
    assert "?tag=vip" in html


def test_too_many_tags_is_a_form_error_and_saves_nothing() -> None:
    conversation = _write(peer="111")
    alice = create_user(role="agent", username="alice")
    tags = ", ".join(f"t{i}" for i in range(25))
    answer = _as(alice).post(
        f"/inbox/c/{conversation.pk}/contact/", {"name": "x", "tags": tags}, headers=HX
    )
    assert answer.status_code == 400
    assert "at most 20 tags" in answer.content.decode()
    assert Contact.objects.get().tags == []


def test_merge_brings_the_other_channel_into_the_panel() -> None:
    telegram = _write(peer="111", name="김민준")
    whatsapp = _write(peer="821012345678", channel="whatsapp", name="Minjun")
    Contact.objects.filter(pk=whatsapp.contact_id).update(tags=["vip"], notes="B")
    alice = create_user(role="agent", username="alice")
    client = _as(alice)
    found = client.get(
        f"/inbox/c/{telegram.pk}/contact/candidates/", {"q": "8210"}, headers=HX
    ).content.decode()
    assert f"?other={whatsapp.contact_id}" in found
    # Asked first, naming both; nothing is merged by asking.
    asked = client.get(
        f"/inbox/c/{telegram.pk}/contact/merge/",
        {"other": whatsapp.contact_id},
        headers=HX,
    ).content.decode()
    assert "Merge Minjun into 김민준?" in asked and "cannot be undone" in asked
    assert Contact.objects.get(pk=whatsapp.contact_id).merged_into_id is None
    answer = client.post(
        f"/inbox/c/{telegram.pk}/contact/merge/",
        {"other": whatsapp.contact_id},
        headers=HX,
    )
    assert answer.status_code == 200
    html = answer.content.decode()
    assert f"/inbox/c/{whatsapp.pk}/" in html and "WhatsApp" in html
    keep = Contact.objects.get(pk=telegram.contact_id)
    assert keep.tags == ["vip"] and keep.notes == "B"
    whatsapp.refresh_from_db()
    assert whatsapp.contact_id == keep.pk
    assert Activity.objects.filter(
        conversation=telegram, data__summary__icontains="Merged contact"
    ).exists()
    # The merged sender writes again: it lands on the surviving contact.
    post_webhook(
        message_event(
            session_id="agent:x:whatsapp:direct:821012345678",
            channel="whatsapp",
            senderId="821012345678",
        )
    )
    again = Conversation.objects.get(session_id="agent:x:whatsapp:direct:821012345678")
    assert again.contact_id == keep.pk
    # Merging the pair again (or into itself) is refused, not a 500.
    twice = client.post(
        f"/inbox/c/{telegram.pk}/contact/merge/",
        {"other": keep.pk},
        headers=HX,
    )
    assert twice.status_code == 400 and "not merged" in twice.content.decode()


def test_contact_pages_need_an_agent() -> None:
    conversation = _write(peer="111")
    nobody = create_user(role=None, username="nobody")
    assert (
        _as(nobody)
        .post(f"/inbox/c/{conversation.pk}/contact/", {"name": "x"})
        .status_code
        == 403
    )
    assert Client().get(f"/inbox/c/{conversation.pk}/contact/").status_code == 302
