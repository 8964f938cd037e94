"""The automations editor: triggers, their versions, try-it, backtests, tickets.

Everyone on staff may read; leads and admins change (every POST checks the
role here, whatever the page showed). htmx requests get the region they
target, ``template#region``; the rest get the page.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseLocation
from django_htmx.middleware import HtmxDetails

from automations import engine
from automations.actions import ACTION_TYPES
from automations.forms import (
    ACTION_KEY,
    ActionRow,
    BacktestForm,
    MoveForm,
    TicketFilterForm,
    ToggleForm,
    TriggerForm,
    TryForm,
    pattern_problems,
    pattern_warnings,
    split_patterns,
)
from automations.models import (
    FIELD_LABELS,
    VERSIONED_FIELDS,
    Backtest,
    Ticket,
    Trigger,
    TriggerRun,
    TriggerVersion,
    VersionConflict,
)
from core.roles import Role, needs_role, role_of, role_required
from inbox import live
from inbox.models import Conversation, Platform


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    """What every page needs: the role (templates hide what the server refuses)."""
    role = role_of(request.user)
    return {
        "role": role.label,
        "can_edit": role >= Role.LEAD,
        "escalations": live.escalation_count(),
        **extra,
    }


def _posts_need_lead(
    view: Callable[..., HttpResponse],
) -> Callable[..., HttpResponse]:
    """Agents may read the page; only leads and admins may POST to it."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST" and role_of(request.user) < Role.LEAD:
            return HttpResponseForbidden(
                needs_role(Role.LEAD), content_type="text/plain"
            )
        return view(request, *args, **kwargs)

    return role_required(Role.AGENT)(wrapper)


# --- the list --------------------------------------------------------------------


def _triggers() -> QuerySet[Trigger]:
    since = timezone.now() - timedelta(hours=24)
    recent = (
        TriggerRun.objects.filter(trigger=OuterRef("pk"), created_at__gte=since)
        .values("trigger")
        .annotate(n=Count("pk"))
        .values("n")
    )
    failed = TriggerRun.objects.filter(trigger=OuterRef("pk")).exclude(error="")
    failed = failed.order_by("-created_at", "-pk")
    return Trigger.objects.in_order().annotate(
        matches_24h=Coalesce(Subquery(recent, output_field=IntegerField()), 0),
        last_error=Subquery(failed.values("error")[:1]),
        last_error_at=Subquery(failed.values("created_at")[:1]),
    )


def _rows(request: HtmxHttpRequest) -> HttpResponse:
    context = _context(request, triggers=list(_triggers()))
    return render(request, "automations/list.html#trigger-rows", context)


@role_required(Role.AGENT)
@require_GET
def trigger_list(request: HtmxHttpRequest) -> HttpResponse:
    if request.htmx and request.htmx.target == "trigger-rows":
        return _rows(request)
    context = _context(request, triggers=list(_triggers()))
    return render(request, "automations/list.html", context)


@role_required(Role.LEAD)
@require_POST
def trigger_toggle(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    trigger = get_object_or_404(Trigger, pk=pk)
    form = ToggleForm(request.POST)
    form.is_valid()  # a checkbox: absent means off, nothing else can be wrong
    trigger.set_enabled(form.cleaned_data["is_enabled"], request.user)
    if not request.htmx:
        return redirect("automations:trigger-list")
    return _rows(request)


@role_required(Role.LEAD)
@require_POST
def trigger_move(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    trigger = get_object_or_404(Trigger, pk=pk)
    form = MoveForm(request.POST)
    if not form.is_valid():
        return HttpResponse(_("direction must be up or down"), status=400)
    trigger.move(form.step, request.user)
    if not request.htmx:
        return redirect("automations:trigger-list")
    return _rows(request)


# --- the editor ------------------------------------------------------------------


def _editor(
    request: HtmxHttpRequest,
    form: TriggerForm,
    trigger: Trigger | None,
    *,
    status: int = 200,
    **extra: Any,
) -> HttpResponse:
    context = _context(
        request,
        form=form,
        trigger=trigger,
        problems=form.pattern_problems,
        warnings=form.pattern_warnings,
        action_types=ACTION_TYPES.values(),
        backtest_form=BacktestForm(),
        **extra,
    )
    if request.htmx and request.method == "POST":
        return render(request, "automations/edit.html#editor", context, status=status)
    return render(request, "automations/edit.html", context, status=status)


@_posts_need_lead
@require_http_methods(["GET", "POST"])
def trigger_create(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _editor(request, TriggerForm.blank(), None)
    form = TriggerForm(request.POST)
    if not form.is_valid():
        return _editor(request, form, None, status=400)
    trigger = form.apply_to(Trigger())
    version = trigger.save_version(request.user)
    url = reverse("automations:trigger-edit", args=[trigger.pk])
    if not request.htmx:
        return redirect(url)
    response = _editor(
        request, TriggerForm.for_trigger(trigger), trigger, saved=version
    )
    response["HX-Push-Url"] = url
    return response


@_posts_need_lead
@require_http_methods(["GET", "POST"])
def trigger_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    trigger = get_object_or_404(Trigger, pk=pk)
    if request.method == "GET":
        form = TriggerForm.for_trigger(trigger)
        # Saved before these checks existed, or through the admin: say so now.
        saved = [(line, str(p)) for line, p in enumerate(trigger.patterns, start=1)]
        form.pattern_problems = pattern_problems(saved)
        form.pattern_warnings = pattern_warnings(saved)
        return _editor(request, form, trigger)
    form = TriggerForm(request.POST)
    if not form.is_valid():
        return _editor(request, form, trigger, status=400)
    try:
        version = form.apply_to(trigger).save_version(
            request.user, expected_version=form.cleaned_data["base_version"]
        )
    except VersionConflict as exc:
        form.add_error(
            None,
            _("%(conflict)s Reload to see it, then edit again.") % {"conflict": exc},
        )
        trigger.refresh_from_db()
        return _editor(request, form, trigger, status=409)
    if not request.htmx:
        return redirect("automations:trigger-edit", pk=pk)
    return _editor(
        request,
        TriggerForm.for_trigger(trigger),
        trigger,
        saved=version,
        unchanged=version is None,
    )


@role_required(Role.LEAD)
@require_POST
def trigger_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    trigger = get_object_or_404(Trigger, pk=pk)
    if trigger.is_builtin:
        # Installed by a migration (and again by name if missing): disable it.
        return HttpResponse(
            _("Built-in triggers cannot be deleted; disable it instead."),
            status=409,
            content_type="text/plain",
        )
    trigger.delete()
    url = reverse("automations:trigger-list")
    return HttpResponseLocation(url) if request.htmx else redirect(url)


@role_required(Role.AGENT)
@require_GET
def check_patterns(request: HtmxHttpRequest) -> HttpResponse:
    """The patterns textarea as it is typed: what RE2 refuses, and where."""
    lines = split_patterns(request.GET.get("patterns", "")[:30_000])
    if len(lines) > engine.MAX_PATTERNS:
        # Compiling thousands of lines a keystroke would be an easy way to load us.
        too_many = _("At most %(limit)d patterns.") % {"limit": engine.MAX_PATTERNS}
        context = {"problems": [], "pattern_errors": [too_many], "checked": True}
    else:
        context = {
            "problems": pattern_problems(lines),
            "warnings": pattern_warnings(lines),
            "checked": bool(lines),
        }
    return render(request, "automations/edit.html#pattern-feedback", context)


@role_required(Role.AGENT)
@require_GET
def action_fields(request: HtmxHttpRequest) -> HttpResponse:
    """The inputs of one action type, swapped in when its select changes."""
    key = request.GET.get("key", "")
    kind = request.GET.get(f"action-{key}-type", "")
    if not ACTION_KEY.fullmatch(key) or (kind and kind not in ACTION_TYPES):
        return HttpResponse(_("unknown action row or type"), status=400)
    row = ActionRow(key=key, type=kind)
    return render(request, "automations/edit.html#action-fields", {"row": row})


@role_required(Role.AGENT)
@require_GET
def action_row(request: HtmxHttpRequest) -> HttpResponse:
    context = _context(request, row=ActionRow.new(), action_types=ACTION_TYPES.values())
    return render(request, "automations/edit.html#action-row", context)


# --- try it and backtest ---------------------------------------------------------


def _segments(text: str, spans: list[Any]) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, is_match) at ``spans``; the template escapes each."""
    pieces: list[tuple[str, bool]] = []
    at = 0
    for start, end in spans:
        if start > at:
            pieces.append((text[at:start], False))
        pieces.append((text[start:end], True))
        at = end
    if at < len(text):
        pieces.append((text[at:], False))
    return pieces


@role_required(Role.LEAD)
@require_POST
def try_draft(request: HtmxHttpRequest) -> HttpResponse:
    """The drafted patterns against one pasted message: what matches; would it fire?"""
    form = TryForm(request.POST)
    if not form.is_valid():
        return render(
            request, "automations/edit.html#try-result", {"try_form": form}, status=400
        )
    compiled = engine.compile_trigger(form.draft_trigger())
    sample = form.cleaned_data["sample"]
    text = engine.capped(sample)
    results = []
    for pattern, regex in zip(compiled.patterns, compiled.regexes, strict=True):
        found = regex.search(text)
        results.append({"pattern": pattern, "match": found.group(0) if found else None})
    context = {
        "try_form": form,
        "results": results,
        "fires": bool(compiled.matches(text)),
        "mode": form.cleaned_data["match_mode"],
        "segments": _segments(text, engine.highlight_spans(text, compiled.regexes)),
        "cut": len(sample) - len(text),
        "limit": settings.AUTOMATIONS_MATCH_CHARS,
    }
    return render(request, "automations/edit.html#try-result", context)


def _backtest_context(backtest: Backtest) -> dict[str, Any]:
    labels = dict(Platform.choices)
    samples = [
        sample
        | {
            "segments": _segments(sample["text"], sample["spans"]),
            "platform_label": labels.get(sample["platform"], sample["platform"]),
        }
        for sample in backtest.samples
    ]
    platforms = [str(labels.get(p, p)) for p in backtest.draft.get("platforms") or []]
    if len(platforms) > 1:
        platforms = [
            _("%(some)s or %(last)s")
            % {"some": ", ".join(platforms[:-1]), "last": platforms[-1]}
        ]
    return {"backtest": backtest, "samples": samples, "platforms": "".join(platforms)}


@role_required(Role.LEAD)
@require_POST
def backtest_create(request: HtmxHttpRequest) -> HttpResponse:
    """Start the draft (unsaved) over stored messages; the answer polls for progress."""
    form = BacktestForm(request.POST)
    if not form.is_valid():
        return render(
            request,
            "automations/edit.html#backtest",
            {"backtest_form": form, "can_edit": True},
            status=400,
        )
    backtest = Backtest.start(
        draft=form.draft(), n=form.cleaned_data["n"], user=request.user
    )
    context = _backtest_context(backtest) | {"backtest_form": form, "can_edit": True}
    return render(request, "automations/edit.html#backtest", context, status=202)


@role_required(Role.LEAD)  # as starting one: samples quote customers' messages
@require_GET
def backtest_progress(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    backtest = get_object_or_404(Backtest, pk=pk)
    return render(
        request, "automations/edit.html#backtest-progress", _backtest_context(backtest)
    )


# --- versions --------------------------------------------------------------------


def _lines(name: str, value: Any) -> list[str]:
    if name == "patterns":
        return [str(p) for p in value or []]
    # One action a block, keys sorted, so a changed field is one changed line.
    lines: list[str] = []
    for index, action in enumerate(value or [], start=1):
        lines.append(f"#{index} {action.get('type', '?')}")
        for key, item in sorted(action.items()):
            if key != "type":
                lines.append(f"    {key}: {json.dumps(item, ensure_ascii=False)}")
    return lines


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if name == "platforms":
        labels = dict(Platform.choices)
        return ", ".join(str(labels.get(p, p)) for p in value) or _("every platform")
    if name == "states":
        labels = dict(Conversation.Status.choices)
        return ", ".join(str(labels.get(s, s)) for s in value) or _("any state")
    if name == "match_mode":
        return str(dict(Trigger.MatchMode.choices).get(value, value))
    return str(value)


def _diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Per changed field: old → new, or for patterns and actions a line diff."""
    changes = []
    for name in VERSIONED_FIELDS:
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        change: dict[str, Any] = {"field": name, "label": FIELD_LABELS[name]}
        if name in ("patterns", "actions"):
            diff = difflib.unified_diff(
                _lines(name, old), _lines(name, new), lineterm="", n=2
            )
            change["lines"] = [
                ({"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same"), line)
                for line in diff
                if not line.startswith(("+++", "---"))
            ]
        else:
            change["old"], change["new"] = _shown(name, old), _shown(name, new)
        changes.append(change)
    return changes


def _versions_context(request: HttpRequest, trigger: Trigger) -> dict[str, Any]:
    versions = list(trigger.versions.select_related("changed_by"))
    return _context(request, trigger=trigger, versions=versions)


@role_required(Role.AGENT)
@require_GET
def trigger_versions(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    trigger = get_object_or_404(Trigger, pk=pk)
    context = _versions_context(request, trigger)
    if request.htmx and request.htmx.target == "version-list":
        return render(request, "automations/versions.html#version-list", context)
    return render(request, "automations/versions.html", context)


@role_required(Role.AGENT)
@require_GET
def version_diff(request: HtmxHttpRequest, pk: int, number: int) -> HttpResponse:
    trigger = get_object_or_404(Trigger, pk=pk)
    version = get_object_or_404(
        TriggerVersion.objects.select_related("changed_by"),
        trigger=trigger,
        number=number,
    )
    previous = trigger.versions.filter(number__lt=number).order_by("-number").first()
    context = _versions_context(request, trigger) | {
        "shown": version,
        "previous": previous,
        "changes": _diff(previous.snapshot if previous else {}, version.snapshot),
    }
    if request.htmx and request.htmx.target == "diff":
        return render(request, "automations/versions.html#diff", context)
    return render(request, "automations/versions.html", context)


@role_required(Role.LEAD)
@require_POST
def version_revert(request: HtmxHttpRequest, pk: int, number: int) -> HttpResponse:
    trigger = get_object_or_404(Trigger, pk=pk)
    version = get_object_or_404(TriggerVersion, trigger=trigger, number=number)
    created = trigger.revert_to(version, request.user)
    if not request.htmx:
        return redirect("automations:trigger-versions", pk=pk)
    context = _versions_context(request, trigger) | {
        "reverted": version,
        "created": created,
    }
    return render(request, "automations/versions.html#version-list", context)


# --- tickets ---------------------------------------------------------------------


@role_required(Role.AGENT)
@require_GET
def ticket_list(request: HtmxHttpRequest) -> HttpResponse:
    form = TicketFilterForm(request.GET or None)
    tickets = Ticket.objects.select_related("conversation", "trigger")
    status = form.status_filter
    if status == "active":
        tickets = tickets.exclude(status=Ticket.Status.CLOSED)
    elif status:
        tickets = tickets.filter(status=status)
    context = _context(request, form=form, tickets=list(tickets[:200]))
    if request.htmx and request.htmx.target == "ticket-table":
        return render(request, "automations/tickets.html#ticket-table", context)
    return render(request, "automations/tickets.html", context)


@role_required(Role.LEAD)
@require_POST
def ticket_close(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    ticket = get_object_or_404(
        Ticket.objects.select_related("conversation", "trigger"), pk=pk
    )
    ticket.close(request.user)
    if not request.htmx:
        return redirect("automations:ticket-list")
    return render(
        request, "automations/tickets.html#ticket-row", _context(request, ticket=ticket)
    )
