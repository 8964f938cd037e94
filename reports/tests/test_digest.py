import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone

from core.testing import create_user, drain
from inbox import gateway as gateway_module
from reports import digest, tasks
from reports.models import Delivery, Digest
from reports.tests.seed import D1, conversation, seed, status, utc

# 09:00 in Seoul on the day after D1.
NINE = datetime(2026, 3, 11, 0, 0, tzinfo=UTC)


@pytest.fixture
def digest_settings(settings):  # noqa: ANN001, ANN201
    settings.TIME_ZONE = "Asia/Seoul"
    settings.INBOX_SLA_RED_SECONDS = 300
    settings.INBOX_DIGEST_TIME = "09:00"
    settings.INBOX_DIGEST_EMAILS = ["ops@example.com", "lead@example.com"]
    settings.INBOX_DIGEST_CHANNEL = ""
    settings.INBOX_DIGEST_TO = ""
    return settings


@pytest.fixture
def to_gateway(digest_settings, gateway):  # noqa: ANN001, ANN201
    digest_settings.INBOX_DIGEST_CHANNEL = "telegram"
    digest_settings.INBOX_DIGEST_TO = "telegram:-100200300"
    return gateway


def digest_sends(server) -> list:  # noqa: ANN001
    return [s for s in server.received if s.idempotency_key.startswith("inbox-digest")]


@pytest.mark.django_db
def test_the_digest_says_what_the_day_looked_like_per_platform(digest_settings) -> None:  # noqa: ANN001
    seed()
    text = digest.build(D1).text
    assert text.startswith("OpenClaw Inbox: daily digest for 2026-03-10")
    assert "2 conversations opened, 2 messages in, 3 out" in text
    assert "2 escalations, 1 past the SLA; 1 unresolved at close of day" in text
    assert "\nTelegram\n" in text and "\nWhatsApp\n" in text
    assert "top reasons: angry (1)" in text
    assert "first response median" in text


@pytest.mark.django_db
def test_the_digest_is_always_masked(digest_settings) -> None:  # noqa: ANN001
    conv = conversation("telegram", utc(10, 1, 0))
    status(conv, utc(10, 1, 1), "bot", "escalated", "mail me: kim@example.com")
    text = digest.build(D1).text
    assert "kim@example.com" not in text
    assert "[email]" in text


@pytest.mark.django_db
def test_other_apps_add_sections_and_a_failing_one_is_left_out(digest_settings) -> None:  # noqa: ANN001
    def monitors(sender, day, **kwargs):  # noqa: ANN001, ANN003, ANN202
        return ("Monitors", [f"2 alerts on {day.isoformat()}"])

    def broken(sender, day, **kwargs):  # noqa: ANN001, ANN003, ANN202
        raise RuntimeError("boom")

    digest.collect_sections.connect(monitors, dispatch_uid="test-monitors")
    digest.collect_sections.connect(broken, dispatch_uid="test-broken")
    try:
        text = digest.build(D1).text
    finally:
        digest.collect_sections.disconnect(dispatch_uid="test-monitors")
        digest.collect_sections.disconnect(dispatch_uid="test-broken")
    assert "Monitors\n- 2 alerts on 2026-03-10" in text


@pytest.mark.django_db
def test_today_so_far_is_counted_live(digest_settings) -> None:  # noqa: ANN001
    from reports.models import DailyStat
    from reports.rollup import local_today

    today = local_today()
    conversation("slack", timezone.now())
    text = digest.build(today, so_far=True).text
    assert f"{today.isoformat()} so far" in text
    assert "1 conversation opened, 0 messages in" in text and "\nSlack\n" in text
    assert not DailyStat.objects.filter(day=today).exists()  # nothing stored


def test_a_spike_is_half_again_and_ten_above_the_weeks_average() -> None:
    assert digest.spike(30, [10] * 7) == 10
    assert digest.spike(13, [4] * 7) is None  # over three times, but 9 above
    assert digest.spike(14, [4] * 7) == 4
    assert digest.spike(100, [95] * 7) is None  # 5 % more
    assert digest.spike(5, []) is None


@pytest.mark.django_db
def test_a_spike_against_the_last_seven_days_is_named(digest_settings) -> None:  # noqa: ANN001
    from reports.tests.seed import message

    for back in range(1, 8):
        day_conv = conversation("telegram", utc(10 - back, 3, 0))
        message(day_conv, utc(10 - back, 3, 0))
    busy = conversation("telegram", utc(10, 3, 0))
    for i in range(20):
        message(busy, utc(10, 3, i))
    text = digest.build(D1).text
    assert "spike: 20 messages in vs 1.0 a day over the last 7 days" in text


@pytest.mark.django_db
def test_nothing_before_the_time_of_day_then_once(digest_settings) -> None:  # noqa: ANN001
    seed()
    assert tasks.start_digest(NINE - timedelta(minutes=1)) is None
    assert not Digest.objects.exists()
    with pytest.MonkeyPatch.context():
        row = tasks.start_digest(NINE)
    assert row is not None and row.day == D1
    assert row.gateway_state == Delivery.SKIPPED  # no target configured
    assert tasks.start_digest(NINE + timedelta(hours=3)) is None
    assert Digest.objects.count() == 1


@pytest.mark.django_db
def test_no_digest_for_a_day_before_the_inbox_had_anything(digest_settings) -> None:  # noqa: ANN001
    assert tasks.start_digest(NINE) is None  # a fresh install: nothing at all
    # The first one arrives at 01:00 on the 11th in Seoul: the 10th (the
    # digest's day at 09:00 on the 11th) is before it.
    conversation("telegram", utc(10, 16, 0))
    assert tasks.start_digest(NINE) is None
    assert not Digest.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_worker_sends_the_digest_by_email_and_to_the_gateway(
    to_gateway,  # noqa: ANN001
    worker,  # noqa: ANN001
) -> None:
    seed()
    tasks.start_digest(NINE)
    drain(worker, "default", rounds=2)
    row = Digest.objects.get()
    assert (row.email_state, row.gateway_state) == (Delivery.SENT, Delivery.SENT)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com", "lead@example.com"]
    assert mail.outbox[0].subject == "OpenClaw Inbox: daily digest for 2026-03-10"
    [sent] = digest_sends(to_gateway)
    assert sent.text == row.body
    assert sent.idempotency_key == "inbox-digest-2026-03-10"


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_racing_send_one_digest(to_gateway, worker) -> None:  # noqa: ANN001
    seed()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def scheduler() -> None:
        try:
            barrier.wait(timeout=10)
            tasks.start_digest(NINE)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    drain(worker, "default", rounds=2)
    row = Digest.objects.get()
    # The sends redelivered (at least once), and raced by two workers.
    racers = [
        threading.Thread(target=tasks.send_digest_email.fn, args=(row.pk,)),
        threading.Thread(target=tasks.send_digest_email.fn, args=(row.pk,)),
        threading.Thread(target=tasks.send_digest_to_gateway.fn, args=(row.pk,)),
        threading.Thread(target=tasks.send_digest_to_gateway.fn, args=(row.pk,)),
    ]
    for t in racers:
        t.start()
    for t in racers:
        t.join(timeout=60)
    assert Digest.objects.count() == 1
    assert len(mail.outbox) == 1
    assert len(digest_sends(to_gateway)) == 1


@pytest.mark.django_db
def test_a_gateway_that_is_down_is_retried_and_email_still_goes(to_gateway) -> None:  # noqa: ANN001
    seed()
    to_gateway.fail_next(2, 503)
    with pytest.MonkeyPatch.context():
        row = tasks.start_digest(NINE)
    assert row is not None
    tasks.send_digest_email.fn(row.pk)
    for attempt in (1, 2):
        # Dramatiq retries the job (with backoff) while it raises.
        with pytest.raises(gateway_module.GatewayError):
            tasks.send_digest_to_gateway.fn(row.pk)
        row.refresh_from_db()
        assert row.gateway_state == Delivery.RETRYING
        assert row.gateway_attempts == attempt
        assert "simulated failure" in row.gateway_error
    assert row.email_state == Delivery.SENT and len(mail.outbox) == 1
    page = _admin().get("/reports/digest/").content.decode()
    assert "retrying" in page and "simulated failure" in page
    tasks.send_digest_to_gateway.fn(row.pk)
    row.refresh_from_db()
    assert row.gateway_state == Delivery.SENT and row.gateway_error == ""
    assert len(digest_sends(to_gateway)) == 1
    assert tasks.send_digest_to_gateway.options["max_retries"] >= 5


@pytest.mark.django_db
def test_a_refused_send_is_failed_with_its_reason(to_gateway) -> None:  # noqa: ANN001
    to_gateway.fail_next(1, 400)
    seed()
    row = tasks.start_digest(NINE)
    assert row is not None
    tasks.send_digest_to_gateway.fn(row.pk)  # permanent: no raise, no retry
    row.refresh_from_db()
    assert row.gateway_state == Delivery.FAILED
    assert "simulated failure" in row.gateway_error
    page = _admin().get("/reports/digest/").content.decode()
    assert "failed" in page


@pytest.mark.django_db
def test_a_crash_after_the_gateway_took_it_does_not_send_twice(to_gateway) -> None:  # noqa: ANN001
    seed()
    row = tasks.start_digest(NINE)
    assert row is not None
    # A worker claimed and sent, then died before writing "sent".
    assert row.claim("gateway", states=(Delivery.PENDING,))
    gateway_module.client().send_to(
        "telegram", "telegram:-100200300", row.body, idempotency_key=row.idempotency_key
    )
    tasks.send_digest_to_gateway.fn(row.pk)  # claimed by the dead worker: no-op
    assert Digest.objects.get().gateway_state == Delivery.SENDING
    Digest.objects.update(claimed_at=timezone.now() - timedelta(minutes=10))
    tasks.send_digest_to_gateway.fn(row.pk)  # stale: sent again, same key
    assert Digest.objects.get().gateway_state == Delivery.SENT
    assert len(digest_sends(to_gateway)) == 1


@pytest.mark.django_db
def test_an_email_claimed_by_a_crashed_worker_is_never_sent_again(
    digest_settings,  # noqa: ANN001
) -> None:
    seed()
    row = tasks.start_digest(NINE)
    assert row is not None
    assert row.claim("email", states=(Delivery.PENDING,))
    Digest.objects.update(claimed_at=timezone.now() - timedelta(days=1))
    tasks.send_digest_email.fn(row.pk)
    assert mail.outbox == []
    assert Digest.objects.get().email_state == Delivery.SENDING


def _admin() -> Client:
    client = Client()
    client.force_login(create_user(role="admin"))
    return client


@pytest.mark.django_db
def test_the_digest_page_previews_today_and_yesterday(digest_settings) -> None:  # noqa: ANN001
    lead = Client()
    lead.force_login(create_user(role="lead"))
    response = lead.get("/reports/digest/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "so far" in html and "daily digest for" in html
    assert "Send now" not in html  # admins only
    agent = Client()
    agent.force_login(create_user(role="agent"))
    assert agent.get("/reports/digest/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_send_now_asks_then_sends_a_manual_copy(digest_settings, worker) -> None:  # noqa: ANN001
    seed()  # a day before the first conversation is refused
    tasks.start_digest(NINE)
    drain(worker, "default")
    assert len(mail.outbox) == 1
    admin = _admin()
    ask = admin.post("/reports/digest/send/", {"day": D1.isoformat()})
    assert ask.status_code == 200 and 'name="confirmed"' in ask.content.decode()
    assert Digest.objects.count() == 1
    done = admin.post(
        "/reports/digest/send/", {"day": D1.isoformat(), "confirmed": "yes"}
    )
    assert done.status_code == 302
    drain(worker, "default")
    assert len(mail.outbox) == 2
    manual = Digest.objects.get(is_manual=True)
    assert manual.day == D1 and manual.email_state == Delivery.SENT
    assert Digest.objects.filter(is_manual=False).count() == 1
    page = admin.get("/reports/digest/").content.decode()
    assert "manual, by" in page
    lead = Client()
    lead.force_login(create_user(role="lead"))
    refused = lead.post(
        "/reports/digest/send/", {"day": D1.isoformat(), "confirmed": "yes"}
    )
    assert refused.status_code == 403


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_schedulers_on_postgres_write_one_row(digest_settings) -> None:  # noqa: ANN001
    """The unique constraint decides on PostgreSQL too (each thread its own
    connection and transaction)."""
    seed()
    results: list[object] = []
    barrier = threading.Barrier(4)

    def scheduler() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(tasks.start_digest(NINE))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 4
    assert len([r for r in results if r is not None]) == 1
    assert Digest.objects.count() == 1
