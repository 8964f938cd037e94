"""Bulk work: one action on several conversations, each under its own rules."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from core.testing import create_user, message_event, post_webhook, session_key
from inbox.models import Conversation, ReadMark

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


def _conversations(n: int) -> list[Conversation]:
    for i in range(n):
        post_webhook(message_event(session_id=session_key(), text=f"customer {i}"))
    return list(Conversation.objects.order_by("pk"))


def _as(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _bulk(client: Client, ids: list[int], action: str, **extra: Any) -> Any:
    return client.post(
        "/inbox/bulk/", {"ids": ids, "action": action, **extra}, headers=HX
    )


def test_resolve_several_and_say_which_were_not_done() -> None:
    a, b, c = _conversations(3)
    alice = create_user(role="agent", username="alice")
    bob = create_user(role="agent", username="bob")
    c.take_over(bob)
    answer = _bulk(_as(alice), [a.pk, b.pk, c.pk], "resolve")
    assert answer.status_code == 200
    text = answer.content.decode()
    assert "2 done" in text and "already taken by bob" in text
    statuses = dict(Conversation.objects.values_list("pk", "status"))
    assert statuses == {a.pk: "resolved", b.pk: "resolved", c.pk: "human"}


def test_leads_assign_several_agents_may_not() -> None:
    a, b = _conversations(2)
    alice = create_user(role="agent", username="alice")
    lead = create_user(role="lead", username="lena")
    assert _bulk(_as(alice), [a.pk], "assign", agent="alice").status_code == 403
    answer = _bulk(_as(lead), [a.pk, b.pk], "assign", agent="alice")
    assert answer.status_code == 200 and "2 done" in answer.content.decode()
    assert set(Conversation.objects.values_list("assignee__username", flat=True)) == {
        "alice"
    }
    assert _bulk(_as(lead), [a.pk], "assign", agent="ghost").status_code == 400


def test_snooze_mark_read_and_tag_several() -> None:
    a, b = _conversations(2)
    alice = create_user(role="agent", username="alice")
    client = _as(alice)
    assert _bulk(client, [a.pk, b.pk], "read").status_code == 200
    assert ReadMark.objects.filter(user=alice).count() == 2
    assert _bulk(client, [a.pk, b.pk], "tag", tag="vip").status_code == 200
    assert all(c.tags == ["vip"] for c in Conversation.objects.all())
    assert _bulk(client, [a.pk], "snooze", minutes="reply").status_code == 200
    a.refresh_from_db()
    assert (a.status, a.snoozed_until) == ("snoozed", None)


def test_bad_bulk_requests_are_refused_with_the_reason() -> None:
    (a,) = _conversations(1)
    client = _as(create_user(role="agent"))
    assert b"pick how long" in _bulk(client, [a.pk], "snooze").content
    assert b"type a tag" in _bulk(client, [a.pk], "tag").content
    assert _bulk(client, [a.pk], "explode").status_code == 400
    assert _bulk(client, list(range(1, 300)), "read").status_code == 400
    nobody = _as(create_user(role=None))
    assert _bulk(nobody, [a.pk], "resolve").status_code == 403
    a.refresh_from_db()
    assert a.status == "bot"
