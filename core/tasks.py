"""Periodic jobs every app relies on."""

from __future__ import annotations

import dramatiq
from dramatiq_crontab import cron

from core import outbox


@cron("* * * * *")
@dramatiq.actor(max_retries=0, time_limit=60_000)
def resend_outbox() -> None:
    """Send again the outbox jobs that were lost (see ``core.outbox``)."""
    outbox.resend_due()
