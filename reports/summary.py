"""A range of days read from the rollup: the table, the charts' numbers, the
CSV. Nothing here reads the inbox's tables.

Medians and p90s over a range are exact when every row of the group kept its
durations (a day and platform with at most ``EXACT_SAMPLES`` of them): they
are read from the sorted values, interpolated between the two nearest ranks.
Otherwise they come from the summed histograms (percentiles cannot be added
up): the rank is found in the cumulative counts and placed linearly inside its
bucket, so a figure is within 10 % of the exact one, and is shown with "≈"
(docs/reports.md, "What is exact").
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from itertools import accumulate
from typing import Any

from django.contrib.auth import get_user_model

from automations.models import Trigger
from inbox.models import Platform
from reports import rollup
from reports.models import (
    BUCKET_EDGES,
    AgentDailyStat,
    DailyStat,
    RollupDay,
    TriggerDailyStat,
    empty_buckets,
)

COUNTS = (
    "conversations_opened",
    "messages_in",
    "messages_out",
    "answered_bot",
    "answered_human",
    "waiting_human",
    "escalations",
    "sla_breaches",
    "resolved",
    "unresolved_at_close",
)
HISTOGRAMS = ("first_response", "resolution", "queue_wait")


def percentile(buckets: list[int], q: float) -> float | None:
    """The ``q`` quantile (0–1) of a histogram over ``BUCKET_EDGES``, in
    seconds; ``None`` when it is empty. Linear within the bucket; the open
    last bucket answers its lower edge."""
    cumulative = list(accumulate(buckets))
    total = cumulative[-1] if cumulative else 0
    if not total:
        return None
    rank = max(q * total, 1e-9)
    # The first bucket whose running count reaches the rank (it is not empty).
    index = min(bisect_left(cumulative, rank), len(buckets) - 1)
    count = buckets[index]
    seen = cumulative[index] - count
    low = BUCKET_EDGES[index - 1] if index else 0
    if index >= len(BUCKET_EDGES):
        return float(low)
    high = BUCKET_EDGES[index]
    return low + (high - low) * (rank - seen) / count


def exact_percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile of ``values`` (sorted), linear between the two
    nearest ranks (as a spreadsheet's PERCENTILE): one value is its own
    median and p90."""
    if not values:
        return None
    position = q * (len(values) - 1)
    below = int(position)
    above = min(below + 1, len(values) - 1)
    return values[below] + (values[above] - values[below]) * (position - below)


def add_exact(
    into: list[float] | None, row_exact: dict[str, list[float]], name: str
) -> list[float] | None:
    """``into`` with one row's exact durations of ``name``; ``None`` (only the
    histogram) once a row has none kept."""
    if into is None or name not in (row_exact or {}):
        return None
    into.extend(row_exact[name])
    return into


def add(into: list[int], more: list[int]) -> list[int]:
    """``more`` added into ``into`` (in place; returned). A row from other
    bucket edges is left out: recompute its day."""
    if len(more) == len(into):
        into[:] = map(operator.add, into, more)
    return into


@dataclass
class Totals:
    """Counts and histograms summed over some rows."""

    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    first_response: list[int] = field(default_factory=empty_buckets)
    resolution: list[int] = field(default_factory=empty_buckets)
    queue_wait: list[int] = field(default_factory=empty_buckets)
    # Every duration of each histogram, when all rows kept theirs, else None.
    exact: dict[str, list[float] | None] = field(
        default_factory=lambda: {name: [] for name in HISTOGRAMS}
    )
    _sorted: dict[str, list[float]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def add(self, row: DailyStat) -> None:
        for name in COUNTS:
            self.counts[name] += getattr(row, name)
        self.reasons.update(row.escalation_reasons or {})
        for name in HISTOGRAMS:
            add(getattr(self, name), getattr(row, name))
            self.exact[name] = add_exact(self.exact[name], row.exact, name)

    @classmethod
    def of(cls, row: DailyStat) -> Totals:
        """One row's totals, sharing its histograms (read, never added to)."""
        return cls(
            counts=Counter({name: getattr(row, name) for name in COUNTS}),
            reasons=Counter(row.escalation_reasons or {}),
            first_response=row.first_response,
            resolution=row.resolution,
            queue_wait=row.queue_wait,
            exact={name: (row.exact or {}).get(name) for name in HISTOGRAMS},
        )

    def __getattr__(self, name: str) -> Any:
        if name in COUNTS:
            return self.counts[name]
        raise AttributeError(name)

    @property
    def answered(self) -> int:
        return (
            self.counts["answered_bot"]
            + self.counts["answered_human"]
            + self.counts["waiting_human"]
        )

    @property
    def bot_share(self) -> float | None:
        return self.counts["answered_bot"] / self.answered if self.answered else None

    @property
    def human_share(self) -> float | None:
        return self.counts["answered_human"] / self.answered if self.answered else None

    def p(self, name: str, q: float) -> float | None:
        values = self.exact.get(name)
        if values is not None:
            # Sorted once for the median and the p90 (a long range holds
            # thousands); sorted again only if rows were added since.
            ordered = self._sorted.get(name)
            if ordered is None or len(ordered) != len(values):
                ordered = self._sorted[name] = sorted(values)
            return exact_percentile(ordered, q)
        return percentile(getattr(self, name), q)

    def is_exact(self, name: str) -> bool:
        """Whether ``p(name, …)`` is exact (else read from the histogram)."""
        return self.exact.get(name) is not None

    @property
    def first_response_median(self) -> float | None:
        return self.p("first_response", 0.5)

    @property
    def first_response_p90(self) -> float | None:
        return self.p("first_response", 0.9)

    @property
    def resolution_median(self) -> float | None:
        return self.p("resolution", 0.5)

    @property
    def resolution_p90(self) -> float | None:
        return self.p("resolution", 0.9)

    @property
    def queue_wait_median(self) -> float | None:
        return self.p("queue_wait", 0.5)

    @property
    def top_reason(self) -> str:
        return self.reasons.most_common(1)[0][0] if self.reasons else ""


@dataclass
class AgentLine:
    name: str
    replies: int = 0
    conversations: int = 0
    first_response: list[int] = field(default_factory=empty_buckets)
    exact: list[float] | None = field(default_factory=list)

    @property
    def first_response_median(self) -> float | None:
        if self.exact is not None:
            return exact_percentile(sorted(self.exact), 0.5)
        return percentile(self.first_response, 0.5)


@dataclass
class Report:
    first: date
    last: date
    days: list[date]
    platforms: list[str]
    # (day, platform) -> totals of that one row
    cells: dict[tuple[date, str], Totals]
    by_platform: dict[str, Totals]
    total: Totals
    agents: list[AgentLine]
    triggers: list[tuple[str, int]]
    computed: dict[date, datetime]

    @cached_property
    def missing_days(self) -> list[date]:
        """Days of the range (up to today) with messages that the rollup has
        not computed yet; days before the first data or to come are not.
        No query when every day up to today is computed (the usual case)."""
        today = rollup.local_today()
        absent = [d for d in self.days if d <= today and d not in self.computed]
        if not absent:
            return []
        return rollup.unrolled_days_with_data(min(absent), max(absent))

    @property
    def future_days(self) -> int:
        """Days of the range after today ("not yet")."""
        today = rollup.local_today()
        return sum(1 for d in self.days if d > today)

    @property
    def updated_at(self) -> datetime | None:
        """The freshness of the newest day shown (the one still changing)."""
        if not self.computed:
            return None
        return self.computed[max(self.computed)]

    def rows(self) -> list[tuple[date, str, Totals]]:
        """The table's (and CSV's) rows: each day, each platform with data."""
        return [
            (day, platform, self.cells[(day, platform)])
            for day in self.days
            for platform in self.platforms
            if (day, platform) in self.cells
        ]


def platform_label(code: str) -> str:
    try:
        return str(Platform(code).label)
    except ValueError:
        return code


def from_rows(first: date, last: date, rows: Iterable[DailyStat]) -> Report:
    """A report of ``rows`` alone (no agents, triggers or freshness)."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    cells: dict[tuple[date, str], Totals] = {}
    by_platform: defaultdict[str, Totals] = defaultdict(Totals)
    total = Totals()
    for row in rows:
        cells[(row.day, row.platform)] = Totals.of(row)  # one row per key
        by_platform[row.platform].add(row)
        total.add(row)
    platforms = sorted(by_platform, key=lambda p: (-by_platform[p].messages_in, p))
    return Report(
        first=first,
        last=last,
        days=days,
        platforms=platforms,
        cells=cells,
        by_platform=dict(by_platform),
        total=total,
        agents=[],
        triggers=[],
        computed={},
    )


# Exact durations are read for a range up to this long, or a longer one with
# at most EXACT_RANGE_CASES timed cases in all: decoding hundreds of rows'
# lists costs more than a page may (docs/benchmarks.md, §9), and a range
# that busy reads its figures from the histograms, within 10 % ("≈").
EXACT_RANGE_DAYS = 31
EXACT_RANGE_CASES = 5000


def _rows(first: date, last: date) -> list[DailyStat]:
    """The range's rows; with their exact durations only when the range is
    short or quiet (else ``exact`` is empty: every figure "≈")."""
    stats = DailyStat.objects.filter(day__gte=first, day__lte=last).order_by(
        "day", "platform"
    )
    if (last - first).days + 1 <= EXACT_RANGE_DAYS:
        return list(stats)
    rows = list(stats.defer("exact"))
    cases = sum(
        r.answered_bot + r.answered_human + r.waiting_human + r.resolved + r.escalations
        for r in rows
    )
    exact = dict(stats.values_list("pk", "exact")) if cases <= EXACT_RANGE_CASES else {}
    for row in rows:
        row.exact = exact.get(row.pk, {})
    return rows


def build(first: date, last: date) -> Report:
    """Sum the rollup over ``first``..``last`` (local days, inclusive)."""
    report = from_rows(first, last, _rows(first, last))
    agents: dict[int, AgentLine] = {}
    for stat in AgentDailyStat.objects.filter(day__gte=first, day__lte=last):
        line = agents.setdefault(stat.agent_id, AgentLine(name=""))
        line.replies += stat.replies
        line.conversations += stat.conversations
        line.first_response = add(line.first_response, stat.first_response)
        line.exact = add_exact(line.exact, stat.exact, "first_response")
    User = get_user_model()
    names = dict(
        User.objects.filter(pk__in=agents).values_list("pk", User.USERNAME_FIELD)
    )
    for pk, line in agents.items():
        line.name = names.get(pk, f"#{pk}")
    report.agents = sorted(agents.values(), key=lambda a: (-a.replies, a.name))
    triggers: Counter[int] = Counter()
    for trigger_id, matches in TriggerDailyStat.objects.filter(
        day__gte=first, day__lte=last
    ).values_list("trigger_id", "matches"):
        triggers[trigger_id] += matches
    trigger_names = dict(
        Trigger.objects.filter(pk__in=triggers).values_list("pk", "name")
    )
    report.triggers = [
        (trigger_names.get(pk, f"#{pk}"), n) for pk, n in triggers.most_common(10)
    ]
    report.computed = dict(
        RollupDay.objects.filter(day__gte=first, day__lte=last).values_list(
            "day", "computed_at"
        )
    )
    return report
