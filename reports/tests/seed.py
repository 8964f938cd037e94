"""Known data for the reports' tests: two local days in Asia/Seoul (UTC+9),
two platforms, a conversation that starts before UTC midnight's local day
boundary and an escalation that waits across local midnight.

D1 = 2026-03-10 and D2 = 2026-03-11, Seoul time. Expected numbers are worked
out in the comments and asserted in test_rollup.py.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

from automations.models import Trigger, TriggerRun
from core.testing import create_user
from inbox.models import Activity, Conversation, Message

D1 = date(2026, 3, 10)
D2 = date(2026, 3, 11)
LATER = datetime(2026, 3, 20, tzinfo=UTC)
_ids = itertools.count(1)


def utc(day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


def conversation(platform: str, at: datetime, **fields: Any) -> Conversation:
    conv = Conversation.objects.create(
        session_id=f"agent:main:{platform}:direct:{next(_ids)}",
        platform=platform,
        **fields,
    )
    Conversation.objects.filter(pk=conv.pk).update(created_at=at)
    conv.created_at = at
    return conv


def message(
    conv: Conversation,
    at: datetime,
    *,
    direction: str = "inbound",
    author: str = "customer",
    kind: str = "text",
    agent: Any = None,
    **fields: Any,
) -> Message:
    return Message.objects.create(
        conversation=conv,
        gateway_message_id=f"m{next(_ids)}",
        direction=direction,
        author=author,
        kind=kind,
        sent_by=agent,
        text=fields.pop("text", "hello"),
        created_at=at,
        **fields,
    )


def status(
    conv: Conversation, at: datetime, previous: str, to: str, reason: str = ""
) -> Activity:
    activity = Activity.objects.create(
        conversation=conv,
        kind=Activity.Kind.STATUS_CHANGED,
        data={"from": previous, "to": to, "by": "system", "reason": reason},
    )
    Activity.objects.filter(pk=activity.pk).update(created_at=at)
    return activity


def seed() -> dict[str, Any]:
    alice = create_user(username="alice", role="agent")
    bob = create_user(username="bob", role="agent")

    # A, telegram: 00:30 Seoul on D1 (still 03-09 in UTC).
    a = conversation("telegram", utc(9, 15, 30))
    first = message(a, utc(9, 15, 30))  # customer
    message(a, utc(9, 15, 30, 20), direction="outbound", author="bot")  # FRT 20 s
    status(a, utc(9, 15, 45), "bot", "escalated", "refund")
    status(a, utc(9, 15, 46), "escalated", "human")  # waited 60 s
    message(a, utc(9, 15, 47), direction="outbound", author="agent", agent=alice)
    message(  # a note: never counted
        a,
        utc(9, 15, 48),
        direction="outbound",
        author="agent",
        kind="note",
        agent=alice,
    )
    status(a, utc(9, 16, 30), "human", "resolved")  # resolution 3600 s

    # B, whatsapp: 23:50 Seoul on D1; its escalation waits past midnight.
    b = conversation("whatsapp", utc(10, 14, 50))
    message(b, utc(10, 14, 50))
    message(b, utc(10, 14, 50, 40), direction="outbound", author="bot")  # FRT 40 s
    message(  # a suppressed draft: the customer never got it
        b,
        utc(10, 14, 51),
        direction="outbound",
        author="bot",
        delivery_state="suppressed",
    )
    status(b, utc(10, 14, 55), "bot", "escalated", "angry")
    status(b, utc(10, 15, 5), "escalated", "human")  # 600 s: past the SLA (300)
    message(b, utc(10, 15, 6), direction="outbound", author="agent", agent=bob)

    # C, telegram: 10:00 Seoul on D2, answered by the bot in 10 s.
    c = conversation("telegram", utc(11, 1, 0))
    message(c, utc(11, 1, 0))
    message(c, utc(11, 1, 0, 10), direction="outbound", author="bot")

    trigger = Trigger.objects.create(name="Refund words", patterns=["refund"])
    TriggerRun.objects.create(
        trigger=trigger,
        message=first,
        conversation=a,
        trigger_version=1,
        created_at=utc(9, 15, 30, 1),
    )
    return {"alice": alice, "bob": bob, "a": a, "b": b, "c": c, "trigger": trigger}
