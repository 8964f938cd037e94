"""Background work after a message is stored; never on the webhook's fast path."""

from __future__ import annotations

import dramatiq

from inbox.models import Message
from inbox.signals import message_stored


@dramatiq.actor(max_retries=5, min_backoff=500, max_backoff=60_000, time_limit=60_000)
def process_inbound_message(message_id: int) -> None:
    """Hand a stored inbound message to the slower work (classification, triggers).

    Dramatiq delivers at least once; receivers of ``message_stored`` key their
    own work on the message so a redelivery does nothing twice.
    """
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None or not message.is_from_customer:
        return
    message_stored.send(sender=Message, message=message)
