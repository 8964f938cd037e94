"""Automation actors: run the triggers for a message, call webhooks, run tasks.

Dramatiq delivers at least once: ``run_triggers`` claims each run with a
unique row before acting, and a webhook call is one logged row whose state
says whether it still has to go.
"""

from __future__ import annotations

import logging

import dramatiq
from django.utils import timezone

from automations import engine, outbound
from automations.models import Backtest, WebhookCall
from core import calls
from inbox.models import Conversation, Message

log = logging.getLogger(__name__)


@dramatiq.actor(queue_name="automations", max_retries=3, time_limit=60_000)
def run_triggers(message_id: int) -> None:
    message = (
        Message.objects.select_related("conversation").filter(pk=message_id).first()
    )
    if message is None:
        return
    engine.run_for_message(message)


WEBHOOK_ATTEMPTS = 5
# Retries of a trigger's webhook: 2 s doubling, at most 5 minutes apart.
WEBHOOK_BACKOFF_SECONDS = 2.0
WEBHOOK_BACKOFF_MAX_SECONDS = 300.0


@dramatiq.actor(queue_name="automations", max_retries=0, time_limit=60_000)
def call_webhook(call_id: int) -> None:
    """POST one trigger's webhook, signed; retried with backoff on transient errors.

    The signing id is the call's own (``webhook-id``), so a receiver that
    deduplicates on it sees a retry as the same delivery.
    """
    call = WebhookCall.objects.select_related("trigger").filter(pk=call_id).first()
    if call is None or call.state in (
        WebhookCall.State.SUCCEEDED,
        WebhookCall.State.FAILED,
    ):
        return
    body = call.body.encode()
    headers = outbound.signed_headers(
        call.trigger.webhook_secret, body, msg_id=call.webhook_id
    )
    call.attempts += 1
    try:
        response = outbound.post_json(call.url, body, headers, timeout=10.0)
    except outbound.OutboundError as exc:
        call.error = str(exc)[:2000]
        call.response_status = exc.status
        if exc.permanent or call.attempts >= WEBHOOK_ATTEMPTS:
            call.state = WebhookCall.State.FAILED
            call.finished_at = timezone.now()
            call.save()
            return
        call.state = WebhookCall.State.RETRYING
        call.save()
        delay = calls.retry_delay(
            call.attempts,
            base=WEBHOOK_BACKOFF_SECONDS,
            cap=WEBHOOK_BACKOFF_MAX_SECONDS,
            retry_after=exc.retry_after,
        )
        call_webhook.send_with_options(args=(call.pk,), delay=int(delay * 1000))
        return
    call.state = WebhookCall.State.SUCCEEDED
    call.response_status = response.status
    call.response_excerpt = response.text[:2000]
    call.error = ""
    call.finished_at = timezone.now()
    call.save()


# --- tasks a trigger may run (allowlisted in automations.actions.TASKS) ------------


@dramatiq.actor(queue_name="automations", max_retries=3, time_limit=30_000)
def tag_conversation(conversation_id: int, tag: str) -> None:
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is not None:
        conversation.add_tag(tag)  # once, even for a redelivered job


@dramatiq.actor(queue_name="automations", max_retries=3, time_limit=30_000)
def reset_gateway_session(conversation_id: int) -> None:
    from inbox import gateway

    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None:
        return
    gateway.client().reset_session(conversation.session_id)


# --- backtests -------------------------------------------------------------------


# Its own queue: a 100,000-message backtest must not hold up live triggers.
@dramatiq.actor(queue_name="backtests", max_retries=0, time_limit=600_000)
def run_backtest(backtest_id: int) -> None:
    """Run one editor's draft over stored messages; progress is saved as it goes.

    Not retried: a failure is recorded for the editor to show, and the lead
    can run it again with one click.
    """
    backtest = Backtest.objects.filter(pk=backtest_id).first()
    if backtest is None or backtest.is_finished:
        return
    try:
        engine.run_backtest(backtest)
    except (Exception, dramatiq.middleware.TimeLimitExceeded) as exc:
        log.exception("backtest %s failed", backtest_id)
        backtest.fail(f"{type(exc).__name__}: {exc}")
