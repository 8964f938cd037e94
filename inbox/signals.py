"""What the inbox announces, and the one way its models hand work on.

Models record what must happen after a change and never import the code that
does it (the live stream, the gateway client): ``publish_on_commit`` and
``reply_queued_on_commit`` send these signals once the transaction commits,
and ``InboxConfig.ready`` connects the receivers. Background jobs go through
``core.outbox.enqueue``. Other apps (automations) listen too, unknown to the
inbox.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import Signal

# Sent by the ``process_inbound_message`` actor, outside the webhook's fast
# path, once per stored inbound message (at-least-once: receivers must be
# idempotent). Arguments: ``message``.
message_stored = Signal()

# Committed timeline rows to push to every open inbox (inbox.live).
# Arguments: ``activities``.
activities_committed = Signal()

# Users whose notifications changed (inbox.live rings their bells).
# Arguments: ``user_ids``, ``kind`` (what was added; "" when read).
bell_changed = Signal()

# A committed reply to send through the gateway (inbox.tasks).
# Arguments: ``message_id``.
reply_queued = Signal()

# A customer message that starts with "/" is about to be stored, asked inside
# ``ingest.store``'s transaction. A receiver that returns True took it (an
# allowlisted admin's ops command, recorded in this transaction): the inbox
# then stores no message, runs no trigger and escalates nothing. Receivers
# must be idempotent (a redelivery asks again). Arguments: ``platform``,
# ``sender_id``, ``session_key``, ``message_id`` (the gateway's), ``text``,
# ``sent_at`` (when the sender wrote it, if known: a catch-up brings old ones).
command_received = Signal()

# The gateway wrote back a message sent with an idempotency key that is none of
# the inbox's replies (asked in ``ingest.store``'s transaction). A receiver that
# returns True knows it as its own (an ops command's answer): the inbox stores
# nothing. Arguments: ``session_key``, ``idempotency_key``.
reply_echoed = Signal()

# Asked when the gateway's inbox plugin is synced (the connector, on every
# connect): each receiver returns the ``(platform, sender_id)`` pairs whose
# direct "/..." messages it takes through ``command_received``, so the
# gateway's agent must not answer them too. No arguments.
command_senders_wanted = Signal()


def publish_on_commit(activities: list[Any]) -> None:
    """Push ``activities`` live once the current transaction commits."""
    if activities:
        transaction.on_commit(
            lambda: activities_committed.send(sender=None, activities=activities)
        )


def reply_queued_on_commit(message_id: int) -> None:
    """Start sending reply ``message_id`` once the current transaction commits."""
    transaction.on_commit(lambda: reply_queued.send(sender=None, message_id=message_id))


def bell_on_commit(user_ids: list[int], kind: str) -> None:
    """Update these users' bells once the current transaction commits."""
    transaction.on_commit(
        lambda: bell_changed.send(sender=None, user_ids=user_ids, kind=kind)
    )
