"""The rollup, kept current by the scheduler, and the daily digest's sends.

Every actor is safe to run twice or from two schedulers at once: a day's
rollup is replaced under its row lock, the scheduled digest is one row per
day (a unique constraint), and each of its sends is claimed by a
conditional UPDATE before it goes out.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dramatiq
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from dramatiq_crontab import cron

from core import outbox
from core.calls import CallError
from inbox import gateway
from reports import digest as digests
from reports import rollup
from reports.models import Delivery, Digest

log = logging.getLogger(__name__)

# Tries of the gateway send before the digest shows "failed" (Dramatiq's
# backoff between them: 10 s doubling to 10 min, about half an hour in all).
GATEWAY_ATTEMPTS = 8
# An unconfirmed send job is sent again (core.outbox) after this long: longer
# than the retries above take, which keep their own job.
RESEND_AFTER = 3600


# Days of the last BACKFILL_DAYS never computed (a fresh install, an outage)
# are filled in, newest first, a few per run: the page fills itself in.
BACKFILL_DAYS = 90
BACKFILL_PER_RUN = 5


@cron("*/5 * * * *")
@dramatiq.actor(max_retries=2, time_limit=10 * 60_000)
def roll_up_recent_days() -> None:
    """Recompute today and yesterday (the team's local days), then a few
    missing days of the last 90; idempotent."""
    today = rollup.local_today()
    for day in (today - timedelta(days=1), today):
        rollup.store_day(day)
    for day in rollup.missing_days(today - timedelta(days=BACKFILL_DAYS), today)[
        :BACKFILL_PER_RUN
    ]:
        rollup.store_day(day)


# The most days one Recompute (the reports page's button) fills in.
RECOMPUTE_MAX_DAYS = 366


@dramatiq.actor(max_retries=2, time_limit=30 * 60_000)
def roll_up_days(first: str, last: str) -> None:
    """Compute the days of ``first``..``last`` (ISO dates) that have data but
    no rollup yet (the page's Recompute button); idempotent: a day done by a
    run alongside is no longer missing, and redoing one replaces its rows."""
    days = rollup.unrolled_days_with_data(
        date.fromisoformat(first), date.fromisoformat(last)
    )
    for day in days[:RECOMPUTE_MAX_DAYS]:
        rollup.store_day(day)


@cron("* * * * *")
@dramatiq.actor(max_retries=0, time_limit=5 * 60_000)
def send_daily_digest() -> None:
    """At INBOX_DIGEST_TIME (local), write yesterday's digest and queue its
    sends; once a day however many schedulers run this (the row is unique
    per day) and whenever it runs after the time (a late start still sends)."""
    start_digest(timezone.now())


def start_digest(now: datetime) -> Digest | None:
    """The scheduled digest due at ``now``; ``None`` before the time of day or
    when it already exists."""
    local = now.astimezone(ZoneInfo(settings.TIME_ZONE))
    hour, minute = (int(part) for part in settings.INBOX_DIGEST_TIME.split(":"))
    if (local.hour, local.minute) < (hour, minute):
        return None
    day = local.date() - timedelta(days=1)
    if Digest.objects.filter(day=day, is_manual=False).exists():
        return None
    began = digests.first_day()
    if began is None or day < began:
        return None  # a day before the inbox had anything: nothing to tell
    text = digests.build(day).text
    try:
        with transaction.atomic():
            row = Digest.objects.create(day=day, body=text, **_unconfigured())
            _queue_sends(row)
    except IntegrityError:
        return None  # another scheduler's run wrote it first
    return row


def send_digest_now(day: date, user: Any) -> Digest:
    """A manual copy of ``day``'s digest (the "Send now" button); the daily
    one is not touched."""
    text = digests.build(day).text
    with transaction.atomic():
        row = Digest.objects.create(
            day=day, is_manual=True, requested_by=user, body=text, **_unconfigured()
        )
        _queue_sends(row)
    return row


def _unconfigured() -> dict[str, str]:
    """Channels with no target are "not configured", not pending forever."""
    states: dict[str, str] = {}
    if not settings.INBOX_DIGEST_EMAILS:
        states["email_state"] = Delivery.SKIPPED
    if not (settings.INBOX_DIGEST_CHANNEL and settings.INBOX_DIGEST_TO):
        states["gateway_state"] = Delivery.SKIPPED
    return states


def _queue_sends(row: Digest) -> None:
    if row.email_state == Delivery.PENDING:
        outbox.enqueue("send_digest_email", row.pk, resend_after=RESEND_AFTER)
    if row.gateway_state == Delivery.PENDING:
        outbox.enqueue("send_digest_to_gateway", row.pk, resend_after=RESEND_AFTER)


@dramatiq.actor(max_retries=0, time_limit=120_000)
def send_digest_email(digest_id: int) -> None:
    """Email the digest once. Email has no idempotency key, so "sending" is
    written before the send and never claimed again: a crash mid-send leaves
    it "sending" (shown on the page) rather than risk a second copy."""
    row = Digest.objects.filter(pk=digest_id).first()
    if row is None or not row.claim("email", states=(Delivery.PENDING,)):
        return
    try:
        send_mail(
            subject=row.body.splitlines()[0],
            message=row.body,
            from_email=None,
            recipient_list=settings.INBOX_DIGEST_EMAILS,
        )
    except Exception as exc:  # smtplib, socket: record, the page shows it
        log.warning("digest %s: email failed: %r", row.pk, exc)
        row.finish("email", Delivery.FAILED, f"{type(exc).__name__}: {exc}")
        return
    row.finish("email", Delivery.SENT)


@dramatiq.actor(
    max_retries=GATEWAY_ATTEMPTS - 1,
    min_backoff=10_000,
    max_backoff=600_000,
    time_limit=120_000,
)
def send_digest_to_gateway(digest_id: int) -> None:
    """Send the digest to INBOX_DIGEST_CHANNEL/TO through the gateway. Keyed
    by the day (``Digest.idempotency_key``): a send repeated after a crash
    reaches the group once. A transient failure is retried with backoff
    (Dramatiq), shown as "retrying" meanwhile; a permanent one, or the last
    try, as "failed" with the reason."""
    row = Digest.objects.filter(pk=digest_id).first()
    # A send claimed long ago is claimed again (its worker died): the key
    # makes the repeat harmless.
    claimable = (Delivery.PENDING, Delivery.RETRYING)
    if row is None or not row.claim(
        "gateway", states=claimable, stale_after=timedelta(minutes=5)
    ):
        return
    try:
        gateway.client().send_to(
            settings.INBOX_DIGEST_CHANNEL,
            settings.INBOX_DIGEST_TO,
            row.body,
            idempotency_key=row.idempotency_key,
            account_id=settings.INBOX_DIGEST_ACCOUNT_ID,
        )
    except CallError as exc:
        if exc.permanent or row.gateway_attempts >= GATEWAY_ATTEMPTS:
            row.finish("gateway", Delivery.FAILED, exc.message)
            return
        row.finish("gateway", Delivery.RETRYING, exc.message)
        raise
    row.finish("gateway", Delivery.SENT)
