"""Monitor jobs: the minute's scheduler run, one check, an alert to the admin
channel. At-least-once delivery: every body re-reads its rows; alerts are
unique per occasion, so a redelivered check alerts nothing twice."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from dramatiq_crontab import cron

from inbox import gateway
from monitors import checks
from monitors.models import Alert, Monitor

log = logging.getLogger(__name__)


@cron("* * * * *")
@dramatiq.actor(max_retries=0, time_limit=60_000)
def schedule_monitor_checks() -> None:
    """Enqueue a check of every due monitor, each claimed once (see
    ``Monitor.claim_due``), so two schedulers never check one twice."""
    for pk in Monitor.claim_due(timezone.now()):
        check_monitor.send(pk)


# The check records its own failures and backs off; a retry by Dramatiq would
# only repeat it (a worker that died mid-check is covered by the claim lease).
# Three browser-tool calls, each up to the client's browser timeout (60 s).
@dramatiq.actor(queue_name="monitors", max_retries=0, time_limit=200_000)
def check_monitor(monitor_id: int) -> None:
    monitor = Monitor.objects.filter(pk=monitor_id).first()
    if monitor is None:
        return
    if not monitor.is_active and not monitor.is_check_pending:
        return  # paused since it was claimed; 'Check now' still checks
    checks.check(monitor)


def enqueue_check(monitor: Monitor) -> None:
    """'Check now': pending from now, enqueued after commit."""
    monitor.request_check()
    pk = monitor.pk
    transaction.on_commit(lambda: check_monitor.send(pk))


@dramatiq.actor(
    queue_name="monitors",
    max_retries=5,
    min_backoff=5_000,
    max_backoff=300_000,
    time_limit=60_000,
)
def send_alert_to_channel(alert_id: int) -> None:
    """The alert to the admin channel (``INBOX_DIGEST_CHANNEL``/``_TO``),
    keyed by the alert so the gateway sends a redelivery once."""
    alert = Alert.objects.select_related("monitor").filter(pk=alert_id).first()
    channel, to = settings.INBOX_DIGEST_CHANNEL, settings.INBOX_DIGEST_TO
    if alert is None or not channel or not to:
        return
    link = alert.monitor.get_absolute_url()
    try:
        gateway.client().send_to(
            channel,
            to,
            f"{alert.text} ({link})",
            idempotency_key=f"monitor-alert-{alert.pk}",
        )
    except gateway.GatewayError as exc:
        if exc.permanent:
            log.warning("alert %s not sent to %s: %s", alert.pk, channel, exc)
            return
        raise


def on_alert_raised(sender: Any, alert: Alert, **kwargs: Any) -> None:
    """Connected in ``MonitorsConfig.ready``: the admin channel, if asked."""
    if alert.monitor.alerts_admin_channel and settings.INBOX_DIGEST_CHANNEL:
        send_alert_to_channel.send(alert.pk)
