"""The morning digest: what a day looked like, per platform, in a few lines.

``build(day)`` counts the day from the inbox's rows (``rollup.compute_day``)
and stores that count as the day's rollup; for today it is "so far, at
HH:MM" (the ``/digest`` chat command, a manual send of today). The page's
preview is the same computation without the store (``store=False``), so a
preview and a send a moment later differ only by what happened between.
Other apps add sections through ``collect_sections``: a receiver gets
``day=`` (a local date) and returns ``(title, [lines])`` or ``None``. The
text is always masked (``core.masking.mask``): it leaves the product for a
chat group and mailboxes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Min
from django.dispatch import Signal
from django.utils import timezone

from core.masking import mask
from inbox.models import Conversation
from reports import rollup, summary
from reports.models import DailyStat, RollupDay

log = logging.getLogger(__name__)

# Sent with ``day`` (a date); each receiver returns (title, [lines]) or None.
collect_sections = Signal()

# A day's count is a spike when it is at least this much above the average
# of the seven days before it: both by this factor and by this many.
SPIKE_FACTOR = 1.5
SPIKE_MIN_EXTRA = 10
# No spike is claimed with fewer days of history than this before the day
# (a fresh install has nothing to compare with).
SPIKE_MIN_DAYS = 3
# Reasons listed per platform.
TOP_REASONS = 3


@dataclass
class DigestText:
    day: date
    so_far: bool
    title: str
    # When it was counted (the freshness a preview shows).
    as_of: datetime = field(default_factory=timezone.now)
    sections: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = [self.title]
        for title, lines in self.sections:
            parts.append("")
            parts.append(title)
            parts.extend(f"- {line}" for line in lines)
        return mask("\n".join(parts))

    def __str__(self) -> str:
        return self.text


def counted(n: int, noun: str) -> str:
    """``1 escalation``, ``2 escalations`` (the digest is English: it leaves
    the product for a chat group and mailboxes)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def duration(seconds: float | None) -> str:
    """A time in the digest's and the page's words: 45s, 3m, 1h 20m, 2d 4h."""
    if seconds is None:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        m, rest = divmod(s, 60)
        return f"{m}m {rest}s" if rest and m < 10 else f"{m}m"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h}h {m}m" if m else f"{h}h"
    d, h = divmod(s // 3600, 24)
    return f"{d}d {h}h" if h else f"{d}d"


def first_day() -> date | None:
    """The local day of the first conversation (before it there is no data)."""
    began = Conversation.objects.aggregate(first=Min("created_at"))["first"]
    if began is None:
        return None
    return began.astimezone(ZoneInfo(settings.TIME_ZONE)).date()


def spike(value: int, history: list[int]) -> float | None:
    """The average of ``history`` (the days before, with data) when ``value``
    is notably above it, else None; None with under SPIKE_MIN_DAYS days."""
    if len(history) < SPIKE_MIN_DAYS:
        return None
    average = sum(history) / len(history)
    if value >= average * SPIKE_FACTOR and value - average >= SPIKE_MIN_EXTRA:
        return average
    return None


def build(day: date, *, so_far: bool | None = None, store: bool = True) -> DigestText:
    """The digest of local ``day``, counted now from the inbox's rows.

    ``so_far``: the day is not over (default: whether ``day`` is today):
    titled "so far, at HH:MM", unresolved "now", no spike claims.
    ``store``: also store a past day's count as its rollup and fill in the
    seven days before it that the spikes compare with, when missing (a send;
    a page's preview passes False and writes nothing).
    """
    now = timezone.now()
    if so_far is None:
        so_far = day >= rollup.local_today()
    week = [day - timedelta(days=i) for i in range(7, 0, -1)]
    counted_day = rollup.compute_day(day, now=now)
    if store:
        if not so_far:
            rollup.store_day(day, computed=counted_day)
        have = set(RollupDay.objects.filter(day__in=week).values_list("day", flat=True))
        for missing in week:
            if missing not in have:
                rollup.store_day(missing)
    report = _report_from(counted_day)
    before = summary.build(week[0], week[-1])
    began = first_day()
    before.days = [d for d in before.days if began is not None and d >= began]

    clock = now.astimezone(ZoneInfo(settings.TIME_ZONE))
    title = (
        f"OpenClaw Inbox: {day.isoformat()} so far, at {clock:%H:%M}"
        if so_far
        else f"OpenClaw Inbox: daily digest for {day.isoformat()}"
    )
    digest = DigestText(day=day, so_far=so_far, title=title, as_of=now)
    total = report.total
    digest.sections.append(
        (
            "All platforms",
            [
                f"{counted(total.conversations_opened, 'conversation')} opened, "
                f"{counted(total.messages_in, 'message')} in, {total.messages_out} out",
                f"{counted(total.escalations, 'escalation')}, "
                f"{total.sla_breaches} past the SLA; "
                f"{total.unresolved_at_close} unresolved "
                + ("now" if so_far else "at close of day"),
                f"first response median {duration(total.first_response_median)}, "
                f"p90 {duration(total.first_response_p90)}; resolution median "
                f"{duration(total.resolution_median)}",
            ],
        )
    )
    for platform in report.platforms:
        stats = report.by_platform[platform]
        lines = [
            f"{stats.messages_in} in / {stats.messages_out} out, "
            f"{counted(stats.conversations_opened, 'new conversation')}",
            f"{counted(stats.escalations, 'escalation')} "
            f"({stats.sla_breaches} past the SLA), "
            f"{stats.unresolved_at_close} unresolved" + (" now" if so_far else ""),
            f"first response median {duration(stats.first_response_median)}, "
            f"p90 {duration(stats.first_response_p90)}",
        ]
        reasons = stats.reasons.most_common(TOP_REASONS)
        if reasons:
            lines.append("top reasons: " + "; ".join(f"{r} ({n})" for r, n in reasons))
        if not so_far:
            lines.extend(_spikes(platform, stats, before))
        digest.sections.append((summary.platform_label(platform), lines))
    if not report.platforms:
        digest.sections.append(("Platforms", ["no messages"]))
    for receiver, answer in collect_sections.send_robust(sender=DigestText, day=day):
        if isinstance(answer, Exception):
            log.error("digest section from %s failed: %r", receiver, answer)
            continue
        if answer:
            title, lines = answer
            digest.sections.append((str(title), [str(line) for line in lines]))
    return digest


def _spikes(platform: str, stats: summary.Totals, before: summary.Report) -> list[str]:
    notes = []
    for name, words in (("messages_in", "messages in"), ("escalations", "escalations")):
        history = [
            getattr(before.cells[(d, platform)], name)
            if (d, platform) in before.cells
            else 0
            for d in before.days
        ]
        value = getattr(stats, name)
        average = spike(value, history)
        if average is not None:
            notes.append(
                f"spike: {value} {words} vs {average:.1f} a day over the last "
                f"{len(history)} days"
            )
    return notes


def _report_from(counted: rollup.Day) -> summary.Report:
    """A one-day report from a live count (not stored)."""
    day = counted.day
    rows = [
        DailyStat(
            day=day,
            platform=platform,
            escalation_reasons=dict(s.escalation_reasons),
            **{name: getattr(s, name) for name in summary.COUNTS},
            **{name: getattr(s, name) for name in summary.HISTOGRAMS},
            # A live count has every duration: its percentiles are exact.
            exact={name: sorted(s.samples[name]) for name in summary.HISTOGRAMS},
        )
        for platform, s in counted.platforms.items()
    ]
    return summary.from_rows(day, day, rows)
