"""One local day of the inbox's rows, counted into the rollup tables.

``compute_day`` reads; ``store_day`` replaces the day's rows in one
transaction under the day's ``RollupDay`` lock, so recomputing is idempotent
and two schedulers computing the same day at once queue rather than collide.
The definitions of each number are in README ("Reports").
"""

from __future__ import annotations

import bisect
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from automations.models import TriggerRun
from inbox.models import Activity, Conversation, Message
from reports.models import (
    BUCKET_EDGES,
    EXACT_SAMPLES,
    AgentDailyStat,
    DailyStat,
    RollupDay,
    TriggerDailyStat,
    empty_buckets,
)

STATUS = Activity.Kind.STATUS_CHANGED
ESCALATED = Conversation.Status.ESCALATED
RESOLVED = Conversation.Status.RESOLVED
# At the end of a day these still needed a human.
UNRESOLVED = (
    Conversation.Status.ESCALATED,
    Conversation.Status.HUMAN,
    Conversation.Status.SNOOZED,
)
# An agent's reply is counted against escalations up to this long before it.
LOOKBACK = timedelta(days=7)
CHUNK = 500
NO_REASON = "no reason given"
# How an automation words its escalation (automations.actions._escalate):
# the trigger's name; rows before December add ": " and the pattern that
# matched (never shown).
TRIGGER_REASON = re.compile(r"trigger [“\"](?P<name>.+?)[”\"](?::|$)", re.DOTALL)
# Escalations the inbox words itself, by kind (the label a report shows).
REASON_KINDS = {
    "the gateway asked for a human": "the gateway asked for a human",
    "snooze ended": "a snooze ended",
    "customer replied": "the customer replied to a snoozed conversation",
    "": NO_REASON,
}


def reason_label(reason: object) -> str:
    """An escalation's reason as a lead groups it: an automation's by its
    trigger's name (never the pattern), an agent's as "escalated by an
    agent", the inbox's own by kind; other text (the bot's) as it came,
    cut short. English: the digest leaves the product; the page translates
    (``reports.views.reason_words``)."""
    text = str(reason or "").strip()
    if found := TRIGGER_REASON.match(text):
        return f"trigger “{found.group('name').strip()[:80]}”"
    if text.startswith("escalated by "):
        return "escalated by an agent"
    if text in REASON_KINDS:
        return REASON_KINDS[text]
    return text[:80]


def bucket_of(seconds: float) -> int:
    """The histogram bucket (index) holding a duration of ``seconds``."""
    return bisect.bisect_left(BUCKET_EDGES, max(0.0, seconds))


def day_window(day: date) -> tuple[datetime, datetime]:
    """The team's local day (``TIME_ZONE``) as an instant range [start, end)."""
    zone = ZoneInfo(settings.TIME_ZONE)
    start = datetime.combine(day, clock(), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), clock(), tzinfo=zone)
    return start, end


def local_today() -> date:
    return timezone.now().astimezone(ZoneInfo(settings.TIME_ZONE)).date()


class StatusChange(NamedTuple):
    pk: int
    conversation: int
    platform: str
    at: datetime
    previous: str | None
    to: str | None
    reason: str | None


@dataclass
class PlatformDay:
    conversations_opened: int = 0
    messages_in: int = 0
    messages_out: int = 0
    answered_bot: int = 0
    answered_human: int = 0
    waiting_human: int = 0
    escalations: int = 0
    sla_breaches: int = 0
    resolved: int = 0
    unresolved_at_close: int = 0
    escalation_reasons: Counter[str] = field(default_factory=Counter)
    first_response: list[int] = field(default_factory=empty_buckets)
    resolution: list[int] = field(default_factory=empty_buckets)
    queue_wait: list[int] = field(default_factory=empty_buckets)
    samples: defaultdict[str, list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def record(self, name: str, seconds: float) -> None:
        """One duration into histogram ``name`` (and its exact list)."""
        getattr(self, name)[bucket_of(seconds)] += 1
        self.samples[name].append(round(max(0.0, seconds), 1))

    def exact(self, names: tuple[str, ...]) -> dict[str, list[float]]:
        """The exact durations of each of ``names`` that had few enough."""
        return {
            name: sorted(self.samples[name])
            for name in names
            if len(self.samples[name]) <= EXACT_SAMPLES
        }


HISTOGRAMS = ("first_response", "resolution", "queue_wait")


@dataclass
class AgentDay(PlatformDay):
    replies: int = 0
    conversations: int = 0


@dataclass
class Day:
    """What ``compute_day`` found; ``store_day`` writes it."""

    day: date
    platforms: defaultdict[str, PlatformDay] = field(
        default_factory=lambda: defaultdict(PlatformDay)
    )
    agents: defaultdict[int, AgentDay] = field(
        default_factory=lambda: defaultdict(AgentDay)
    )
    triggers: dict[int, int] = field(default_factory=dict)


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    items = sorted(set(ids))
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def _replies() -> Any:
    """Messages that reached (or were sent to) the customer from our side."""
    return Message.objects.filter(
        direction=Message.Direction.OUTBOUND,
        kind__in=(Message.Kind.TEXT, Message.Kind.MEDIA),
    ).exclude(delivery_state=Message.DeliveryState.SUPPRESSED)


def _customer_messages() -> Any:
    return Message.objects.filter(
        direction=Message.Direction.INBOUND,
        kind__in=(Message.Kind.TEXT, Message.Kind.MEDIA),
    )


def compute_day(day: date, *, now: datetime | None = None) -> Day:
    """Count one local day from the inbox's rows (reads only)."""
    now = now or timezone.now()
    start, end = day_window(day)
    window = Q(created_at__gte=start, created_at__lt=end)
    result = Day(day)
    platforms = result.platforms

    for row in (
        Conversation.objects.filter(window)
        .values("platform")
        .annotate(n=Count("id"))
        .order_by()
    ):
        platforms[row["platform"]].conversations_opened = row["n"]

    for row in (
        _customer_messages()
        .filter(window)
        .values("conversation__platform")
        .annotate(n=Count("id"))
        .order_by()
    ):
        platforms[row["conversation__platform"]].messages_in = row["n"]

    # Replies of the day, one row per conversation: how many, whether an agent
    # wrote one. The conversations answered, and those to look at for the
    # first response.
    answered: dict[int, str] = {}
    by_agent: set[int] = set()
    for row in (
        _replies()
        .filter(window)
        .values("conversation_id", "conversation__platform")
        .annotate(
            n=Count("id"),
            agent=Count("id", filter=Q(author=Message.Author.AGENT)),
        )
        .order_by()
    ):
        stats = platforms[row["conversation__platform"]]
        stats.messages_out += row["n"]
        if row["agent"]:
            stats.answered_human += 1
            by_agent.add(row["conversation_id"])
        answered[row["conversation_id"]] = row["conversation__platform"]
    _bot_alone({c: p for c, p in answered.items() if c not in by_agent}, end, platforms)

    _first_responses(answered, start, end, platforms)
    # The day's status changes, read once (the activity table is the largest
    # and has no index on its time): escalations and resolves come from them.
    changes = [
        StatusChange(*row)
        for row in Activity.objects.filter(window, kind=STATUS)
        .values_list(
            "id",
            "conversation_id",
            "conversation__platform",
            "created_at",
            "data__from",
            "data__to",
            "data__reason",
        )
        .order_by("id")
    ]
    _escalations([c for c in changes if c.to == ESCALATED], start, now, platforms)
    _resolutions(
        [c for c in changes if c.to == RESOLVED and c.previous != RESOLVED],
        end,
        platforms,
    )
    _unresolved(end, now, platforms)
    _agents(window, start, end, result.agents)

    result.triggers = dict(
        TriggerRun.objects.filter(window)
        .values("trigger_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("trigger_id", "n")
    )
    return result


def _bot_alone(
    unanswered_by_agent: dict[int, str],
    end: datetime,
    platforms: defaultdict[str, PlatformDay],
) -> None:
    """Of the conversations answered that day without an agent reply: those
    never escalated nor with a human, and without any agent reply before the
    day's end, are "bot alone"; the others were waiting for a human."""
    for ids in _chunks(unanswered_by_agent):
        humans = set(
            Activity.objects.filter(
                kind=STATUS,
                conversation_id__in=ids,
                data__to__in=UNRESOLVED,
                created_at__lt=end,
            ).values_list("conversation_id", flat=True)
        ) | set(
            _replies()
            .filter(
                author=Message.Author.AGENT, conversation_id__in=ids, created_at__lt=end
            )
            .values_list("conversation_id", flat=True)
        )
        for cid in ids:
            stats = platforms[unanswered_by_agent[cid]]
            if cid in humans:
                stats.waiting_human += 1
            else:
                stats.answered_bot += 1


def _first_responses(
    answered: dict[int, str],
    start: datetime,
    end: datetime,
    platforms: defaultdict[str, PlatformDay],
) -> None:
    """First response: from a conversation's first customer message to our
    first reply to it, counted on the day of that reply."""
    for ids in _chunks(answered):
        first_reply = dict(
            _replies()
            .filter(conversation_id__in=ids)
            .values("conversation_id")
            .annotate(at=Min("created_at"))
            .order_by()
            .values_list("conversation_id", "at")
        )
        due = [cid for cid, at in first_reply.items() if start <= at < end]
        if not due:
            continue
        first_in = dict(
            _customer_messages()
            .filter(conversation_id__in=due)
            .values("conversation_id")
            .annotate(at=Min("created_at"))
            .order_by()
            .values_list("conversation_id", "at")
        )
        for cid in due:
            asked = first_in.get(cid)
            if asked is None or asked > first_reply[cid]:
                continue  # we wrote first: nothing was waiting for an answer
            seconds = (first_reply[cid] - asked).total_seconds()
            platforms[answered[cid]].record("first_response", seconds)


def _escalations(
    escalations: list[StatusChange],
    start: datetime,
    now: datetime,
    platforms: defaultdict[str, PlatformDay],
) -> None:
    """Escalations started that day, their reasons, how long each waited in
    the queue (until its next status change), and which waited past
    ``INBOX_SLA_RED_SECONDS`` (still waiting: until now)."""
    if not escalations:
        return
    later: defaultdict[int, list[tuple[int, datetime]]] = defaultdict(list)
    for ids in _chunks(e.conversation for e in escalations):
        for pk, cid, at in (
            Activity.objects.filter(
                kind=STATUS, conversation_id__in=ids, created_at__gte=start
            )
            .values_list("id", "conversation_id", "created_at")
            .order_by("id")
        ):
            later[cid].append((pk, at))
    red = settings.INBOX_SLA_RED_SECONDS
    for e in escalations:
        stats = platforms[e.platform]
        stats.escalations += 1
        stats.escalation_reasons[reason_label(e.reason)] += 1
        ended = next((t for pk, t in later[e.conversation] if pk > e.pk), None)
        waited = ((ended or now) - e.at).total_seconds()
        if ended is not None:
            stats.record("queue_wait", waited)
        if waited > red:
            stats.sla_breaches += 1


def _resolutions(
    resolves: list[StatusChange],
    end: datetime,
    platforms: defaultdict[str, PlatformDay],
) -> None:
    """Resolution time: from the conversation's start, or its latest reopening
    before the resolve, to the resolve; counted on the day of the resolve."""
    if not resolves:
        return
    opened: dict[int, datetime] = {}
    reopened: defaultdict[int, list[datetime]] = defaultdict(list)
    for ids in _chunks(r.conversation for r in resolves):
        opened |= dict(
            Conversation.objects.filter(pk__in=ids).values_list("pk", "created_at")
        )
        for cid, at in Activity.objects.filter(
            kind=STATUS,
            conversation_id__in=ids,
            data__from=RESOLVED,
            created_at__lt=end,
        ).values_list("conversation_id", "created_at"):
            reopened[cid].append(at)
    for r in resolves:
        cid = r.conversation
        began = max([opened[cid], *(t for t in reopened[cid] if t < r.at)])
        platforms[r.platform].resolved += 1
        platforms[r.platform].record("resolution", (r.at - began).total_seconds())


def _unresolved(
    end: datetime, now: datetime, platforms: defaultdict[str, PlatformDay]
) -> None:
    """Conversations escalated, owned or snoozed when the day ended: for a
    day not over yet, as they are now; else each one's last status change
    before the day's end."""
    rows: Iterable[tuple[str, int]]
    if end > now:
        rows = (
            Conversation.objects.filter(status__in=UNRESOLVED)
            .values("platform")
            .annotate(n=Count("id"))
            .order_by()
            .values_list("platform", "n")
        )
    else:
        last = (
            Activity.objects.filter(kind=STATUS, created_at__lt=end)
            .values("conversation_id")
            .annotate(last=Max("id"))
            .values("last")
        )
        rows = (
            Activity.objects.filter(id__in=last, data__to__in=UNRESOLVED)
            .values("conversation__platform")
            .annotate(n=Count("id"))
            .order_by()
            .values_list("conversation__platform", "n")
        )
    for platform, n in rows:
        platforms[platform].unresolved_at_close = n


def _agents(
    window: Q, start: datetime, end: datetime, agents: defaultdict[int, AgentDay]
) -> None:
    """Per agent: replies and conversations replied to that day, and the wait
    from each escalation to the first agent reply after it (on that day),
    credited to the agent who wrote it."""
    agent_replies = _replies().filter(
        author=Message.Author.AGENT, sent_by__isnull=False
    )
    conversations: set[int] = set()
    for row in (
        agent_replies.filter(window)
        .values("sent_by_id")
        .annotate(n=Count("id"), c=Count("conversation_id", distinct=True))
        .order_by()
    ):
        agents[row["sent_by_id"]].replies = row["n"]
        agents[row["sent_by_id"]].conversations = row["c"]
    conversations.update(
        agent_replies.filter(window).values_list("conversation_id", flat=True)
    )
    since = start - LOOKBACK
    for ids in _chunks(conversations):
        events: defaultdict[int, list[tuple[datetime, int, int | None]]] = defaultdict(
            list
        )
        # (time, 0 = escalation / 1 = reply, agent)
        for cid, at in Activity.objects.filter(
            kind=STATUS,
            data__to=ESCALATED,
            conversation_id__in=ids,
            created_at__gte=since,
            created_at__lt=end,
        ).values_list("conversation_id", "created_at"):
            events[cid].append((at, 0, None))
        for cid, at, agent in agent_replies.filter(
            conversation_id__in=ids, created_at__gte=since, created_at__lt=end
        ).values_list("conversation_id", "created_at", "sent_by_id"):
            events[cid].append((at, 1, agent))
        for timeline in events.values():
            waiting: datetime | None = None
            for at, kind, agent in sorted(timeline, key=lambda e: (e[0], e[1])):
                if kind == 0:
                    waiting = waiting or at
                elif waiting is not None:
                    if at >= start and agent is not None:
                        seconds = (at - waiting).total_seconds()
                        agents[agent].record("first_response", seconds)
                    waiting = None


def missing_days(first: date, last: date) -> list[date]:
    """Days in ``first``..``last`` never computed, newest first, from the day
    the first conversation began (before it there is nothing to count)."""
    began = Conversation.objects.aggregate(first=Min("created_at"))["first"]
    if began is None:
        return []
    first = max(first, began.astimezone(ZoneInfo(settings.TIME_ZONE)).date())
    done = set(
        RollupDay.objects.filter(day__gte=first, day__lte=last).values_list(
            "day", flat=True
        )
    )
    span = (last - first).days
    return [
        day
        for day in (last - timedelta(days=i) for i in range(span + 1))
        if day not in done
    ]


def unrolled_days_with_data(first: date, last: date) -> list[date]:
    """Days in ``first``..``last`` (up to today) that have messages but were
    never rolled up, newest first. Days before the first conversation, days
    without a message and days to come are not "missing"."""
    candidates = missing_days(first, min(last, local_today()))
    if not candidates:
        return []
    zone = ZoneInfo(settings.TIME_ZONE)
    start, _ = day_window(min(candidates))
    _, end = day_window(max(candidates))
    wanted = set(candidates)
    found: set[date] = set()
    # One pass over the window; the days with data are few and rare (the
    # scheduler backfills), so this runs seldom.
    for at in (
        Message.objects.filter(created_at__gte=start, created_at__lt=end)
        .values_list("created_at", flat=True)
        .iterator(chunk_size=2000)
    ):
        day = at.astimezone(zone).date()
        if day in wanted:
            found.add(day)
            if found == wanted:
                break
    return sorted(found, reverse=True)


def store_day(
    day: date, *, now: datetime | None = None, computed: Day | None = None
) -> RollupDay:
    """Compute ``day`` and replace its rollup rows; idempotent.

    Locks the day's ``RollupDay`` row for the replacement, so two runs of the
    same day write one after the other and the later one's rows stand.
    """
    began = time.perf_counter()
    computed = computed or compute_day(day, now=now)
    stamp = timezone.now()
    try:
        RollupDay.objects.get_or_create(day=day)
    except IntegrityError:
        pass  # made by a run alongside this one; locked below
    with transaction.atomic():
        marker = RollupDay.objects.select_for_update().get(day=day)
        DailyStat.objects.filter(day=day).delete()
        AgentDailyStat.objects.filter(day=day).delete()
        TriggerDailyStat.objects.filter(day=day).delete()
        DailyStat.objects.bulk_create(
            DailyStat(
                day=day,
                platform=platform,
                conversations_opened=s.conversations_opened,
                messages_in=s.messages_in,
                messages_out=s.messages_out,
                answered_bot=s.answered_bot,
                answered_human=s.answered_human,
                waiting_human=s.waiting_human,
                escalations=s.escalations,
                sla_breaches=s.sla_breaches,
                resolved=s.resolved,
                unresolved_at_close=s.unresolved_at_close,
                escalation_reasons=dict(s.escalation_reasons),
                first_response=s.first_response,
                resolution=s.resolution,
                queue_wait=s.queue_wait,
                exact=s.exact(HISTOGRAMS),
                computed_at=stamp,
            )
            for platform, s in computed.platforms.items()
        )
        AgentDailyStat.objects.bulk_create(
            AgentDailyStat(
                day=day,
                agent_id=agent,
                replies=a.replies,
                conversations=a.conversations,
                first_response=a.first_response,
                exact=a.exact(("first_response",)),
                computed_at=stamp,
            )
            for agent, a in computed.agents.items()
        )
        TriggerDailyStat.objects.bulk_create(
            TriggerDailyStat(day=day, trigger_id=trigger, matches=n, computed_at=stamp)
            for trigger, n in computed.triggers.items()
        )
        marker.computed_at = stamp
        marker.duration_ms = round((time.perf_counter() - began) * 1000, 1)
        marker.save(update_fields=["computed_at", "duration_ms"])
    return marker
