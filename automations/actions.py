"""What a trigger can do, one action at a time.

Each action type declares its fields (the editor builds its form from them),
checks a configuration before it is saved, and performs itself for one run.
``perform`` never raises: an action's failure is recorded on the run and the
next action still runs.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from automations import outbound
from automations.models import (
    ACTION_LABELS,
    Ticket,
    Trigger,
    TriggerRun,
    WebhookCall,
)
from core import outbox
from inbox.models import fill_placeholders

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Field:
    name: str
    label: str | Promise  # lazy: in the language of the page showing it
    kind: str = "text"  # text, textarea, choice, url, json
    choices: tuple[tuple[str, str | Promise], ...] = ()
    required: bool = True
    help: str | Promise = ""
    max_length: int = 2_000


@dataclass(frozen=True)
class ActionType:
    key: str
    label: str | Promise
    fields: tuple[Field, ...]
    run: Callable[[dict[str, Any], TriggerRun, Trigger], str]
    check: Callable[[dict[str, Any]], None] | None = None


# --- tasks a trigger may run (the seed's trigger_task, allowlisted) -----------------


@dataclass(frozen=True)
class TaskSpec:
    actor: str  # the actor's name in automations.tasks
    help: str
    args: dict[str, type]  # argument name → type; all required


TASKS: dict[str, TaskSpec] = {
    "tag_conversation": TaskSpec(
        actor="tag_conversation",
        help="Add a tag to the conversation (e.g. refund, order, question, help).",
        args={"tag": str},
    ),
    "reset_gateway_session": TaskSpec(
        actor="reset_gateway_session",
        help="Ask the gateway to start the customer's session afresh.",
        args={},
    ),
}


def check_task(config: dict[str, Any]) -> None:
    name = config.get("task")
    spec = TASKS.get(name or "")
    if spec is None:
        raise ValidationError(
            _("Unknown task %(task)r; allowed: %(allowed)s.")
            % {"task": name, "allowed": ", ".join(sorted(TASKS))}
        )
    args = config.get("args") or {}
    if isinstance(args, str):
        try:
            args = json.loads(args or "{}")
        except json.JSONDecodeError as exc:
            raise ValidationError(
                _("Arguments must be JSON: %(reason)s.") % {"reason": exc.msg}
            ) from exc
    if not isinstance(args, dict):
        raise ValidationError(_("Arguments must be a JSON object."))
    unknown = set(args) - set(spec.args)
    if unknown:
        raise ValidationError(
            _("%(task)s takes no argument %(args)s.")
            % {"task": name, "args": ", ".join(sorted(unknown))}
        )
    for arg, kind in spec.args.items():
        if arg not in args:
            raise ValidationError(
                _("%(task)s needs the argument %(arg)r.") % {"task": name, "arg": arg}
            )
        if not isinstance(args[arg], kind):
            raise ValidationError(
                _("%(arg)s must be a %(kind)s.") % {"arg": arg, "kind": kind.__name__}
            )
        if kind is str and not (0 < len(args[arg]) <= 64):
            raise ValidationError(
                _("%(arg)s must be 1 to 64 characters.") % {"arg": arg}
            )
    config["args"] = args


def check_url(config: dict[str, Any]) -> None:
    parts = urlsplit(config.get("url", ""))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            _("The URL must start with http:// or https:// and name a host.")
        )
    if parts.username or parts.password:
        raise ValidationError(
            _("Put credentials in the receiver's settings, not the URL.")
        )
    # The guard the call itself applies (resolution only, nothing is sent):
    # a private or loopback destination is refused now, not at 3 a.m.
    try:
        outbound.check_url(config["url"])
    except outbound.OutboundError as exc:
        raise ValidationError(
            _("Webhook URL: %(reason)s") % {"reason": exc.message}
        ) from exc


# --- performing --------------------------------------------------------------------


def _values(run: TriggerRun, trigger: Trigger) -> dict[str, str]:
    conversation = run.conversation
    return {
        "customer_name": conversation.customer_name or "there",
        "platform": conversation.get_platform_display(),
        "trigger": trigger.name,
        "message": run.message.text[:500],
    }


def _reply(config: dict[str, Any], run: TriggerRun, trigger: Trigger) -> str:
    text = fill_placeholders(config["text"], _values(run, trigger))
    message = run.conversation.auto_reply(
        text,
        sender=f"automation: {trigger.name}",
        metadata={"automation": {"trigger": trigger.pk, "run": run.pk, "depth": 1}},
    )
    return f"reply #{message.pk} queued"


def _escalate(config: dict[str, Any], run: TriggerRun, trigger: Trigger) -> str:
    # Named, never the pattern: patterns are staff configuration, and long
    # (the run keeps which one matched).
    reason = f"trigger “{trigger.name}”"[:255]
    activity = run.conversation.escalate(reason=reason)
    return "escalated" if activity else "already with a human"


def _ticket(config: dict[str, Any], run: TriggerRun, trigger: Trigger) -> str:
    values = _values(run, trigger)
    with transaction.atomic():
        ticket = Ticket.objects.create(
            subject=fill_placeholders(config["subject"], values)[:200],
            body=fill_placeholders(config.get("body", ""), values),
            priority=config.get("priority") or Ticket.Priority.NORMAL,
            conversation=run.conversation,
            trigger=trigger,
        )
        run.conversation.record_event(
            f"Ticket #{ticket.pk} opened by “{trigger.name}”: {ticket.subject}",
            ticket=ticket.pk,
        )
    return f"ticket #{ticket.pk}"


def _webhook(config: dict[str, Any], run: TriggerRun, trigger: Trigger) -> str:
    conversation, message = run.conversation, run.message
    webhook_id = f"msg_{uuid.uuid4().hex}"
    body = {
        "type": "trigger.fired",
        "trigger": {"id": trigger.pk, "name": trigger.name, "version": trigger.version},
        "conversation": {
            "id": conversation.pk,
            "sessionId": conversation.session_id,
            "platform": conversation.platform,
            "customerName": conversation.customer_name,
            "status": conversation.status,
        },
        "message": {
            "id": message.pk,
            "text": message.text,
            "createdAt": message.created_at.isoformat(),
        },
        "match": {
            "pattern": run.matched_pattern,
            "start": run.span_start,
            "end": run.span_end,
        },
    }
    with transaction.atomic():
        call = WebhookCall.objects.create(
            trigger=trigger,
            run=run,
            url=config["url"],
            webhook_id=webhook_id,
            body=json.dumps(body, ensure_ascii=False),
        )
        outbox.enqueue("call_webhook", call.pk)
    return f"webhook call #{call.pk} queued"


def _task(config: dict[str, Any], run: TriggerRun, trigger: Trigger) -> str:
    import dramatiq

    check_task(config)  # the registry may have changed since the trigger was saved
    spec = TASKS[config["task"]]
    actor = dramatiq.get_broker().get_actor(spec.actor)
    actor.send(run.conversation_id, **config["args"])
    return f"task {config['task']} queued"


ACTION_TYPES: dict[str, ActionType] = {
    "reply": ActionType(
        "reply",
        ACTION_LABELS["reply"],
        (
            Field(
                "text",
                gettext_lazy("Reply text"),
                "textarea",
                help=gettext_lazy(
                    "Placeholders: {customer_name}, {platform}, {trigger}"
                ),
            ),
        ),
        _reply,
    ),
    "escalate": ActionType("escalate", ACTION_LABELS["escalate"], (), _escalate),
    "create_ticket": ActionType(
        "create_ticket",
        ACTION_LABELS["create_ticket"],
        (
            Field("subject", gettext_lazy("Ticket subject"), max_length=200),
            Field("body", gettext_lazy("Ticket body"), "textarea", required=False),
            Field(
                "priority",
                gettext_lazy("Priority"),
                "choice",
                choices=tuple(Ticket.Priority.choices),
            ),
        ),
        _ticket,
    ),
    "call_webhook": ActionType(
        "call_webhook",
        ACTION_LABELS["call_webhook"],
        (
            Field(
                "url",
                gettext_lazy("Webhook URL"),
                "url",
                help=gettext_lazy(
                    "POSTed a JSON body signed with this trigger's secret "
                    "(Standard Webhooks). Private and loopback addresses are refused."
                ),
                max_length=500,
            ),
        ),
        _webhook,
        check_url,
    ),
    "run_task": ActionType(
        "run_task",
        ACTION_LABELS["run_task"],
        (
            Field(
                "task",
                gettext_lazy("Task"),
                "choice",
                choices=tuple((name, name) for name in sorted(TASKS)),
            ),
            Field(
                "args",
                gettext_lazy("Arguments (JSON)"),
                "json",
                required=False,
                help=gettext_lazy('For example {"tag": "refund"}'),
            ),
        ),
        _task,
        check_task,
    ),
}


def clean_action(raw: dict[str, Any]) -> dict[str, Any]:
    """A checked copy of one action's configuration; ValidationError says why not."""
    kind = raw.get("type")
    action_type = ACTION_TYPES.get(kind or "")
    if action_type is None:
        raise ValidationError(_("Unknown action type %(kind)r.") % {"kind": kind})
    config: dict[str, Any] = {"type": kind}
    for field in action_type.fields:
        value = raw.get(field.name, "")
        if isinstance(value, str):
            value = value.strip()
        if field.required and value in ("", None):
            raise ValidationError(
                _("%(action)s: %(field)s is required.")
                % {"action": action_type.label, "field": field.label}
            )
        if isinstance(value, str) and len(value) > field.max_length:
            raise ValidationError(
                _("%(action)s: %(field)s is at most %(limit)d characters.")
                % {
                    "action": action_type.label,
                    "field": field.label,
                    "limit": field.max_length,
                }
            )
        if field.kind == "choice" and value and value not in dict(field.choices):
            raise ValidationError(
                _("%(action)s: pick a %(field)s.")
                % {"action": action_type.label, "field": str(field.label).lower()}
            )
        config[field.name] = value
    if action_type.check is not None:
        action_type.check(config)
    return config


def perform(
    action: dict[str, Any], *, trigger: Trigger, run: TriggerRun, step: int
) -> dict[str, Any]:
    """Run one action; the result (or the error) is what the run records."""
    action_type = ACTION_TYPES.get(action.get("type", ""))
    result: dict[str, Any] = {"type": action.get("type"), "step": step}
    if action_type is None:
        result["error"] = f"unknown action type {action.get('type')!r}"
        return result
    try:
        result["detail"] = action_type.run(action, run, trigger)
        result["ok"] = True
    except Exception as exc:  # noqa: BLE001 - one failing action must not stop the rest
        log.exception("trigger %s action %s failed", trigger.pk, action.get("type"))
        result["ok"] = False
        result["error"] = f"{action_type.label}: {exc}"[:500]
    return result
