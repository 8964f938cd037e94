"""The system page (leads and admins; configuration for admins only) and the
ops commands' audit (admins).

htmx requests get the region they target (``template#region``): the page's
regions poll every few seconds, so each reads only what it shows.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from core.masking import mask
from core.roles import Role, role_of, role_required
from inbox import live
from operations import config, status
from operations.forms import CommandFilterForm
from operations.models import ChatCommand, CommandSender

COMMANDS_SHOWN = 200
REGIONS = ("system-health", "system-sessions", "system-metrics")


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {
        "role": role_of(request.user).label,
        "is_admin_view": role_of(request.user) >= Role.ADMIN,
        "escalations": live.escalation_count(),
        **extra,
    }


def _health() -> dict[str, Any]:
    jobs = status.scheduled_jobs()
    alive = status.workers_alive()
    never_ran = not any(j.run and j.run.last_finished_at for j in jobs)
    return {
        "gateway": status.gateway(),
        "queues": status.queues(),
        "broker_processes": status.broker_processes(),
        "workers_alive": alive,
        # Just started, nothing ran yet: not a fault (the first run is due).
        "workers_starting": not alive and never_ran and status.just_started(),
        "jobs": jobs,
        "webhooks": status.webhooks(),
        "errors_logged": status.errors_logged(),
        "outbox": status.outbox(),
        "open_escalations": status.open_escalations(),
    }


@role_required(Role.LEAD)
@require_GET
def system(request: HtmxHttpRequest) -> HttpResponse:
    target = request.htmx.target if request.htmx else None
    if target == "system-health":
        return render(
            request, "operations/system.html#health", _context(request, **_health())
        )
    if target == "system-sessions":
        return render(
            request,
            "operations/system.html#sessions",
            _context(request, sessions=status.sessions()),
        )
    if target == "system-metrics":
        return render(
            request,
            "operations/system.html#metrics",
            _context(request, metrics=status.metrics()),
        )
    context = _context(
        request,
        sessions=status.sessions(),
        metrics=status.metrics(),
        **_health(),
    )
    if context["is_admin_view"]:
        context["ops_commands"] = list(config.commands().values())
        context["ops_senders"] = sorted(config.senders())
        context["ops_sender_rows"] = list(CommandSender.objects.order_by("platform"))
    return render(request, "operations/system.html", context)


@role_required(Role.ADMIN)
@require_GET
def command_list(request: HtmxHttpRequest) -> HttpResponse:
    form = CommandFilterForm(request.GET or None)
    commands = ChatCommand.objects.order_by("-received_at", "-pk")
    if outcome := form.outcome_filter:
        commands = commands.filter(outcome=outcome)
    shown = list(commands[:COMMANDS_SHOWN])
    for command in shown:
        # /logs and a program's output carry log lines: masked (again) here.
        carries_logs = command.name == "logs" or bool(command.output_length)
        command.reply_shown = (  # type: ignore[attr-defined]
            mask(command.reply_text) if carries_logs else command.reply_text
        )
    context = _context(request, form=form, commands=shown)
    if request.htmx and request.htmx.target == "command-table":
        return render(request, "operations/commands.html#command-table", context)
    return render(request, "operations/commands.html", context)
