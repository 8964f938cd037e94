"""Where a message from the gateway is stored: one function, two adapters.

``inbox/webhooks.py`` (signed webhooks from other senders) and
``inbox/connector.py`` (the gateway's live transcript feed) each turn what they
received into an ``Event`` and call ``store()``. Storing is one transaction:
conversation, message, activity rows, the gateway transcript position, the
webhook's delivery row, an escalation the event asks for, and the follow-up
job's outbox row (``core.outbox``). The live push and the job run only after
it commits, so neither the browser nor the worker sees a row that might roll
back, and a crash at any point loses nothing: before the commit the sender's
retry stores it all, after it the outbox sends the job again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from core import outbox
from inbox import metrics, protocol
from inbox.models import Activity, Conversation, Message, Platform, WebhookDelivery
from inbox.signals import command_received, publish_on_commit, reply_echoed


@dataclass
class Event:
    """One thing the gateway told us, already validated.

    ``type``: ``message`` / ``media`` (a customer or bot message), ``status``,
    ``error``, or ``echo`` (one of our own replies written back into the
    gateway's transcript: it confirms delivery and is never stored twice).
    """

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    # "webhook" (another sender) or "gateway" (the connector's feed).
    source: str = "webhook"
    session_id: str = ""
    platform: str = Platform.OTHER
    message_id: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    # The gateway transcript's position (connector only): messageSeq and the
    # session generation it counts in.
    seq: int | None = None
    generation: str = ""
    recorded_at: datetime | None = None
    # Run again from the deliveries page (inbox.webhooks.replay): stored as
    # any delivery, but never taken as an ops command.
    is_replay: bool = False


@dataclass
class Outcome:
    status: str  # a WebhookDelivery.Outcome value
    conversation: Conversation | None = None
    message: Message | None = None
    # The transcript skipped a seq (connector only): fetch what is missing.
    gap: bool = False


def store(event: Event, delivery: WebhookDelivery | None = None) -> Outcome:
    """Store ``event`` (and the webhook's ``delivery`` row) in one transaction."""
    started = time.perf_counter()
    with transaction.atomic():
        if (taken := _taken_by_another_app(event, delivery)) is not None:
            if delivery is not None and not event.is_replay:
                seconds = time.perf_counter() - started
                metrics.record_delivery(taken.status, event.platform, None, seconds)
            return taken
        conversation, created = Conversation.lock_for_session(
            event.session_id, defaults=event.fields["conversation"]
        )
        activities: list[Activity] = []
        if created:
            activities.append(
                Activity.objects.create(
                    conversation=conversation, kind=Activity.Kind.CONVERSATION_CREATED
                )
            )
        else:
            _fill_customer(conversation, event.fields["conversation"])
        conversation.link_contact()
        gap, moved = _track_transcript(conversation, event)
        message = None
        receipt = False
        if event.type in ("message", "media"):
            fields = event.fields["message"]
            if (
                event.source == "gateway"
                and fields["author"] == Message.Author.BOT
                and conversation.is_bot_paused
            ):
                # Written while an agent owned the chat (a run already under
                # way at the takeover, or a plugin that could not stop it):
                # the gateway held it back, the customer never got it.
                fields = {**fields, "delivery_state": Message.DeliveryState.SUPPRESSED}
            message = conversation.add_message(also_save=moved, **fields)
            moved = [] if message is not None else moved
            if message is not None and message.status_activity is not None:
                activities.append(message.status_activity)
        elif event.type == "echo":
            receipt = _apply_echo(conversation, event)
            if not receipt and "message" in event.fields:
                # Sent by another operator client, not from this inbox.
                message = conversation.add_message(
                    also_save=moved, **event.fields["message"]
                )
                moved = [] if message is not None else moved
        elif event.type == "status" and event.fields["status"] in (
            "delivered",
            "failed",
        ):
            receipt = _apply_receipt(conversation, event)
        elif event.type == "status" and event.fields["status"] == "ended":
            if closed := conversation.close():
                activities.append(closed)
        elif event.type == "status":
            message = conversation.add_message(
                gateway_message_id=event.message_id,
                direction=Message.Direction.INBOUND,
                kind=Message.Kind.RESET,
                author=Message.Author.SYSTEM,
                text="Session reset",
            )
        elif event.type == "error":
            message = conversation.add_message(
                gateway_message_id=event.message_id,
                direction=Message.Direction.OUTBOUND,
                kind=Message.Kind.ERROR,
                author=Message.Author.SYSTEM,
                text=event.fields["error"],
                delivery_state=Message.DeliveryState.FAILED,
            )
            if message is not None:
                activities.append(conversation.record_error(event.fields["error"]))
        if moved:
            conversation.save(update_fields=moved)
        if message is not None and message.activity is not None:
            # The message comes before the error note it caused.
            activities.insert(1 if created else 0, message.activity)
        # A redelivery adds no message and changes no status: nothing new to show.
        changed = (
            message is not None
            or receipt
            or (event.type == "status" and bool(activities))
        )
        outcome = (
            WebhookDelivery.Outcome.STORED
            if changed
            else WebhookDelivery.Outcome.DUPLICATE
        )
        if delivery is not None:
            delivery.outcome = outcome
            delivery.status_code = 200
            delivery.conversation = conversation
            delivery.message = message
            delivery.processed_at = timezone.now()
            delivery.save()
        publish_on_commit(activities)
        if message is not None and message.is_from_customer:
            if event.fields.get("escalate"):
                # In this transaction: stored means escalated, or neither.
                conversation.escalate(reason="the gateway asked for a human")
            if message.kind in (Message.Kind.TEXT, Message.Kind.MEDIA):
                outbox.enqueue("process_inbound_message", message.pk)
    seconds = time.perf_counter() - started
    if delivery is not None and not event.is_replay:
        metrics.record_delivery(outcome, event.platform, message, seconds)
    else:  # the connector's feed, or a lead's replay: no webhook came in
        metrics.record_stored(event.platform, message, seconds)
    return Outcome(outcome, conversation, message, gap=gap)


def _taken_by_another_app(
    event: Event, delivery: WebhookDelivery | None
) -> Outcome | None:
    """``store()``'s outcome when a receiver of ``command_received`` took the
    message (an admin's ops command), or one of ``reply_echoed`` knew the
    echo as its own (the command's answer); ``None`` to store it as usual.

    Nothing is stored for them: an admin's commands make no conversation. If
    the session has one already (the admin also chats), its transcript
    position still moves past the row's seq, or every later row would look
    like a gap to fetch again.
    """
    if not (_ops_command(event) or _ops_echo(event)):
        return None
    conversation = (
        Conversation.objects.select_for_update(no_key=True)
        .filter(session_id=event.session_id)
        .first()
    )
    gap = False
    if conversation is not None:
        gap, moved = _track_transcript(conversation, event)
        if moved:
            conversation.save(update_fields=moved)
    status = WebhookDelivery.Outcome.IGNORED
    if delivery is not None:
        delivery.outcome = status
        delivery.status_code = 200
        delivery.error = "ops command"
        delivery.conversation = conversation
        delivery.processed_at = timezone.now()
        delivery.save()
    return Outcome(status, conversation, None, gap=gap)


def _ops_command(event: Event) -> bool:
    if event.type not in ("message", "media") or "message" not in event.fields:
        return False
    if event.is_replay:
        return False  # a lead's replay never runs a command (webhooks.replay)
    fields = event.fields["message"]
    if fields["author"] != Message.Author.CUSTOMER:
        return False
    if not fields["text"].lstrip().startswith("/"):
        return False  # most messages: no receiver is asked
    answers = command_received.send(
        sender=Event,
        platform=event.platform,
        sender_id=event.fields["conversation"]["customer_id"],
        session_key=event.session_id,
        message_id=event.message_id,
        text=fields["text"],
        sent_at=fields.get("sent_at"),
    )
    return any(taken for _, taken in answers)


def _ops_echo(event: Event) -> bool:
    key = event.fields.get("echo_key") if event.type == "echo" else ""
    if not key or key.startswith("inbox-"):
        return False  # one of the inbox's own replies (Message.gateway_message_id)
    answers = reply_echoed.send(
        sender=Event, session_key=event.session_id, idempotency_key=key
    )
    return any(taken for _, taken in answers)


def _track_transcript(conversation: Conversation, event: Event) -> tuple[bool, list]:
    """Move the conversation's transcript position to ``event``'s seq.

    Needs the row lock. Returns whether seqs are missing before this one and
    the fields changed (saved with the message). A new generation (the
    session was reset) starts counting again; an old seq arriving late (a
    catch-up overlapping the live feed) never moves the position back.
    """
    if event.seq is None:
        return False, []
    if event.generation and event.generation != conversation.gateway_generation:
        gap = event.seq > 1
        conversation.gateway_generation = event.generation
        conversation.gateway_seq = event.seq
        return gap, ["gateway_generation", "gateway_seq"]
    if event.seq <= conversation.gateway_seq:
        return False, []
    gap = event.seq > conversation.gateway_seq + 1
    conversation.gateway_seq = event.seq
    return gap, ["gateway_seq"]


def _apply_echo(conversation: Conversation, event: Event) -> bool:
    """Mark the reply ``event`` echoes delivered; ``False`` if it is not ours.

    Needs the row lock. A ``send`` comes back with our message id as its
    idempotency key. A ``chat.inject`` has none: it comes back under the id
    the RPC answered with, which the sender may not have written down yet
    (the feed can be faster than the answer), so a reply still in flight
    that was sent as the same text (its files' URLs included) is it too.
    """
    ours = conversation.messages.filter(
        author__in=[Message.Author.AGENT, Message.Author.AUTOMATION],
        direction=Message.Direction.OUTBOUND,
    ).exclude(kind=Message.Kind.NOTE)
    key = event.fields["echo_key"]
    message = ours.filter(gateway_message_id=key).first() if key else None
    if message is None:
        # chat.inject answers with the transcript row's id.
        message = ours.filter(metadata__gateway_id=event.message_id).first()
    if message is None and (echoed := event.fields["echo_text"]):
        in_flight = ours.filter(
            delivery_state__in=[
                Message.DeliveryState.SENDING,
                Message.DeliveryState.SENT,
                Message.DeliveryState.RETRYING,
            ],
        ).order_by("pk")
        message = next(
            (
                reply
                for reply in in_flight
                if protocol.inject_message(
                    reply.text, protocol.media_urls(reply.attachments)
                )
                == echoed
            ),
            None,
        )
    if message is None:
        return False
    if message.mark_delivered():
        message.remember_gateway_id(event.message_id, key="transcript_id")
        return True
    return False


def _apply_receipt(conversation: Conversation, event: Event) -> bool:
    """Mark one of our replies delivered or failed; ``False`` if nothing changed.

    Needs the conversation's row lock. A receipt for an unknown id (another
    system's message) is kept in the delivery log and changes nothing.
    """
    message = conversation.messages.filter(
        gateway_message_id=event.message_id,
        author__in=[Message.Author.AGENT, Message.Author.AUTOMATION],
    ).first()
    if message is None:
        return False
    if event.fields["status"] == "delivered":
        return message.mark_delivered()
    return message.mark_undelivered(
        event.fields["error"] or "the gateway could not deliver it"
    )


def _fill_customer(conversation: Conversation, fields: dict[str, Any]) -> None:
    """Keep the first customer details we learn; a bot reply carries none."""
    updates = {
        name: fields[name]
        for name in ("customer_id", "customer_name")
        if fields[name] and not getattr(conversation, name)
    }
    if fields["metadata"] and fields["metadata"] != conversation.metadata:
        updates["metadata"] = {**conversation.metadata, **fields["metadata"]}
    if updates:
        for name, value in updates.items():
            setattr(conversation, name, value)
        conversation.save(update_fields=[*updates, "updated_at"])
