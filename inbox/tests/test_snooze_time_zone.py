"""A snooze "until…" reads in the agent's zone (their profile's, else the
team's), the zone the picker names and every time on the page is shown in."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from core.models import Profile
from core.templatetags.clock import stamp
from core.testing import create_user, message_event, post_webhook, session_key
from inbox.models import Activity, Conversation

pytestmark = pytest.mark.django_db


def _conversation() -> Conversation:
    post_webhook(message_event(session_id=session_key(), text="call me on Monday"))
    return Conversation.objects.latest("pk")


def _client(user) -> Client:  # noqa: ANN001
    client = Client()
    client.force_login(user)
    return client


def _a_day_to_come() -> date:
    return (timezone.now() + timedelta(days=40)).date()


def _snooze(client: Client, conversation: Conversation, at: str) -> str:
    answer = client.post(
        f"/inbox/c/{conversation.pk}/snooze/",
        {"minutes": "custom", "at": at},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200, answer.content
    return answer.content.decode()


def test_the_time_picked_reads_in_the_agents_profile_zone() -> None:
    alice = create_user(role="agent", username="alice")
    Profile.objects.create(user=alice, time_zone="Asia/Seoul")
    conversation = _conversation()
    client = _client(alice)
    page = client.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert "in <span data-zone>Asia/Seoul</span>" in page

    day = _a_day_to_come()
    header = _snooze(client, conversation, f"{day}T09:30")
    seoul = ZoneInfo("Asia/Seoul")
    picked = datetime.combine(day, time(9, 30), tzinfo=seoul)
    conversation.refresh_from_db()
    assert conversation.snoozed_until == picked
    with timezone.override(seoul):
        shown = stamp(picked)
    assert shown.endswith("09:30")
    assert shown in header  # the header says the time she picked

    activity = Activity.objects.filter(conversation=conversation).latest("pk")
    assert activity.data["reason"] == f"until {picked.astimezone(UTC):%Y-%m-%d %H:%M}"
    thread = client.get(f"/inbox/c/{conversation.pk}/").content.decode()
    utc = picked.astimezone(UTC).isoformat()
    # The thread's line too, as a stamp the browser puts in each agent's zone.
    assert f'snoozed it (until <time datetime="{utc}" data-stamp>{shown}</time>)' in (
        thread
    )


@override_settings(TIME_ZONE="America/New_York")
def test_without_a_profile_zone_the_team_zone_is_the_agents() -> None:
    bob = create_user(role="agent", username="bob")
    conversation = _conversation()
    client = _client(bob)
    page = client.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert "in <span data-zone>America/New_York</span>" in page
    day = _a_day_to_come()
    _snooze(client, conversation, f"{day}T09:30")
    conversation.refresh_from_db()
    assert conversation.snoozed_until == datetime.combine(
        day, time(9, 30), tzinfo=ZoneInfo("America/New_York")
    )


def test_scripts_still_send_a_time_with_its_offset() -> None:
    conversation = _conversation()
    client = _client(create_user(role="agent"))
    day = _a_day_to_come()
    answer = client.post(
        f"/inbox/c/{conversation.pk}/snooze/",
        {"minutes": "custom", "until": f"{day}T09:30:00+09:00"},
    )
    assert answer.status_code in (200, 302)
    conversation.refresh_from_db()
    assert conversation.snoozed_until == datetime.combine(day, time(0, 30), tzinfo=UTC)


def test_a_time_that_is_no_time_is_refused_with_the_reason() -> None:
    conversation = _conversation()
    client = _client(create_user(role="agent"))
    answer = client.post(
        f"/inbox/c/{conversation.pk}/snooze/",
        {"minutes": "custom", "at": "not a time"},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 400
    assert "Enter a valid date/time." in answer.content.decode()
    conversation.refresh_from_db()
    assert conversation.status != "snoozed"
