"""What each ops command does, once the actor has claimed it.

Built-ins: ``/status``, ``/digest``, ``/logs [N]``, ``/help``, ``/confirm
CODE``. The admin's own (``OPS_COMMANDS``) run a FIXED argv: no shell, and
nothing the sender typed is ever passed to the program (extra words are only
recorded). ``deploy`` and commands marked dangerous first ask for a code the
same sender must repeat within a minute.
"""

from __future__ import annotations

import logging
import re
import subprocess
from typing import Any

from django.db import transaction
from django.utils import timezone

from core import outbox
from core.masking import mask
from operations import chat, config, logs, status
from operations.models import ChatCommand
from reports import digest

log = logging.getLogger(__name__)

LOG_LINES_DEFAULT = 10
LOG_LINES_MAX = 50
OPS_FORM = re.compile(rf"/{chat.NAMESPACE}(?:@[A-Za-z0-9_]+)?(?:\s|$)", re.I)
# A chat message is short: the reply carries the output's tail.
REPLY_OUTPUT_CHARS = 1_500

Outcome = ChatCommand.Outcome


def execute(command: ChatCommand) -> None:
    """Run ``command`` (claimed: RUNNING) and record its outcome and reply."""
    if command.is_stale and command.confirm_code == "":
        return command.finish(
            Outcome.REFUSED,
            f"/{command.name} was sent too long ago; send it again to run it.",
            reason="sent too long ago (caught up late)",
        )
    if command.name == "confirm":
        return _confirm(command)
    builtin = BUILTINS.get(command.name)
    if builtin is not None:
        try:
            reply = builtin(command)
        except Exception as exc:
            log.exception("/%s failed", command.name)
            return command.finish(Outcome.FAILED, f"/{command.name} failed: {exc}")
        return command.finish(Outcome.RAN, reply)
    spec = config.commands().get(command.name)
    if spec is None:
        return command.finish(
            Outcome.REFUSED,
            f"Unknown command {_typed(command, command.name)}. "
            f"Send {_typed(command, 'help')} for the list.",
            reason="unknown command",
        )
    if spec.dangerous and command.confirm_code == "":
        code = command.ask_for_confirmation()
        return command.finish(
            Outcome.NEEDS_CONFIRMATION,
            f"{_typed(command, command.name)} needs a confirmation: "
            f"send {_typed(command, 'confirm')} {code} within 60 s.",
            confirm_code=code,
            expires_at=command.expires_at,
        )
    _run_program(command, spec)


def _run_program(command: ChatCommand, spec: config.CommandSpec) -> None:
    # The argv is the setting's, as written: never the sender's words.
    try:
        done = subprocess.run(
            list(spec.argv),
            shell=False,
            timeout=spec.timeout,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        command.keep_output(_text(exc.stdout) + _text(exc.stderr))
        return command.finish(
            Outcome.TIMED_OUT,
            f"/{command.name} timed out after {spec.timeout:g} s.",
            reason=f"timed out after {spec.timeout:g} s",
            output=command.output,
            output_length=command.output_length,
        )
    except OSError as exc:
        return command.finish(
            Outcome.FAILED,
            f"/{command.name} could not start: {exc.strerror or exc}",
            reason=f"could not start: {exc.strerror or exc}"[:300],
        )
    command.keep_output(_text(done.stdout) + _text(done.stderr))
    output = mask(command.output)
    tail = output[-REPLY_OUTPUT_CHARS:]
    reply = f"/{command.name} exited {done.returncode}"
    reply += f":\n{tail}" if tail.strip() else "."
    command.finish(
        Outcome.RAN if done.returncode == 0 else Outcome.FAILED,
        reply,
        exit_code=done.returncode,
        output=output,
        output_length=command.output_length,
        reason="" if done.returncode == 0 else f"exit code {done.returncode}",
    )


def _text(raw: Any) -> str:
    if raw is None:
        return ""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _confirm(command: ChatCommand) -> None:
    code = command.args[0] if command.args else ""
    with transaction.atomic():
        refusal, target = command.confirm_with(code, command.received_at)
        command.confirms = target
        if refusal:
            return command.finish(
                Outcome.REFUSED,
                f"Refused: {refusal}.",
                reason=refusal,
                confirms=target,
            )
        assert target is not None
        spec = config.commands().get(target.name)
        resend = int(spec.timeout) + 120 if spec is not None else None
        outbox.enqueue("run_chat_command", target.pk, resend_after=resend)
        command.finish(
            Outcome.CONFIRMED, f"Confirmed: running /{target.name}.", confirms=target
        )


def _status(command: ChatCommand) -> str:
    return status.summary()


def _digest(command: ChatCommand) -> str:
    # Masked by the digest itself: it leaves the product too.
    return digest.build(timezone.localdate(), so_far=True).text


def _logs(command: ChatCommand) -> str:
    wanted = LOG_LINES_DEFAULT
    if command.args and command.args[0].isdigit():
        wanted = int(command.args[0])
    wanted = max(1, min(wanted, LOG_LINES_MAX))
    found = logs.recent(wanted)
    if not found:
        return "No errors logged lately."
    # Oldest first, as a log reads.
    lines = [mask(line) for _, line in reversed(found)]
    return f"The last {len(lines)} error lines:\n" + "\n".join(lines)


def _typed(command: ChatCommand, name: str) -> str:
    """``name`` as this sender types commands: "/ops name" after "/ops ...",
    the form that gets past an OpenClaw gateway's own /status and /help."""
    if OPS_FORM.match(command.text.lstrip()):
        return f"/{chat.NAMESPACE} {name}"
    return f"/{name}"


def _help(command: ChatCommand) -> str:
    at_most = f"at most {LOG_LINES_MAX}"
    lines = [
        f"{_typed(command, 'status')}: queues, workers, webhooks, errors, escalations",
        f"{_typed(command, 'digest')}: today so far",
        f"{_typed(command, 'logs')} [N]: the last N error lines ({at_most})",
        f"{_typed(command, 'help')}: this list",
    ]
    for spec in config.commands().values():
        note = " (asks for a confirmation)" if spec.dangerous else ""
        lines.append(f"{_typed(command, spec.name)}: runs a fixed program{note}")
    return "\n".join(lines)


BUILTINS = {
    "status": _status,
    "digest": _digest,
    "logs": _logs,
    "help": _help,
}
