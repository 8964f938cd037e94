"""Background work after a message is stored; never on the webhook's fast path."""

from __future__ import annotations

from datetime import timedelta

import dramatiq
from django.conf import settings
from django.utils import timezone
from dramatiq_crontab import cron

from inbox.models import Message, WebhookDelivery
from inbox.signals import message_stored


@dramatiq.actor(max_retries=5, min_backoff=500, max_backoff=60_000, time_limit=60_000)
def process_inbound_message(message_id: int) -> None:
    """Hand a stored inbound message to the slower work (classification, triggers).

    Dramatiq delivers at least once; receivers of ``message_stored`` key their
    own work on the message so a redelivery does nothing twice.
    """
    message = (
        Message.objects.select_related("conversation").filter(pk=message_id).first()
    )
    if message is None or not message.is_from_customer:
        return
    message_stored.send(sender=Message, message=message)


PRUNE_BATCH = 5_000
PRUNE_MAX_BATCHES = 200


@cron("17 3 * * *")
@dramatiq.actor(max_retries=3, time_limit=15 * 60_000)
def prune_webhook_deliveries() -> None:
    """Forget delivery logs past the retention period, in small batches.

    Batches keep each DELETE short so ingestion never waits on a long lock;
    a backlog larger than one run's cap is finished by the next night's run.
    """
    cutoff = timezone.now() - timedelta(days=settings.OPENCLAW_DELIVERY_RETENTION_DAYS)
    for _ in range(PRUNE_MAX_BATCHES):
        ids = list(
            WebhookDelivery.objects.filter(received_at__lt=cutoff).values_list(
                "pk", flat=True
            )[:PRUNE_BATCH]
        )
        if not ids:
            return
        WebhookDelivery.objects.filter(pk__in=ids).delete()
