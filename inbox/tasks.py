"""Background work: after a message is stored, and delivering agents' replies.

Dramatiq delivers at least once, so every actor loads its rows, checks whether
the work is already done, and acts only then.
"""

from __future__ import annotations

import functools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import dramatiq
from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from dramatiq_crontab import cron

from core import calls
from inbox import gateway, protocol
from inbox.models import (
    AgentStatus,
    Conversation,
    GatewayLink,
    Message,
    Notification,
    WebhookDelivery,
)
from inbox.signals import message_stored

log = logging.getLogger(__name__)


@dramatiq.actor(max_retries=5, min_backoff=500, max_backoff=60_000, time_limit=60_000)
def process_inbound_message(message_id: int) -> None:
    """Hand a stored inbound message to the slower work (the automations app's
    triggers, which also hold the escalation rules).

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

    Bodies go, always. Rows go too, except the replay audit: a replay's row
    (who ran it, when, what came of it) and the delivery it replayed stay,
    the latter without its body (``body_purged_at``: replay refuses it).
    Batches keep each statement short so ingestion never waits on a long
    lock; a backlog larger than one run's cap is finished the next night.
    """
    cutoff = timezone.now() - timedelta(days=settings.OPENCLAW_DELIVERY_RETENTION_DAYS)
    old = WebhookDelivery.objects.filter(received_at__lt=cutoff)
    audit = Q(replay_of__isnull=False) | Exists(
        WebhookDelivery.objects.filter(replay_of=OuterRef("pk"))
    )
    for _ in range(PRUNE_MAX_BATCHES):
        ids = list(old.exclude(audit).values_list("pk", flat=True)[:PRUNE_BATCH])
        if not ids:
            break
        WebhookDelivery.objects.filter(pk__in=ids).delete()
    for _ in range(PRUNE_MAX_BATCHES):
        ids = list(
            old.filter(body_purged_at__isnull=True)
            .exclude(raw_body="")
            .values_list("pk", flat=True)[:PRUNE_BATCH]
        )
        if not ids:
            return
        WebhookDelivery.objects.filter(pk__in=ids).update(
            raw_body="", body_purged_at=timezone.now()
        )


# --- replies ------------------------------------------------------------------


@dramatiq.actor(queue_name="replies", max_retries=3, time_limit=90_000)
def deliver_reply(message_id: int) -> None:
    """Send one agent reply through the gateway, exactly once toward the customer.

    The message's own id travels as the ``Idempotency-Key``: a redelivered job
    (a worker killed mid-send) or a retry after a timeout that did reach the
    gateway sends under the same key, and the gateway sends it once. Transient
    failures are retried here, with the state shown live, rather than by
    Dramatiq's middleware: the agent sees "retrying (n)…" and Retry-After is
    honoured.
    """
    message = (
        Message.objects.select_related("conversation").filter(pk=message_id).first()
    )
    if message is None or message.is_note or _in_hand(message):
        return
    if not message.mark_sending():
        return  # sent, delivered or failed already: a duplicate job
    try:
        result = gateway.client().send_message(
            message.conversation.session_id,
            message.text,
            attachments=message.attachments,
            idempotency_key=message.gateway_message_id,
            label=message.sender,
        )
    except gateway.GatewayError as exc:
        age = (timezone.now() - message.created_at).total_seconds()
        if exc.permanent or age > settings.INBOX_REPLY_GIVE_UP_SECONDS:
            message.mark_failed(str(exc))
            return
        delay = retry_delay(message.attempts, exc.retry_after)
        message.mark_retrying(str(exc), timezone.now() + timedelta(seconds=delay))
        deliver_reply.send_with_options(args=(message.pk,), delay=int(delay * 1000))
        return
    gateway_id = str(result.get("messageId") or "")
    if not message.mark_sent(gateway_id) and gateway_id:
        # The gateway's receipt beat us here ("delivered" already): keep its id.
        message.remember_gateway_id(gateway_id)


# Longer than the gateway client's send timeout: a send claimed this recently
# is still in someone's hands.
SEND_IN_HAND = timedelta(seconds=15)


def _in_hand(message: Message) -> bool:
    """Another job is sending this now, or a retry is scheduled for later.

    The web process's immediate attempt and the queued fallback job both
    exist for every reply; this keeps the second from racing the first. A
    send claimed long ago lost its worker and may be taken over.
    """
    now = timezone.now()
    due = message.next_attempt_at
    if message.delivery_state == Message.DeliveryState.SENDING and due:
        return due > now - SEND_IN_HAND
    if message.delivery_state == Message.DeliveryState.RETRYING and due:
        return due > now + timedelta(milliseconds=500)
    return False


@functools.cache
def _web_senders() -> ThreadPoolExecutor:
    """This process's reply senders, made on first use (not at import)."""
    return ThreadPoolExecutor(
        max_workers=settings.INBOX_WEB_SENDER_THREADS,
        thread_name_prefix="reply-sender",
    )


# Sends the web process takes on at once. Past that (a burst of replies) the
# worker sends at once instead: it runs in other processes, on other cores,
# while this one answers the agents and pushes their frames.
_web_slots = threading.BoundedSemaphore(max(settings.INBOX_WEB_SEND_SLOTS, 1))


def on_reply_queued(sender: Any, message_id: int, **kwargs: Any) -> None:
    """Receiver of ``inbox.signals.reply_queued`` (after its commit)."""
    queue_delivery(message_id)


def queue_delivery(message_id: int) -> None:
    """Send a new reply: at once from this process, with a queued job behind it.

    Waiting for a worker to pick the job up costs up to its polling interval
    (measured: most of a lone reply's latency). With INBOX_SEND_FROM_WEB the
    web process sends right after commit, and the job, delayed by
    INBOX_REPLY_FALLBACK_SECONDS, finds it sent and stops; if this process
    dies first, the job sends it. In a burst (no send slot free) the job is
    queued without delay and the worker sends it. The idempotency key makes
    a double send harmless either way.
    """
    if not settings.INBOX_SEND_FROM_WEB or not _web_slots.acquire(blocking=False):
        deliver_reply.send(message_id)
        return
    delay = int(settings.INBOX_REPLY_FALLBACK_SECONDS * 1000)
    try:
        deliver_reply.send_with_options(args=(message_id,), delay=delay)
    except Exception:
        # The broker is down: send from here all the same; the scheduler's
        # sweep of stalled replies is the safety net until it is back.
        log.exception("could not queue the fallback job of reply %s", message_id)
    try:
        _web_senders().submit(_deliver_here, message_id)
    except BaseException:
        _web_slots.release()  # _deliver_here will not run to give it back
        raise


def _deliver_here(message_id: int) -> None:
    from django.db import connections

    try:
        deliver_reply.fn(message_id)
    except Exception:
        log.exception("sending reply %s from the web process failed", message_id)
    finally:
        _web_slots.release()
        connections.close_all()  # this thread's connection back to the pool


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """The shared retry policy (core.calls) with the replies' settings."""
    return calls.retry_delay(
        attempts,
        base=settings.INBOX_REPLY_BACKOFF_SECONDS,
        cap=settings.INBOX_REPLY_BACKOFF_MAX_SECONDS,
        retry_after=retry_after,
    )


STALLED_AFTER = timedelta(minutes=2)


@cron("* * * * *")
@dramatiq.actor(max_retries=0, time_limit=60_000)
def resume_stalled_replies() -> None:
    """Re-enqueue replies whose job was lost (a broker restart, a dead worker).

    Sending again is safe: the idempotency key makes the gateway send once.
    """
    cutoff = timezone.now() - STALLED_AFTER
    stalled = Message.objects.filter(
        delivery_state__in=[
            Message.DeliveryState.QUEUED,
            Message.DeliveryState.SENDING,
            Message.DeliveryState.RETRYING,
        ],
        next_attempt_at__lt=cutoff,
    ).values_list("pk", flat=True)[:500]
    for pk in stalled:
        deliver_reply.send(pk)


@dramatiq.actor(
    queue_name="replies", max_retries=5, min_backoff=1_000, time_limit=30_000
)
def sync_send_policy(conversation_id: int) -> None:
    """Tell the gateway to stop (or restart) its agent for one session.

    With the inbox plugin on the gateway, the plugin skips the agent for a
    human-owned session on every channel: no model call, the customer's
    messages still recorded. Without it, channel sessions fall back to
    ``sendPolicy: deny`` (the agent still runs, its replies are held back);
    on webchat that would refuse the customer's own messages, so nothing is
    sent and the conversation header says so. Reads the conversation's state
    when it runs, so jobs that arrive late or twice still leave the gateway
    matching what the inbox shows.
    """
    conversation = (
        Conversation.objects.select_related("assignee")
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        return
    client = gateway.client()
    paused = conversation.is_bot_paused
    key = conversation.session_id
    try:
        plugin = client.has_plugin()
        if plugin:
            answer = client.set_human_owner(
                key, conversation.holder if paused else None
            )
            # Loaded but not allowed its hook: it cannot stop the model call.
            plugin = answer.get("enforcing") is not False
            GatewayLink.note_enforcing(client.url, plugin)
        mode = pause_mode(key, plugin=plugin)
        if mode == "deny":
            client.set_send_policy(key, "deny" if paused else None)
        if paused and mode != "none":
            # Also stop the turn the bot may be in the middle of: the
            # customer's next message would be steered into it and answered.
            client.stop_agent_turn(key)
    except gateway.GatewayError as exc:
        if exc.permanent:
            log.warning("gateway refused to pause the agent: %s", exc)
            return
        raise  # Dramatiq retries with backoff


def pause_mode(session_key: str, *, plugin: bool) -> str:
    """How a takeover stops the bot in this session: ``plugin`` (no model call),
    ``deny`` (the agent runs, its replies are held back) or ``none`` (webchat
    without the plugin: the bot cannot be stopped)."""
    if plugin:
        return "plugin"
    if protocol.channel_of(session_key) in protocol.INTERNAL_CHANNELS:
        return "none"
    return "deny"


@cron("* * * * *")
@dramatiq.actor(max_retries=0, time_limit=60_000)
def wake_snoozed_conversations() -> None:
    due = Conversation.objects.filter(
        status=Conversation.Status.SNOOZED, snoozed_until__lte=timezone.now()
    )[:500]
    for conversation in due:
        conversation.wake()


@cron("* * * * *")
@dramatiq.actor(max_retries=0, time_limit=60_000)
def notify_sla_breaches() -> None:
    """Ring every staff member's bell for each escalation waiting longer than
    INBOX_SLA_RED_SECONDS: once per escalation (the notification's key is
    when it started), however often this runs or how many schedulers do."""
    from core.roles import staff_users

    cutoff = timezone.now() - timedelta(seconds=settings.INBOX_SLA_RED_SECONDS)
    late = Conversation.objects.filter(
        status=Conversation.Status.ESCALATED, escalated_at__lte=cutoff
    ).order_by("escalated_at")[:200]
    staff = list(staff_users())
    for conversation in late:
        assert conversation.escalated_at is not None
        minutes = int(
            (timezone.now() - conversation.escalated_at).total_seconds() // 60
        )
        Notification.send(
            staff,
            kind=Notification.Kind.SLA,
            conversation=conversation,
            key=conversation.escalated_at.isoformat(),
            text=f"{conversation} has waited {minutes} min for a human",
        )


@cron("* * * * *")
@dramatiq.actor(max_retries=0, time_limit=60_000)
def auto_assign_escalations() -> None:
    """Hand waiting conversations, oldest first, to online agents in turn.

    Off unless INBOX_AUTO_ASSIGN. An agent is online while a tab of theirs
    checks in, and takes no more than INBOX_AUTO_ASSIGN_CAP conversations at
    once. Also enqueued after each escalation; two runs at once cannot give a
    conversation twice (``auto_assign`` re-checks under the row lock), at
    worst an agent goes one over the cap.
    """
    from django.db.models import Count

    from core.roles import Role, role_of

    if not settings.INBOX_AUTO_ASSIGN:
        return
    cap = settings.INBOX_AUTO_ASSIGN_CAP
    statuses = [
        status
        for status in AgentStatus.objects.online()
        .filter(user__is_active=True)
        .select_related("user")
        if role_of(status.user) >= Role.AGENT
    ]
    load = dict(
        Conversation.objects.filter(
            status=Conversation.Status.HUMAN, assignee__in=[s.user for s in statuses]
        )
        .values_list("assignee")
        .annotate(n=Count("pk"))
    )
    # Round-robin: whoever was given one longest ago goes first.
    epoch = timezone.now() - timedelta(days=3650)
    turn = sorted(statuses, key=lambda s: (s.last_assigned_at or epoch, s.user_id))
    waiting = Conversation.objects.filter(
        status=Conversation.Status.ESCALATED
    ).order_by("escalated_at", "pk")[:100]
    for conversation in waiting:
        available = [s for s in turn if load.get(s.user_id, 0) < cap]
        if not available:
            return
        status = available[0]
        if conversation.auto_assign(status.user) is None:
            continue
        load[status.user_id] = load.get(status.user_id, 0) + 1
        status.last_assigned_at = timezone.now()
        status.save(update_fields=["last_assigned_at"])
        turn.remove(status)
        turn.append(status)
