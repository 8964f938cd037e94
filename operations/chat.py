"""Which chat messages are ops commands: the receiver of the inbox's
``command_received`` signal.

The inbox's ``store()`` asks, inside its transaction, before it would add a
message that starts with ``/``. An allowlisted sender's command is recorded
here (a ``ChatCommand``) with its job (``core.outbox``), in that transaction,
and the inbox then stores no message: no customer conversation, no trigger,
no escalation. Anyone else's ``/deploy`` is an ordinary customer message.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from core import outbox
from operations import config
from operations.models import ChatCommand, CommandSender

# "/name", a Telegram "/name@SomeBot", then anything: "/echo; rm -rf /" is
# /echo with the words ";", "rm", "-rf", "/" (recorded, never run).
COMMAND = re.compile(r"/([A-Za-z][A-Za-z0-9_-]*)(?:@[A-Za-z0-9_]+)?(.*)", re.S)
NAME_CHARS = 40
# "/ops status" is "/status": the OpenClaw gateway answers its own /status,
# /help (and more) itself and never passes them on, but "/ops ..." reaches us.
NAMESPACE = "ops"
MAX_ARGS = 20
ARG_CHARS = 100


def parse(text: str) -> tuple[str, list[str]] | None:
    """``(name, words after it)`` of a command, ``None`` for other text."""
    match = COMMAND.fullmatch(text.strip())
    if match is None:
        return None
    words = match.group(2).split()
    name = match.group(1).lower()
    if name == NAMESPACE:
        name, words = (
            (words[0].lstrip("/").lower(), words[1:]) if words else ("help", [])
        )
    return name[:NAME_CHARS], [w[:ARG_CHARS] for w in words[:MAX_ARGS]]


def allowed_senders() -> list[tuple[str, str]]:
    """Every ``(platform, sender id)`` that may send commands: the setting's
    and the admin's."""
    rows = CommandSender.objects.values_list("platform", "sender_id")
    return sorted(config.senders() | {(p, s) for p, s in rows})


def on_command_senders_wanted(sender: Any, **kwargs: Any) -> list[tuple[str, str]]:
    """The allowlist for the gateway's inbox plugin: its agent must not
    answer these senders' commands (the inbox does)."""
    return allowed_senders()


def on_sender_changed(sender: Any, **kwargs: Any) -> None:
    """An admin changed the allowlist: tell the gateway's plugin (after commit)."""
    with transaction.atomic():
        outbox.enqueue("sync_command_senders")


def is_allowed(platform: str, sender_id: str, session_key: str) -> bool:
    if not sender_id:
        return False
    if any(f":{kind}:" in session_key for kind in ("group", "channel")):
        # The answer goes to the whole chat: customers may be in it.
        return False
    if (platform, sender_id) in config.senders():
        return True
    return CommandSender.objects.filter(platform=platform, sender_id=sender_id).exists()


def on_command_received(
    sender: Any,
    *,
    platform: str,
    sender_id: str,
    session_key: str,
    message_id: str,
    text: str,
    sent_at: datetime | None = None,
    **kwargs: Any,
) -> bool:
    """Record an allowlisted sender's command; ``True`` if it is one (new or
    seen before), so the inbox stores nothing. Runs in ``store()``'s
    transaction."""
    parsed = parse(text)
    if parsed is None or not message_id:
        return False
    if not is_allowed(platform, sender_id, session_key):
        return False
    name, args = parsed
    seen = ChatCommand.objects.filter(
        session_key=session_key, gateway_message_id=message_id
    )
    if seen.exists():
        return True  # a redelivery or a catch-up: it ran (or runs) once
    try:
        with transaction.atomic():  # a savepoint: a twin delivery may race us
            command = ChatCommand.objects.create(
                platform=platform,
                sender_id=sender_id,
                session_key=session_key,
                gateway_message_id=message_id,
                text=text[:2_000],
                name=name,
                args=args,
                sent_at=sent_at,
            )
    except IntegrityError:
        return True
    spec = config.commands().get(name)
    # The outbox must not send the job again while a long command still runs.
    resend = int(spec.timeout) + 120 if spec is not None else None
    outbox.enqueue("run_chat_command", command.pk, resend_after=resend)
    return True


# ChatCommand.reply_key
ECHO_KEY = re.compile(r"ops-(\d{1,18})-[a-z_]+")


def on_reply_echoed(
    sender: Any, *, session_key: str, idempotency_key: str, **kwargs: Any
) -> bool:
    """A command's answer written back into the chat's transcript: ours, so
    the inbox stores nothing (the admin's chat is not a customer's)."""
    match = ECHO_KEY.fullmatch(idempotency_key)
    if match is None:
        return False
    return ChatCommand.objects.filter(
        pk=int(match.group(1)), session_key=session_key
    ).exists()
