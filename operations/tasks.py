"""Ops actors: run a chat command and answer in the sender's chat; the
per-minute heartbeat the system page reads as "workers alive".

Dramatiq delivers at least once: a command runs once (``ChatCommand.claim``
locks it from RECEIVED or CONFIRMED to RUNNING); a redelivery only sends a
reply still owed. A gateway that is down raises: Dramatiq retries with backoff
and the commands page shows the attempts and the error.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import dramatiq
from django.conf import settings
from django.utils import timezone
from dramatiq_crontab import cron

from inbox import gateway, protocol
from inbox.connector import command_senders
from operations import commands, config
from operations.models import ChatCommand

log = logging.getLogger(__name__)

# A command found RUNNING this long after it started lost its worker.
STUCK_AFTER = timedelta(seconds=config.MAX_TIMEOUT + 120)


@dramatiq.actor(
    queue_name="ops",
    max_retries=8,
    min_backoff=1_000,
    max_backoff=60_000,
    time_limit=(config.MAX_TIMEOUT + 60) * 1000,
)
def run_chat_command(command_id: int) -> None:
    command = ChatCommand.objects.filter(pk=command_id).first()
    if command is None:
        return
    if command.claim():
        commands.execute(command)
        command.refresh_from_db()
    if not command.reply_pending:
        return
    try:
        gateway.client().send_message(
            command.session_key,
            command.reply_text,
            idempotency_key=command.reply_key,
        )
    except gateway.GatewayError as exc:
        command.note_reply(str(exc) or type(exc).__name__)
        if exc.permanent:
            log.warning("ops reply %s refused: %s", command.pk, exc)
            return
        raise  # transient: Dramatiq tries again later
    command.note_reply()


@dramatiq.actor(
    queue_name="ops", max_retries=8, min_backoff=1_000, max_backoff=60_000,
    time_limit=30_000,
)  # fmt: skip
def sync_command_senders() -> None:
    """Send the gateway's inbox plugin the allowlist as it is now, so its agent
    stays out of these senders' commands. (The connector sends it on every
    connect too; a gateway with an older plugin, or none, is skipped.)"""
    if not settings.OPENCLAW_GATEWAY_URL:
        return  # webhooks only: no plugin to tell
    client = gateway.client()
    try:
        if protocol.COMMANDS_METHOD not in client.hello().methods:
            return
        client.call(protocol.COMMANDS_METHOD, {"senders": command_senders()})
    except gateway.GatewayError as exc:
        if exc.permanent:
            log.warning("gateway refused the ops senders: %s", exc)
            return
        raise  # transient: Dramatiq tries again later


@cron("* * * * *")
@dramatiq.actor(queue_name="ops", max_retries=0, time_limit=60_000)
def ops_heartbeat() -> None:
    """Every minute: proof that the scheduler and a worker run (its JobRun
    row), and commands nobody confirmed in time marked expired."""
    now = timezone.now()
    for command in ChatCommand.objects.filter(
        outcome=ChatCommand.Outcome.NEEDS_CONFIRMATION, expires_at__lt=now
    ):
        command.expire()
    ChatCommand.objects.filter(
        outcome=ChatCommand.Outcome.RUNNING, started_at__lt=now - STUCK_AFTER
    ).update(outcome=ChatCommand.Outcome.FAILED, reason="its worker stopped")
