"""Jobs recorded with the change that needs them, so none is lost in a crash.

``enqueue("actor_name", *args)`` inside a transaction writes an ``OutboxJob``
row in that transaction and sends the job once it commits. If the process
dies between the commit and the send, or the broker loses the message, or the
worker dies mid-job, the row is still there: the scheduler sends it again
until a run of the job confirms it (``core.jobs.ConfirmOutbox`` deletes the row).
The callers name the actor instead of importing it, so a model that records a
job does not import the code that talks to the network.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import dramatiq
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.jobs import OUTBOX_OPTION
from core.models import OutboxJob

log = logging.getLogger(__name__)


def enqueue(actor: str, *args: Any, resend_after: int | None = None) -> OutboxJob:
    """Record the job ``actor(*args)`` in the caller's transaction; send it on commit.

    ``resend_after``: seconds after which an unconfirmed job counts as lost
    (``OUTBOX_RESEND_SECONDS``); longer than the job can run, or a slow run
    gets a twin.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(
            "outbox.enqueue needs the transaction that makes the job necessary"
        )
    seconds = resend_after or settings.OUTBOX_RESEND_SECONDS
    job = OutboxJob.objects.create(
        actor=actor,
        args=list(args),
        due_at=timezone.now() + timedelta(seconds=seconds),
        resend_seconds=seconds,
    )
    transaction.on_commit(lambda: _send(job))
    return job


def _send(job: OutboxJob) -> None:
    try:
        broker = dramatiq.get_broker()
        options: dict[str, Any] = {OUTBOX_OPTION: job.pk}
        broker.get_actor(job.actor).send_with_options(args=tuple(job.args), **options)
    except Exception:
        # The broker is down: the row stays and the sweeper sends it later.
        log.exception("could not send %s; the outbox will resend it", job)


def resend_due(now: Any = None, *, limit: int = 500) -> int:
    """Send again the jobs not confirmed in time; the number sent."""
    now = now or timezone.now()
    due = OutboxJob.objects.filter(
        due_at__lte=now, attempts__lt=settings.OUTBOX_MAX_ATTEMPTS
    ).order_by("due_at")[:limit]
    sent = 0
    for job in due:
        # One sweeper claims a job (the update), even if two run at once.
        claimed = OutboxJob.objects.filter(pk=job.pk, attempts=job.attempts).update(
            due_at=now + timedelta(seconds=job.resend_seconds),
            attempts=F("attempts") + 1,
        )
        if not claimed:
            continue
        job.attempts += 1
        if job.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
            log.error("%s: last attempt; it stays in the outbox if it fails", job)
        _send(job)
        sent += 1
    return sent
