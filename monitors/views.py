"""Monitor pages: the list, the form, a monitor's history and its buttons.

Leads and admins only (every view checks). htmx requests get the region
they target, ``template#region``; the rest get the page.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from core.roles import Role, role_required
from monitors import tasks
from monitors.forms import MonitorForm
from monitors.models import Monitor

HISTORY_ROWS = 50
SPARK_POINTS = 60
SPARK_WIDTH, SPARK_HEIGHT = 300, 60


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@require_http_methods(["GET"])
@role_required(Role.LEAD)
def monitor_list(request: HtmxHttpRequest) -> HttpResponse:
    monitors = Monitor.objects.all()
    return render(request, "monitors/list.html", {"monitors": monitors})


@require_http_methods(["GET", "POST"])
@role_required(Role.LEAD)
def monitor_create(request: HtmxHttpRequest) -> HttpResponse:
    return _edit(request, None)


@require_http_methods(["GET", "POST"])
@role_required(Role.LEAD)
def monitor_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _edit(request, get_object_or_404(Monitor, pk=pk))


def _edit(request: HtmxHttpRequest, monitor: Monitor | None) -> HttpResponse:
    form = MonitorForm(request.POST or None, instance=monitor)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            saved = form.save(commit=False)
            if monitor is None:
                saved.created_by = request.user
            elif {"url", "selector"} & set(form.changed_data):
                saved.start_new_baseline()
            saved.save()
        url = saved.get_absolute_url()
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    template = (
        "monitors/edit.html#monitor-form" if request.htmx else "monitors/edit.html"
    )
    return render(request, template, {"form": form, "monitor": monitor})


@require_POST
@role_required(Role.LEAD)
def monitor_validate(request: HtmxHttpRequest) -> HttpResponse:
    """One field's errors as the lead leaves it (``HX-Trigger-Name``)."""
    form = MonitorForm(request.POST)
    name = request.htmx.trigger_name or ""
    errors = (
        [str(e) for e in form.errors.get(name) or []] if name in form.fields else []
    )
    return render(
        request,
        "monitors/edit.html#field-errors",
        {"errors": errors, "field_id": f"id_{name}"},
    )


@require_http_methods(["GET"])
@role_required(Role.LEAD)
def monitor_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _detail(request, get_object_or_404(Monitor, pk=pk))


def _detail(request: HtmxHttpRequest, monitor: Monitor) -> HttpResponse:
    history = list(monitor.snapshots.all()[:HISTORY_ROWS])
    context = {
        "monitor": monitor,
        "history": history,
        "last_change": monitor.snapshots.filter(is_change=True).first(),
        "alerts": monitor.alerts.all()[:10],
        "spark": sparkline(monitor) if monitor.is_price else None,
    }
    template = "monitors/detail.html"
    if request.htmx and request.htmx.target == "monitor-body":
        template += "#monitor-body"
    return render(request, template, context)


@require_POST
@role_required(Role.LEAD)
def monitor_check(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """'Check now': enqueued; the page polls until the check has run."""
    monitor = get_object_or_404(Monitor, pk=pk)
    with transaction.atomic():
        tasks.enqueue_check(monitor)
    return _back_to(request, monitor)


@require_POST
@role_required(Role.LEAD)
def monitor_toggle(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    monitor = get_object_or_404(Monitor, pk=pk)
    monitor.set_active(not monitor.is_active)
    return _back_to(request, monitor)


@require_POST
@role_required(Role.LEAD)
def monitor_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Gone, so back to the list (its page would be a 404 on reload)."""
    monitor = get_object_or_404(Monitor, pk=pk)
    monitor.delete()
    messages.success(
        request,
        _("Monitor “%(name)s” deleted with its history.") % {"name": monitor.name},
    )
    url = reverse("monitors:monitor-list")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _back_to(request: HtmxHttpRequest, monitor: Monitor) -> HttpResponse:
    if request.htmx:
        monitor.refresh_from_db()
        return _detail(request, monitor)
    return redirect(monitor)


def sparkline(monitor: Monitor) -> dict[str, Any] | None:
    """The recent prices as an SVG polyline (server-drawn: no script)."""
    recent = (
        monitor.snapshots.filter(number__isnull=False)
        .order_by("-fetched_at", "-pk")
        .values_list("number", flat=True)[:SPARK_POINTS]
    )
    points = [number for number in recent if number is not None][::-1]
    if len(points) < 2:
        return None
    low, high = min(points), max(points)
    span = (high - low) or Decimal(1)
    step = SPARK_WIDTH / (len(points) - 1)

    def y(value: Decimal) -> float:
        return float(SPARK_HEIGHT - (value - low) / span * SPARK_HEIGHT)

    coords = " ".join(f"{i * step:.1f},{y(p):.1f}" for i, p in enumerate(points))
    threshold_y = None
    threshold = monitor.threshold
    if threshold is not None and low <= threshold <= high:
        threshold_y = y(threshold)
    return {
        "points": coords,
        "low": low,
        "high": high,
        "width": SPARK_WIDTH,
        "height": SPARK_HEIGHT,
        "threshold_y": threshold_y,
        "count": len(points),
        "last": points[-1],
    }
