"""Ownership: take over, hand back, escalate, snooze, resolve, and who may."""

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone

from core.testing import create_user, message_event, post_webhook, session_key
from inbox.models import Activity, AlreadyTaken, Conversation
from inbox.tasks import wake_snoozed_conversations

pytestmark = pytest.mark.django_db


def _conversation(**data) -> Conversation:  # noqa: ANN003
    post_webhook(message_event(session_id=session_key(), text="hello", **data))
    return Conversation.objects.latest("pk")


def _client(user) -> Client:  # noqa: ANN001
    client = Client()
    client.force_login(user)
    return client


def _htmx(client: Client, url: str, **data) -> object:  # noqa: ANN003
    return client.post(url, data, headers={"HX-Request": "true"})


def test_take_over_records_who_from_and_to_and_pauses_the_bot() -> None:
    conversation = _conversation()
    alice = create_user(role="agent", username="alice")
    activity = conversation.take_over(alice)
    conversation.refresh_from_db()
    assert conversation.status == "human" and conversation.assignee == alice
    assert conversation.is_bot_paused
    assert activity.kind == Activity.Kind.STATUS_CHANGED and activity.user == alice
    assert activity.data | {} == {
        "from": "bot",
        "to": "human",
        "by": "alice",
        "owner": "alice",
        "reason": "",
    }
    assert activity.summary == "alice took over"
    # Taking over twice changes nothing and writes nothing.
    assert conversation.take_over(alice) is None
    assert conversation.activities.filter(kind="status_changed").count() == 1


def test_a_second_agent_is_told_who_has_it() -> None:
    conversation = _conversation()
    alice = create_user(role="agent", username="alice")
    bob = create_user(role="agent", username="bob")
    conversation.take_over(alice)
    with pytest.raises(AlreadyTaken, match="already taken by alice"):
        Conversation.objects.get(pk=conversation.pk).take_over(bob)

    response = _htmx(_client(bob), f"/inbox/c/{conversation.pk}/take-over/")
    assert response.status_code == 409
    assert "already taken by alice" in response.content.decode()
    assert response["HX-Retarget"] == "#action-error"
    assert Conversation.objects.get(pk=conversation.pk).assignee == alice


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_agents_taking_over_at_once_leave_exactly_one_owner() -> None:
    conversation = _conversation()
    agents = [create_user(role="agent") for _ in range(50)]
    start = threading.Barrier(len(agents))
    results: dict[int, str] = {}

    def click(agent) -> None:  # noqa: ANN001
        try:
            start.wait()
            Conversation.objects.get(pk=conversation.pk).take_over(agent)
            results[agent.pk] = "owner"
        except AlreadyTaken as exc:
            results[agent.pk] = str(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=click, args=(a,)) for a in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    owners = [pk for pk, result in results.items() if result == "owner"]
    assert len(results) == 50 and len(owners) == 1
    conversation.refresh_from_db()
    assert conversation.assignee_id == owners[0]
    winner = conversation.assignee.get_username()
    losers = {r for r in results.values() if r != "owner"}
    assert losers == {f"already taken by {winner}"}, losers
    assert conversation.activities.filter(kind="status_changed").count() == 1


def test_an_agent_cannot_act_on_a_conversation_a_lead_locked_to_someone_else() -> None:
    conversation = _conversation()
    lead = create_user(role="lead", username="lena")
    alice = create_user(role="agent", username="alice")
    bob = create_user(role="agent", username="bob")
    response = _htmx(
        _client(lead), f"/inbox/c/{conversation.pk}/assign/", agent=alice.pk
    )
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.is_locked and conversation.assignee == alice
    assert conversation.activities.last().summary == "lena assigned it to alice"

    as_bob = _client(bob)
    for action, data in [
        ("hand-back", {"to": "bot"}),
        ("resolve", {}),
        ("snooze", {"minutes": 30}),
        ("escalate", {}),
        ("reply", {"text": "I'll take this"}),
    ]:
        response = _htmx(as_bob, f"/inbox/c/{conversation.pk}/{action}/", **data)
        assert response.status_code in (403, 409), action
        assert "alice" in response.content.decode(), action
    conversation.refresh_from_db()
    assert conversation.status == "human" and conversation.assignee == alice
    assert not conversation.messages.filter(author="agent").exists()

    # An internal note is still allowed: it is never sent.
    response = _htmx(
        as_bob, f"/inbox/c/{conversation.pk}/reply/", text="FYI", note="on"
    )
    assert response.status_code == 200
    assert conversation.messages.get(author="agent").kind == "note"

    # The lead may act, and an agent may not assign at all.
    assert (
        _htmx(as_bob, f"/inbox/c/{conversation.pk}/assign/", agent=bob.pk).status_code
        == 403
    )
    response = _htmx(
        _client(lead), f"/inbox/c/{conversation.pk}/hand-back/", to="queue"
    )
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.status == "escalated" and conversation.assignee is None
    assert not conversation.is_locked and conversation.escalated_at is not None


def test_hand_back_to_the_bot_or_the_queue_and_resolve() -> None:
    conversation = _conversation()
    alice = create_user(role="agent", username="alice")
    client = _client(alice)
    _htmx(client, f"/inbox/c/{conversation.pk}/take-over/")
    response = _htmx(client, f"/inbox/c/{conversation.pk}/hand-back/", to="bot")
    assert (
        response.status_code == 200 and 'data-status="bot"' in response.content.decode()
    )
    _htmx(client, f"/inbox/c/{conversation.pk}/take-over/")
    _htmx(client, f"/inbox/c/{conversation.pk}/resolve/")
    conversation.refresh_from_db()
    assert conversation.status == "resolved"
    summaries = [
        a.summary for a in conversation.activities.filter(kind="status_changed")
    ]
    assert summaries == [
        "alice took over",
        "alice handed it back to the bot",
        "alice took over",
        "resolved by alice",
    ]
    # The audit trail is the conversation's timeline.
    html = client.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert (
        html.count('class="audit"') == 4 and "alice handed it back to the bot" in html
    )


def test_a_customer_writing_to_a_resolved_conversation_reopens_it(settings) -> None:  # noqa: ANN001
    session = session_key()
    post_webhook(message_event(session_id=session, message_id=1))
    conversation = Conversation.objects.get()
    alice = create_user(role="agent", username="alice")
    conversation.take_over(alice)
    conversation.resolve(alice)
    post_webhook(message_event(session_id=session, message_id=2))
    conversation.refresh_from_db()
    assert conversation.status == "bot" and conversation.assignee is None
    assert conversation.activities.last().summary.startswith("reopened for the bot")

    settings.INBOX_REOPEN_TO_AGENT = True
    conversation.take_over(alice)
    conversation.resolve(alice)
    post_webhook(message_event(session_id=session, message_id=3))
    conversation.refresh_from_db()
    assert conversation.status == "human" and conversation.assignee == alice


def test_a_snooze_ends_back_with_its_owner_who_keeps_it_meanwhile() -> None:
    conversation = _conversation()
    alice = create_user(role="agent", username="alice")
    conversation.take_over(alice)
    conversation.snooze(alice, timezone.now() + timedelta(minutes=30))
    wake_snoozed_conversations.fn()
    conversation.refresh_from_db()
    assert conversation.status == "snoozed" and conversation.assignee == alice
    assert conversation.is_bot_paused  # the owner still holds the bot back

    Conversation.objects.filter(pk=conversation.pk).update(
        snoozed_until=timezone.now() - timedelta(seconds=1)
    )
    wake_snoozed_conversations.fn()
    conversation.refresh_from_db()
    assert conversation.status == "human" and conversation.assignee == alice
    assert conversation.snoozed_until is None
    assert conversation.activities.last().summary == "snooze ended, back to alice"


def test_a_snooze_from_the_queue_ends_back_in_the_queue() -> None:
    conversation = _conversation()
    conversation.escalate(reason="angry")
    conversation.snooze(create_user(role="lead"), timezone.now() - timedelta(seconds=1))
    wake_snoozed_conversations.fn()
    conversation.refresh_from_db()
    assert conversation.status == "escalated" and conversation.assignee is None
    assert conversation.escalated_at is not None


def test_a_snooze_keeps_a_leads_lock_and_nobody_else_can_take_it() -> None:
    """A lead locks a conversation to alice; alice snoozes it. Bob may not take
    it over meanwhile, and the lock is still there when it wakes."""
    conversation = _conversation()
    lead = create_user(role="lead", username="lena")
    alice = create_user(role="agent", username="alice")
    bob = create_user(role="agent", username="bob")
    conversation.assign(lead, alice)
    as_alice = _client(alice)
    response = _htmx(as_alice, f"/inbox/c/{conversation.pk}/snooze/", minutes=30)
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.status == "snoozed"
    assert conversation.assignee == alice and conversation.is_locked

    response = _htmx(_client(bob), f"/inbox/c/{conversation.pk}/take-over/")
    assert response.status_code in (403, 409)
    assert "alice" in response.content.decode()
    with pytest.raises(AlreadyTaken):
        conversation.take_over(bob)
    conversation.refresh_from_db()
    assert conversation.assignee == alice and conversation.is_locked

    Conversation.objects.filter(pk=conversation.pk).update(
        snoozed_until=timezone.now() - timedelta(seconds=1)
    )
    wake_snoozed_conversations.fn()
    conversation.refresh_from_db()
    assert conversation.status == "human" and conversation.assignee == alice
    assert conversation.is_locked


def test_the_gateway_can_ask_for_a_human() -> None:
    conversation = _conversation(escalate=True)
    assert conversation.status == "escalated"
    assert conversation.escalation_reason == "the gateway asked for a human"
    response = post_webhook(message_event(escalate="yes"))
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "data.escalate"


def test_escalate_button_and_the_queue_page_oldest_first() -> None:
    alice = create_user(role="agent", username="alice")
    client = _client(alice)
    first = _conversation()
    second = _conversation(channel="whatsapp")
    third = _conversation()
    for conversation in (first, second):
        response = _htmx(client, f"/inbox/c/{conversation.pk}/escalate/")
        assert response.status_code == 200
    Conversation.objects.filter(pk=first.pk).update(
        escalated_at=timezone.now() - timedelta(minutes=6)
    )
    html = client.get("/inbox/queue/").content.decode()
    assert html.index(f'id="queue-{first.pk}"') < html.index(f'id="queue-{second.pk}"')
    assert f'id="queue-{third.pk}"' not in html
    assert (
        "Telegram: <strong>1</strong>" in html
        and "WhatsApp: <strong>1</strong>" in html
    )
    # The navigation counts what waits, on every page.
    assert 'data-count="2"' in client.get("/inbox/").content.decode()


def test_users_without_a_role_are_refused() -> None:
    conversation = _conversation()
    nobody = _client(create_user())
    assert nobody.get("/inbox/").status_code == 403
    assert nobody.post(f"/inbox/c/{conversation.pk}/take-over/").status_code == 403
    conversation.refresh_from_db()
    assert conversation.assignee is None


def test_auto_assignment_is_round_robin_among_online_agents_with_a_cap(
    settings,  # noqa: ANN001
) -> None:
    from inbox.models import AgentStatus
    from inbox.tasks import auto_assign_escalations

    settings.INBOX_AUTO_ASSIGN = True
    settings.INBOX_AUTO_ASSIGN_CAP = 2
    alice = create_user(role="agent", username="alice")
    bob = create_user(role="agent", username="bob")
    offline = create_user(role="agent", username="carol")
    AgentStatus.seen(alice)
    AgentStatus.seen(bob)
    AgentStatus.objects.create(
        user=offline, last_seen_at=timezone.now() - timedelta(minutes=5)
    )
    waiting = []
    for minutes in (50, 40, 30, 20, 10):
        conversation = _conversation()
        Conversation.objects.filter(pk=conversation.pk).update(
            status="escalated", escalated_at=timezone.now() - timedelta(minutes=minutes)
        )
        waiting.append(conversation)

    auto_assign_escalations.fn()
    owners = [Conversation.objects.get(pk=c.pk).assignee_id for c in waiting]
    # Oldest first, taking turns, two each at most; the newest still waits.
    assert owners[:4] in ([alice.pk, bob.pk] * 2, [bob.pk, alice.pk] * 2)
    assert owners[4] is None
    assert offline.pk not in owners
    assert Conversation.objects.get(pk=waiting[0].pk).activities.last().summary in (
        "auto-assigned to alice",
        "auto-assigned to bob",
    )

    settings.INBOX_AUTO_ASSIGN = False
    Conversation.objects.filter(pk=waiting[0].pk).update(status="resolved")
    auto_assign_escalations.fn()
    assert Conversation.objects.get(pk=waiting[4].pk).assignee_id is None


def test_an_agent_who_replies_to_an_ended_conversation_keeps_it_when_the_customer_writes(
    settings,
) -> None:  # noqa: ANN001
    settings.INBOX_REOPEN_TO_AGENT = False  # the default: a customer reopens to the bot
    conversation = _conversation()
    session = conversation.session_id
    post_webhook({"event": "status", "data": {"sessionId": session, "status": "ended"}})
    conversation.refresh_from_db()
    assert (conversation.status, conversation.is_active) == ("resolved", False)

    alice = create_user(role="agent", username="alice")
    response = _htmx(
        _client(alice), f"/inbox/c/{conversation.pk}/reply/", text="Still there?"
    )
    assert response.status_code in (200, 204), response.content[:300]
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee, conversation.is_active) == (
        "human",
        alice,
        True,
    )

    post_webhook(message_event(session_id=session, text="yes, still here"))
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == ("human", alice)
    assert not conversation.activities.filter(
        kind=Activity.Kind.STATUS_CHANGED, data__reason="customer wrote again"
    ).exists()
    # A conversation nobody reopened still goes back to the bot, as configured.
    other = _conversation()
    post_webhook(
        {"event": "status", "data": {"sessionId": other.session_id, "status": "ended"}}
    )
    post_webhook(message_event(session_id=other.session_id, text="hello again"))
    other.refresh_from_db()
    assert (other.status, other.is_active) == ("bot", True)


def test_an_agent_takes_over_from_the_owner_their_page_showed_unless_locked() -> None:
    conversation = _conversation()
    alice = create_user(role="agent", username="alice")
    bob = create_user(role="agent", username="bob")
    carol = create_user(role="agent", username="carol")
    conversation.take_over(alice)
    # Without saying from whom: refused, as ever (the take-over race).
    response = _htmx(_client(bob), f"/inbox/c/{conversation.pk}/take-over/")
    assert response.status_code == 409
    # From alice, as bob's page showed: his.
    response = _htmx(
        _client(bob), f"/inbox/c/{conversation.pk}/take-over/", **{"from": alice.pk}
    )
    assert response.status_code == 200, response.content[:300]
    conversation.refresh_from_db()
    assert conversation.assignee == bob
    # Carol's page still said alice: refused, and told it is bob's now.
    response = _htmx(
        _client(carol), f"/inbox/c/{conversation.pk}/take-over/", **{"from": alice.pk}
    )
    assert response.status_code == 409 and b"bob" in response.content
    # A lead's lock is not taken from by anyone.
    lead = create_user(role="lead", username="lena")
    conversation.assign(lead, bob)
    response = _htmx(
        _client(carol), f"/inbox/c/{conversation.pk}/take-over/", **{"from": bob.pk}
    )
    assert response.status_code == 409
    conversation.refresh_from_db()
    assert conversation.assignee == bob


def test_snooze_until_the_customer_replies_or_a_picked_time() -> None:
    conversation = _conversation()
    alice = create_user(role="agent", username="alice")
    conversation.take_over(alice)
    client = _client(alice)
    url = f"/inbox/c/{conversation.pk}/snooze/"
    assert _htmx(client, url, minutes="reply").status_code == 200
    conversation.refresh_from_db()
    assert (conversation.status, conversation.snoozed_until) == ("snoozed", None)
    page = client.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert "Snoozed until the customer replies" in page
    wake_snoozed_conversations.fn()  # no time to run out
    conversation.refresh_from_db()
    assert conversation.status == "snoozed"
    # The customer writes: back to its owner at once.
    post_webhook(message_event(session_id=conversation.session_id, text="any news?"))
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == ("human", alice)
    assert conversation.activities.filter(data__reason="customer replied").exists()

    # A picked time, sent with its offset.
    later = (timezone.now() + timedelta(days=2)).astimezone(
        timezone.get_fixed_timezone(540)
    )
    assert (
        _htmx(client, url, minutes="custom", until=later.isoformat()).status_code == 200
    )
    conversation.refresh_from_db()
    assert abs((conversation.snoozed_until - later).total_seconds()) < 1
    # In the past, missing, or too far: refused with the reason.
    conversation.take_over(alice)
    for until, reason in [
        ((timezone.now() - timedelta(hours=1)).isoformat(), b"in the future"),
        ("", b"pick the time"),
        ((timezone.now() + timedelta(days=400)).isoformat(), b"within a year"),
    ]:
        response = _htmx(client, url, minutes="custom", until=until)
        assert response.status_code == 400 and reason in response.content


def test_a_customer_reply_wakes_a_timed_snooze_early_to_the_queue() -> None:
    conversation = _conversation()
    alice = create_user(role="agent", username="alice")
    conversation.snooze(alice, timezone.now() + timedelta(hours=5))  # nobody owns it
    post_webhook(message_event(session_id=conversation.session_id, text="hello?"))
    conversation.refresh_from_db()
    assert conversation.status == "escalated" and conversation.snoozed_until is None
