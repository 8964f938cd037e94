import random
from datetime import date

import pytest
from django.core.management import call_command

from reports import rollup, summary
from reports.models import (
    BUCKET_EDGES,
    BUCKETS,
    AgentDailyStat,
    DailyStat,
    RollupDay,
    TriggerDailyStat,
)
from reports.rollup import bucket_of
from reports.summary import percentile
from reports.tests.seed import D1, D2, LATER, seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def seoul(settings):  # noqa: ANN001, ANN201
    settings.TIME_ZONE = "Asia/Seoul"
    settings.INBOX_SLA_RED_SECONDS = 300


def one(day: date, platform: str) -> DailyStat:
    return DailyStat.objects.get(day=day, platform=platform)


def histogram(*seconds: float) -> list[int]:
    buckets = [0] * BUCKETS
    for s in seconds:
        buckets[bucket_of(s)] += 1
    return buckets


def test_a_day_is_counted_in_the_teams_time_zone(seoul) -> None:  # noqa: ANN001
    data = seed()
    rollup.store_day(D1, now=LATER)
    rollup.store_day(D2, now=LATER)

    telegram = one(D1, "telegram")  # conversation A, 00:30 Seoul (03-09 UTC)
    assert (
        telegram.conversations_opened,
        telegram.messages_in,
        telegram.messages_out,  # the bot's and alice's; the note is not counted
        telegram.answered_bot,
        telegram.answered_human,
        telegram.escalations,
        telegram.sla_breaches,
        telegram.resolved,
        telegram.unresolved_at_close,
    ) == (1, 1, 2, 0, 1, 1, 0, 1, 0)
    assert telegram.escalation_reasons == {"refund": 1}
    assert telegram.first_response == histogram(20)
    assert telegram.exact == {
        "first_response": [20.0],
        "resolution": [3600.0],
        "queue_wait": [60.0],
    }
    assert telegram.queue_wait == histogram(60)
    assert telegram.resolution == histogram(3600)

    whatsapp = one(D1, "whatsapp")  # B, 23:50 Seoul; waits 600 s past midnight
    assert (
        whatsapp.conversations_opened,
        whatsapp.messages_in,
        whatsapp.messages_out,  # the suppressed draft is not counted
        whatsapp.answered_bot,
        whatsapp.answered_human,
        whatsapp.waiting_human,  # the bot answered, then it was escalated
        whatsapp.escalations,
        whatsapp.sla_breaches,
        whatsapp.unresolved_at_close,
    ) == (1, 1, 1, 0, 0, 1, 1, 1, 1)
    assert whatsapp.first_response == histogram(40)
    assert whatsapp.queue_wait == histogram(600)

    later = one(D2, "whatsapp")  # bob's reply after midnight, B still his
    assert (
        later.conversations_opened,
        later.messages_in,
        later.messages_out,
        later.answered_human,
        later.escalations,
        later.unresolved_at_close,
    ) == (0, 0, 1, 1, 0, 1)
    assert sum(later.first_response) == 0  # B's first reply was on D1

    c = one(D2, "telegram")
    assert (c.conversations_opened, c.messages_in, c.answered_bot) == (1, 1, 1)
    assert c.first_response == histogram(10)

    alice = AgentDailyStat.objects.get(day=D1, agent=data["alice"])
    assert (alice.replies, alice.conversations) == (1, 1)
    assert alice.first_response == histogram(120)  # escalated 15:45, replied 15:47
    bob = AgentDailyStat.objects.get(day=D2, agent=data["bob"])
    assert bob.first_response == histogram(660)  # the escalation was the day before
    assert not AgentDailyStat.objects.filter(day=D1, agent=data["bob"]).exists()

    assert list(TriggerDailyStat.objects.values_list("day", "matches")) == [(D1, 1)]
    assert set(RollupDay.objects.values_list("day", flat=True)) == {D1, D2}


def test_recomputing_a_day_replaces_its_rows(seoul) -> None:  # noqa: ANN001
    seed()
    rollup.store_day(D1, now=LATER)
    first = list(DailyStat.objects.values_list("platform", "messages_out"))
    rollup.store_day(D1, now=LATER)
    assert list(DailyStat.objects.values_list("platform", "messages_out")) == first
    assert DailyStat.objects.count() == 2
    assert AgentDailyStat.objects.count() == 1


def test_a_range_sums_days_and_reads_exact_percentiles_when_few(seoul) -> None:  # noqa: ANN001
    seed()
    call_command("rollup_reports", "--from", D1.isoformat(), "--to", D2.isoformat())
    report = summary.build(D1, D2)
    total = report.total
    assert (total.conversations_opened, total.messages_in, total.messages_out) == (
        3,
        3,
        5,
    )
    assert (total.escalations, total.sla_breaches) == (2, 1)
    assert (total.answered_bot, total.answered_human, total.waiting_human) == (
        1,
        2,
        1,
    )
    assert total.reasons == {"refund": 1, "angry": 1}
    # First responses 10, 20 and 40 s, each kept exactly: the median is the
    # middle one, p90 four fifths of the way from 20 to 40.
    assert total.is_exact("first_response")
    assert total.first_response_median == pytest.approx(20)
    assert total.first_response_p90 == pytest.approx(36)
    assert report.by_platform["telegram"].conversations_opened == 2
    assert [line.name for line in report.agents] == ["alice", "bob"]
    assert report.triggers == [("Refund words", 1)]
    assert report.missing_days == []


def test_percentiles_from_known_buckets() -> None:
    four = histogram(34, 35, 35, 36)  # all in (33, 36]
    assert percentile(four, 0.5) == pytest.approx(34.5)
    assert percentile(four, 0.9) == pytest.approx(35.7)
    assert percentile([0] * BUCKETS, 0.5) is None
    # Two in (1, 2], three in (605, 665]: the 40th percentile is the first
    # bucket's top; p90 (rank 4.5) is 2.5 of the second bucket's 3 along.
    mixed = histogram(2, 2, 615, 620, 630)
    assert percentile(mixed, 0.4) == pytest.approx(2)
    assert percentile(mixed, 0.9) == pytest.approx(605 + 60 * (2.5 / 3))
    assert percentile(histogram(10**7), 0.5) == BUCKET_EDGES[-1]  # open bucket


def test_buckets_are_at_most_ten_percent_wide_and_percentiles_within_it() -> None:
    widths = [
        (b - a) / a for a, b in zip(BUCKET_EDGES[9:], BUCKET_EDGES[10:], strict=False)
    ]
    assert max(widths) <= 0.1
    values = sorted(random.Random(14).lognormvariate(6, 1.5) for _ in range(2000))
    for q in (0.5, 0.9):
        exact = summary.exact_percentile(values, q)
        assert exact is not None
        assert percentile(histogram(*values), q) == pytest.approx(exact, rel=0.1)


def test_the_command_prints_its_progress(seoul, capsys) -> None:  # noqa: ANN001
    call_command("rollup_reports", "--from", "2026-03-01", "--to", "2026-03-03")
    out = capsys.readouterr().out
    assert "[1/3] 2026-03-01" in out and "[3/3] 2026-03-03" in out
    assert "3 days rolled up" in out


def test_the_scheduled_job_fills_in_missing_days_a_few_at_a_time(settings) -> None:  # noqa: ANN001
    from datetime import timedelta

    from django.utils import timezone

    from reports.tasks import BACKFILL_PER_RUN, roll_up_recent_days
    from reports.tests.seed import conversation

    conversation("telegram", timezone.now() - timedelta(days=20))
    today = rollup.local_today()
    roll_up_recent_days()
    done = set(RollupDay.objects.values_list("day", flat=True))
    newest = {today - timedelta(days=i) for i in range(2 + BACKFILL_PER_RUN)}
    assert done == newest
    for _ in range(5):
        roll_up_recent_days()
    # From the first conversation's day on, nothing before it.
    assert rollup.missing_days(today - timedelta(days=90), today) == []
    assert RollupDay.objects.count() == 21
