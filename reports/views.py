"""The reports page (leads and admins), its CSV, and the digest's page.

Everything is read from the rollup (``reports.summary``), never from the
message tables, so a 30-day page costs a few hundred rows at any volume.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from html import escape
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from core.masking import mask, mask_for, may_see_personal_data
from core.roles import Role, role_of, role_required
from inbox import live
from reports import charts, rollup, summary, tasks
from reports.digest import build as build_digest
from reports.digest import duration
from reports.forms import RangeForm
from reports.models import BUCKET_EDGES, Digest
from reports.summary import Report, Totals, platform_label


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


# Coarser buckets for the response-time chart: (label, upper edge in seconds).
DISTRIBUTION = [
    (gettext_lazy("< 1 min"), 60),
    (gettext_lazy("1–5 min"), 300),
    (gettext_lazy("5–15 min"), 900),
    (gettext_lazy("15–60 min"), 3600),
    (gettext_lazy("1–4 h"), 14400),
    (gettext_lazy("4–24 h"), 86400),
    (gettext_lazy("> 1 day"), None),
]

COLUMNS = [
    ("day", gettext_lazy("Day")),
    ("platform", gettext_lazy("Platform")),
    ("conversations", gettext_lazy("Conversations opened")),
    ("in", gettext_lazy("Messages in")),
    ("out", gettext_lazy("Messages out")),
    ("bot", gettext_lazy("Bot alone %")),
    ("human", gettext_lazy("Human %")),
    ("escalations", gettext_lazy("Escalations")),
    ("sla", gettext_lazy("SLA breaches")),
    ("frt50", gettext_lazy("First response median (s)")),
    ("frt90", gettext_lazy("First response p90 (s)")),
    ("res50", gettext_lazy("Resolution median (s)")),
    ("res90", gettext_lazy("Resolution p90 (s)")),
    ("resolved", gettext_lazy("Resolved")),
    ("unresolved", gettext_lazy("Unresolved at close")),
    ("reason", gettext_lazy("Top escalation reason")),
]
DURATION_COLUMNS = {"frt50", "frt90", "res50", "res90"}


def _share(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.0f}"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def _cells(may_see: bool, day: str, platform: str, t: Totals) -> list[str]:
    """One row of the table and the CSV, in COLUMNS' order."""
    return [
        day,
        platform,
        str(t.conversations_opened),
        str(t.messages_in),
        str(t.messages_out),
        _share(t.bot_share),
        _share(t.human_share),
        str(t.escalations),
        str(t.sla_breaches),
        _seconds(t.first_response_median),
        _seconds(t.first_response_p90),
        _seconds(t.resolution_median),
        _seconds(t.resolution_p90),
        str(t.resolved),
        str(t.unresolved_at_close),
        t.top_reason if may_see else mask(t.top_reason),
    ]


def rows_html(rows: list[list[str]]) -> SafeString:
    """Table rows as markup, each cell escaped (a 90-day range has 700 rows of
    16 cells: the template language, even Django's lazy-aware ``escape``,
    would take most of the page's time; the standard library's escapes the
    same five characters)."""
    return SafeString(
        "".join(
            "<tr>"
            + "".join(f'<th scope="row">{escape(c)}</th>' for c in row[:2])
            + "".join(f"<td>{escape(c)}</td>" for c in row[2:])
            + "</tr>"
            for row in rows
        )
    )


def table(report: Report, user: Any) -> tuple[list[list[str]], list[list[str]]]:
    """(rows per day and platform, total rows per platform and overall)."""
    may_see = may_see_personal_data(user)
    rows = [
        _cells(may_see, day.isoformat(), platform_label(platform), totals)
        for day, platform, totals in report.rows()
    ]
    everything = _("All")
    totals = [
        _cells(may_see, everything, platform_label(p), report.by_platform[p])
        for p in report.platforms
    ]
    totals.append(_cells(may_see, everything, everything, report.total))
    return rows, totals


def _charts(report: Report) -> list[charts.Chart]:
    days = [d.strftime("%m-%d") for d in report.days]
    volume = charts.stacked(
        title=_("Messages per day, by platform"),
        description=_("Messages in and out each day, stacked by platform."),
        categories=days,
        series=[
            (
                f"p-{p}",
                platform_label(p),
                [
                    report.cells[(d, p)].messages_in + report.cells[(d, p)].messages_out
                    if (d, p) in report.cells
                    else 0
                    for d in report.days
                ],
            )
            for p in report.platforms
        ],
    )
    counts = []
    buckets = report.total.first_response
    low = 0
    for _label, high in DISTRIBUTION:
        upper = len(BUCKET_EDGES) + 1 if high is None else BUCKET_EDGES.index(high) + 1
        counts.append(sum(buckets[low:upper]))
        low = upper
    distribution = charts.stacked(
        title=_("First response times"),
        description=_(
            "How many conversations got their first answer within each time."
        ),
        categories=[str(label) for label, _high in DISTRIBUTION],
        series=[("bar", _("Conversations"), counts)],
    )
    escalations = charts.stacked(
        title=_("Escalations per day"),
        description=_("Conversations sent to the human queue each day."),
        categories=days,
        series=[
            (
                f"p-{p}",
                platform_label(p),
                [
                    report.cells[(d, p)].escalations if (d, p) in report.cells else 0
                    for d in report.days
                ],
            )
            for p in report.platforms
        ],
    )
    return [volume, distribution, escalations]


def _form(request: HttpRequest) -> RangeForm:
    data = {
        "range": request.GET.get("range", "7d"),
        "start": request.GET.get("from", ""),
        "end": request.GET.get("to", ""),
    }
    return RangeForm(data, today=rollup.local_today())


@role_required(Role.LEAD)
@require_GET
def report(request: HtmxHttpRequest) -> HttpResponse:
    form = _form(request)
    if not form.is_valid():
        refused = {"form": form, "errors": form.non_field_errors()}
        template = "reports/report.html#report-body" if request.htmx else None
        return render(request, template or "reports/report.html", refused, status=400)
    first, last = form.days
    data = summary.build(first, last)
    rows, totals = table(data, request.user)
    if request.GET.get("format") == "csv":
        return _csv(first, last, rows, totals)
    updated = data.updated_at
    context = {
        "form": form,
        "range": form.cleaned_data["range"],
        "first": first,
        "last": last,
        "report": data,
        "columns": COLUMNS,
        "duration_columns": [
            i for i, (k, _l) in enumerate(COLUMNS) if k in DURATION_COLUMNS
        ],
        "rows": rows,
        "rows_html": rows_html(rows),
        "totals_html": rows_html(totals),
        "charts": _charts(data),
        "reasons": [
            (mask_for(request.user, reason), n)
            for reason, n in data.total.reasons.most_common(8)
        ],
        "agents": [
            (a.name, a.replies, a.conversations, duration(a.first_response_median))
            for a in data.agents
        ],
        "bot_share": (
            round(data.total.bot_share * 100)
            if data.total.bot_share is not None
            else None
        ),
        "first_response": f"{duration(data.total.first_response_median)} / "
        f"{duration(data.total.first_response_p90)}",
        "updated_at": updated,
        "updated_minutes": (
            int((timezone.now() - updated).total_seconds() // 60) if updated else None
        ),
        "csv_query": request.GET.urlencode(),
        "time_zone": settings.TIME_ZONE,
        "escalations": live.escalation_count(),
        "role": role_of(request.user).label,
    }
    if request.htmx:
        return render(request, "reports/report.html#report-body", context)
    return render(request, "reports/report.html", context)


def _csv(
    first: date, last: date, rows: list[list[str]], totals: list[list[str]]
) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"openclaw-report-{first.isoformat()}-{last.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response.write("\ufeff")  # Excel reads UTF-8 (Korean) only with the BOM
    writer = csv.writer(response)
    writer.writerow([str(label) for _key, label in COLUMNS])
    for row in [*rows, *totals]:
        # A cell starting with = + - @ would be a formula in a spreadsheet.
        writer.writerow(["'" + c if c[:1] and c[0] in "=+-@" else c for c in row])
    return response


# --- the digest ------------------------------------------------------------------


@role_required(Role.LEAD)
@require_GET
def digest(request: HtmxHttpRequest) -> HttpResponse:
    today = rollup.local_today()
    yesterday = today - timedelta(days=1)
    sent = Digest.objects.filter(day=yesterday, is_manual=False).first()
    context = {
        # From the rollup as it stands (minutes old): a page view computes nothing.
        "today_so_far": build_digest(today, so_far=True, fresh=False).text,
        "yesterday": yesterday,
        "yesterday_text": (
            sent.body if sent else build_digest(yesterday, fresh=False).text
        ),
        "yesterday_sent": sent is not None,
        "digests": list(Digest.objects.select_related("requested_by")[:60]),
        "digest_time": settings.INBOX_DIGEST_TIME,
        "time_zone": settings.TIME_ZONE,
        "channel": settings.INBOX_DIGEST_CHANNEL,
        "to": settings.INBOX_DIGEST_TO,
        "emails": settings.INBOX_DIGEST_EMAILS,
        "can_send": role_of(request.user) >= Role.ADMIN,
        "escalations": live.escalation_count(),
        "role": role_of(request.user).label,
    }
    if request.htmx and request.htmx.target == "digest-list":
        return render(request, "reports/digest.html#digest-list", context)
    return render(request, "reports/digest.html", context)


@role_required(Role.ADMIN)
@require_POST
def digest_send(request: HttpRequest) -> HttpResponse:
    """Send a manual copy of a day's digest now (admins); the daily one stays."""
    try:
        day = date.fromisoformat(request.POST.get("day", ""))
    except ValueError:
        return HttpResponse(_("Pick a day (YYYY-MM-DD)."), status=400)
    if day > rollup.local_today():
        return HttpResponse(_("That day has not happened yet."), status=400)
    if request.POST.get("confirmed") != "yes":
        # Asked on the server: no script needed, and Enter confirms.
        return render(
            request,
            "reports/digest_confirm.html",
            {"day": day, "escalations": live.escalation_count()},
        )
    tasks.send_digest_now(day, request.user)
    messages.success(
        request, _("The digest for %(day)s is on its way.") % {"day": day.isoformat()}
    )
    return redirect("reports:digest")
