"""What a lead's walkthrough of the reports found (issue 14): custom dates,
escalation reasons by trigger name, honest times and their definitions, the
"not rolled up" notice and its Recompute, and the digest's wording."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.test import Client

from automations.actions import _escalate
from automations.models import Trigger, TriggerRun
from core.testing import create_user, drain
from reports import digest, rollup, summary, tasks
from reports.models import RollupDay
from reports.tests.seed import conversation, message, status
from reports.tests.test_reports_page import table_of

pytestmark = pytest.mark.django_db

D = date(2026, 3, 10)  # a Tuesday, Seoul
LATER = datetime(2026, 3, 20, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """``seconds`` after 01:00 UTC (10:00 Seoul) on D."""
    return datetime(2026, 3, 10, 1, 0, tzinfo=UTC) + timedelta(seconds=seconds)


@pytest.fixture
def seoul(settings):  # noqa: ANN001, ANN201
    settings.TIME_ZONE = "Asia/Seoul"
    settings.INBOX_SLA_RED_SECONDS = 300
    return settings


def lead() -> Client:
    client = Client()
    client.force_login(create_user(role="lead"))
    return client


def page(client: Client, query: str, **headers: str) -> tuple[int, str]:
    response = client.get(f"/reports/?{query}", headers=headers)
    return response.status_code, response.content.decode()


def alices_day() -> dict:
    """The walkthrough's numbers: alice answers two telegram conversations,
    each 600 s after its first message (525 s after its escalation), and
    resolves them 606 s and 625 s after they began; a whatsapp one resolved
    once (700 s); one escalated and never answered; one the bot handled."""
    alice = create_user(username="alice", role="agent")
    convs = {}
    for name, resolved in (("t1", 606), ("t2", 625)):
        c = conversation("telegram", at(0))
        message(c, at(0))
        message(c, at(10), direction="outbound", author="bot")
        status(c, at(75), "bot", "escalated", "the gateway asked for a human")
        message(c, at(600), direction="outbound", author="agent", agent=alice)
        status(c, at(resolved), "escalated", "resolved")
        convs[name] = c
    w = conversation("whatsapp", at(0))
    message(w, at(0))
    message(w, at(30), direction="outbound", author="bot")
    status(w, at(700), "bot", "resolved")
    waiting = conversation("telegram", at(0))
    message(waiting, at(0))
    message(waiting, at(20), direction="outbound", author="bot")
    status(waiting, at(40), "bot", "escalated", "escalated by bob")
    return {"alice": alice, **convs, "w": w, "waiting": waiting}


# --- 3: honest times, and what they mean --------------------------------------


def test_few_times_are_exact_and_one_resolution_is_its_own_p90(seoul) -> None:  # noqa: ANN001
    alices_day()
    rollup.store_day(D, now=LATER)
    report = summary.build(D, D)
    telegram = report.by_platform["telegram"]
    assert telegram.is_exact("resolution")
    assert telegram.resolution_median == pytest.approx(615.5)
    assert telegram.resolution_p90 == pytest.approx(606 + 19 * 0.9)
    whatsapp = report.by_platform["whatsapp"]
    assert whatsapp.resolution_median == whatsapp.resolution_p90 == 700
    # Overall 606, 625, 700.
    assert report.total.resolution_median == pytest.approx(625)
    assert report.total.resolution_p90 == pytest.approx(625 + 75 * 0.8)
    # Alice's wait after the escalations: 525 s each.
    [line] = report.agents
    assert line.first_response_median == pytest.approx(525)

    status_code, html = page(lead(), "range=custom&from=2026-03-10&to=2026-03-10")
    assert status_code == 200
    rows = table_of(html)
    header = rows[0]
    totals = {
        tuple(r[:2]): dict(zip(header, r, strict=True)) for r in rows if r[0] == "All"
    }
    assert totals[("All", "Telegram")]["Resolution median (s)"] == "616"
    assert totals[("All", "Telegram")]["Resolution p90 (s)"] == "623"
    assert totals[("All", "WhatsApp")]["Resolution median (s)"] == "700"
    assert totals[("All", "WhatsApp")]["Resolution p90 (s)"] == "700"
    assert "≈" not in html.split('id="report-table"')[1]
    assert "<td>8m 45s</td>" in html  # alice's median wait after escalation
    # The bot handled one of four answered; one waits for a human.
    assert '<dd id="sum-bot-share">25 %</dd>' in html
    assert '<dd id="sum-waiting">1</dd>' in html
    assert "What these numbers mean" in html
    assert "From an escalation to the agent" in html


def test_many_times_are_read_from_the_histogram_and_marked(seoul) -> None:  # noqa: ANN001
    for i in range(201):
        c = conversation("telegram", at(i))
        message(c, at(i))
        message(c, at(i + 100 + i % 7), direction="outbound", author="bot")
    rollup.store_day(D, now=LATER)
    total = summary.build(D, D).total
    assert not total.is_exact("first_response")
    median = total.first_response_median
    assert median is not None and abs(median - 103) <= 10.3  # within 10 %
    _code, html = page(lead(), "range=custom&from=2026-03-10&to=2026-03-10")
    assert re.search(r'<dd id="sum-first-response">≈1m 4\ds', html)
    frt = table_of(html)[1][table_of(html)[0].index("First response median (s)")]
    assert frt.startswith("≈")
    csv = (
        lead()
        .get("/reports/?range=custom&from=2026-03-10&to=2026-03-10&format=csv")
        .content.decode("utf-8-sig")
    )
    assert "≈" not in csv  # a spreadsheet gets numbers


# --- 2: reasons by trigger name, never the pattern ---------------------------


def test_escalation_reasons_are_grouped_by_trigger_name_and_kind(seoul) -> None:  # noqa: ANN001
    trigger = Trigger.objects.create(
        name="Negative sentiment → human",
        patterns=[r"\b(angry|furious|scam|complaint)\b", r"\bworst\b"],
    )
    for i, pattern in enumerate(trigger.patterns):
        c = conversation("telegram", at(i))
        first = message(c, at(i), text="this is the worst scam")
        run = TriggerRun.objects.create(
            trigger=trigger,
            message=first,
            conversation=c,
            trigger_version=1,
            matched_pattern=pattern,
        )
        assert _escalate({}, run, trigger) == "escalated"  # the automation's words
    gateway = conversation("telegram", at(10))
    gateway.escalate(reason="the gateway asked for a human")
    agent = create_user(username="carol", role="agent")
    mine = conversation("telegram", at(20))
    mine.escalate(agent, reason=f"escalated by {agent}")
    today = rollup.local_today()
    rollup.store_day(today)

    reasons = summary.build(today, today).total.reasons
    assert reasons == {
        "trigger “Negative sentiment → human”": 2,
        "the gateway asked for a human": 1,
        "escalated by an agent": 1,
    }
    _code, html = page(lead(), "range=today")
    assert "trigger “Negative sentiment → human”" in html
    assert "angry" not in html and "worst" not in html
    text = digest.build(today).text
    assert "trigger “Negative sentiment → human” (2)" in text
    assert "angry" not in text and "\\b" not in text


def test_reason_labels() -> None:
    assert rollup.reason_label('trigger "Refunds": refund|money back') == (
        "trigger “Refunds”"
    )
    assert rollup.reason_label("trigger “" + "Refunds " * 12 + "”") == (
        "trigger “" + ("Refunds " * 12).strip()[:80] + "”"
    )  # as stored since December: the name alone
    assert rollup.reason_label("snooze ended") == "a snooze ended"
    assert rollup.reason_label("") == "no reason given"
    assert rollup.reason_label("escalated by dana") == "escalated by an agent"


# --- 1: custom dates -----------------------------------------------------------


def test_dates_given_win_over_a_fixed_range(seoul) -> None:  # noqa: ANN001
    alices_day()
    rollup.store_day(D, now=LATER)
    _code, html = page(lead(), "range=7d&from=2026-03-10&to=2026-03-10")
    assert "2026-03-10 to 2026-03-10" in html
    assert '<option value="custom" selected>' in html


def test_a_half_picked_custom_range_keeps_the_report_and_says_so_inline(
    seoul,  # noqa: ANN001
) -> None:
    client = lead()
    response = client.get(
        "/reports/?range=custom&from=2026-03-10&to=",
        headers={"HX-Request": "true", "HX-Target": "report-body"},
    )
    html = response.content.decode()
    # The report region is left alone: the fields come back, with the reason.
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#range-fields"
    assert response["HX-Reswap"] == "outerHTML"
    assert 'id="report-table"' not in html
    assert 'id="range-to-error"' in html and "Pick the last day." in html
    assert 'aria-invalid="true"' in html and 'value="2026-03-10"' in html
    backwards = client.get(
        "/reports/?range=custom&from=2026-03-11&to=2026-03-10",
        headers={"HX-Request": "true", "HX-Target": "report-body"},
    ).content.decode()
    assert "The end is before the start." in backwards


# --- 4: missing days, Recompute, future days -----------------------------------


def test_days_before_the_first_data_and_to_come_are_not_missing(seoul) -> None:  # noqa: ANN001
    today = rollup.local_today()
    c = conversation("telegram", datetime.now(UTC) - timedelta(hours=1))
    message(c, datetime.now(UTC) - timedelta(hours=1))
    rollup.store_day(today)
    _code, html = page(lead(), "range=30d")
    assert "not in these numbers yet" not in html and "Recompute" not in html
    later = today + timedelta(days=3)
    _code, html = page(lead(), f"range=custom&from={today}&to={later}")
    assert "3 days of this range have not happened yet." in html
    assert "Recompute" not in html


@pytest.mark.django_db(transaction=True)
def test_a_lead_recomputes_days_with_data_and_the_page_reloads(seoul, worker) -> None:  # noqa: ANN001
    today = rollup.local_today()
    old = datetime.now(UTC) - timedelta(days=3)
    c = conversation("telegram", old)
    message(c, old)
    rollup.store_day(today)
    client = lead()
    _code, html = page(client, "range=7d")
    assert "1 day with data is not in these numbers yet." in html
    assert 'id="recompute"' in html
    first, last = today - timedelta(days=6), today
    started = client.post(
        "/reports/recompute/",
        {"from": first.isoformat(), "to": last.isoformat()},
        headers={"HX-Request": "true"},
    )
    assert started.status_code == 200
    assert "Updating…" in started.content.decode()
    assert 'hx-trigger="load delay:2s"' in started.content.decode()
    drain(worker, "default")
    assert RollupDay.objects.filter(day=today - timedelta(days=3)).exists()
    done = client.get(
        f"/reports/recompute/status/?from={first}&to={last}&polls=1",
        headers={"HX-Request": "true"},
    )
    assert "reports-updated" in done["HX-Trigger"]
    assert "Up to date." in done.content.decode()
    _code, html = page(client, "range=7d")
    assert "not in these numbers yet" not in html
    assert 'id="sum-conversations">1<' in html
    agent = Client()
    agent.force_login(create_user(role="agent"))
    assert (
        agent.post("/reports/recompute/", {"from": first, "to": last}).status_code
        == 403
    )


# --- 6: the digest -------------------------------------------------------------


def test_todays_digest_says_so_far_and_unresolved_now(seoul) -> None:  # noqa: ANN001
    c = conversation("telegram", datetime.now(UTC))
    for _ in range(43):
        message(c, datetime.now(UTC))
    c.escalate(reason="the gateway asked for a human")
    today = rollup.local_today()
    text = digest.build(today).text
    title = text.splitlines()[0]
    assert re.fullmatch(rf"OpenClaw Inbox: {today} so far, at \d\d:\d\d", title)
    assert "1 unresolved now" in text and "close of day" not in text
    # A fresh install: no history, no spike.
    assert "spike" not in text


def test_no_spike_without_three_days_of_history(seoul) -> None:  # noqa: ANN001
    for back in (2, 1):  # two days of history before D
        c = conversation("telegram", at(-back * 86400))
        message(c, at(-back * 86400))
    busy = conversation("telegram", at(0))
    for i in range(40):
        message(busy, at(i))
    assert "spike" not in digest.build(D, store=False).text
    c = conversation("telegram", at(-3 * 86400))
    message(c, at(-3 * 86400))
    text = digest.build(D).text
    assert "spike: 40 messages in vs 1.0 a day over the last 3 days" in text


def test_the_preview_says_when_and_matches_a_send(seoul) -> None:  # noqa: ANN001
    c = conversation("telegram", datetime.now(UTC))
    message(c, datetime.now(UTC))
    admin = Client()
    admin.force_login(create_user(role="admin"))
    html = admin.get("/reports/digest/").content.decode()
    assert "Today so far (tomorrow's digest)" in html
    assert re.search(r"As of \d\d:\d\d", html)
    preview = digest.build(rollup.local_today(), store=False).text
    sent = tasks.send_digest_now(rollup.local_today(), None).body
    assert preview == sent


def test_a_day_to_come_or_before_the_data_is_refused_inline(seoul) -> None:  # noqa: ANN001
    c = conversation("telegram", datetime.now(UTC) - timedelta(days=1))
    message(c, datetime.now(UTC) - timedelta(days=1))
    admin = Client()
    admin.force_login(create_user(role="admin"))
    tomorrow = rollup.local_today() + timedelta(days=1)
    future = admin.post("/reports/digest/send/", {"day": tomorrow.isoformat()})
    html = future.content.decode()
    assert future.status_code == 400 and "<html" in html
    assert 'id="send-day-error"' in html and "That day has not happened yet." in html
    old = admin.post("/reports/digest/send/", {"day": "2020-01-01"})
    html = old.content.decode()
    assert old.status_code == 400
    assert "The inbox has no data before" in html
    assert 'value="2020-01-01"' in html


def test_a_long_range_is_exact_when_quiet_and_approximate_when_busy(
    seoul,  # noqa: ANN001
    monkeypatch,  # noqa: ANN001
) -> None:
    alices_day()
    rollup.store_day(D, now=LATER)
    first = D - timedelta(days=60)
    telegram = summary.build(first, D).by_platform["telegram"]
    assert telegram.is_exact("resolution")
    assert telegram.resolution_median == pytest.approx(615.5)
    # A range this long with more cases than the limit reads the histograms.
    monkeypatch.setattr(summary, "EXACT_RANGE_CASES", 3)
    busy = summary.build(first, D).by_platform["telegram"]
    assert not busy.is_exact("resolution")
    median = busy.resolution_median
    assert median is not None and median == pytest.approx(615.5, rel=0.1)
