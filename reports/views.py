"""The reports page (leads and admins), its CSV, and the digest's page.

Everything is read from the rollup (``reports.summary``), never from the
message tables, so a 30-day page costs a few hundred rows at any volume.
"""

from __future__ import annotations

import csv
from bisect import bisect_right
from datetime import date, timedelta
from html import escape
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget, trigger_client_event
from django_htmx.middleware import HtmxDetails

from core import outbox
from core.masking import mask, mask_for, may_see_personal_data
from core.roles import Role, role_of, role_required
from inbox import live
from reports import charts, rollup, summary, tasks
from reports.digest import build as build_digest
from reports.digest import duration, first_day
from reports.forms import RangeForm
from reports.models import BUCKET_EDGES, Digest
from reports.summary import Report, Totals, platform_label


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


# Coarser buckets for the response-time chart: (label, upper edge in seconds).
DISTRIBUTION = [
    (gettext_lazy("<1m"), 60),
    (gettext_lazy("1–5m"), 300),
    (gettext_lazy("5–15m"), 900),
    (gettext_lazy("15–60m"), 3600),
    (gettext_lazy("1–4h"), 14400),
    (gettext_lazy("4–24h"), 86400),
    (gettext_lazy(">1d"), None),
]

COLUMNS = [
    ("day", gettext_lazy("Day")),
    ("platform", gettext_lazy("Platform")),
    ("conversations", gettext_lazy("Conversations opened")),
    ("in", gettext_lazy("Messages in")),
    ("out", gettext_lazy("Messages out")),
    ("bot", gettext_lazy("Bot alone %")),
    ("human", gettext_lazy("Human %")),
    ("waiting", gettext_lazy("Waiting for a human")),
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
# The reason column wraps (CSS).
REASON_COLUMN = len(COLUMNS) - 1

# Escalation reasons as the rollup groups them (``rollup.reason_label``), in
# the page's language; the digest keeps the English.
REASON_WORDS = {
    "the gateway asked for a human": gettext_noop("the gateway asked for a human"),
    "escalated by an agent": gettext_noop("escalated by an agent"),
    "a snooze ended": gettext_noop("a snooze ended"),
    "the customer replied to a snoozed conversation": gettext_noop(
        "the customer replied to a snoozed conversation"
    ),
    "no reason given": gettext_noop("no reason given"),
}


def reason_words(label: str) -> str:
    """A grouped escalation reason in the active language."""
    if label in REASON_WORDS:
        return _(REASON_WORDS[label])
    if label.startswith("trigger “") and label.endswith("”"):
        return _("trigger “%(name)s”") % {"name": label[len("trigger “") : -1]}
    return label


def _share(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.0f}"


def _seconds(value: float | None, exact: bool = True, mark: bool = False) -> str:
    """Seconds, whole; "≈" before a figure read from a histogram (``mark``:
    the page; the CSV keeps bare numbers)."""
    if value is None:
        return ""
    return f"{'' if exact or not mark else '≈'}{value:.0f}"


def _cells(
    may_see: bool, day: str, platform: str, t: Totals, mark: bool = False
) -> list[str]:
    """One row of the table and the CSV, in COLUMNS' order."""
    reason = reason_words(t.top_reason)
    fr, res = t.is_exact("first_response"), t.is_exact("resolution")
    return [
        day,
        platform,
        str(t.conversations_opened),
        str(t.messages_in),
        str(t.messages_out),
        _share(t.bot_share),
        _share(t.human_share),
        str(t.waiting_human),
        str(t.escalations),
        str(t.sla_breaches),
        _seconds(t.first_response_median, fr, mark),
        _seconds(t.first_response_p90, fr, mark),
        _seconds(t.resolution_median, res, mark),
        _seconds(t.resolution_p90, res, mark),
        str(t.resolved),
        str(t.unresolved_at_close),
        reason if may_see else mask(reason),
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
            + "".join(f"<td>{escape(c)}</td>" for c in row[2:-1])
            + f'<td class="reason">{escape(row[-1])}</td>'
            + "</tr>"
            for row in rows
        )
    )


def table(
    report: Report, user: Any, *, mark: bool = False
) -> tuple[list[list[str]], list[list[str]]]:
    """(rows per day and platform, total rows per platform and overall);
    ``mark``: "≈" before approximate times (the page, not the CSV)."""
    may_see = may_see_personal_data(user)
    rows = [
        _cells(may_see, day.isoformat(), platform_label(platform), totals, mark)
        for day, platform, totals in report.rows()
    ]
    everything = _("All")
    totals = [
        _cells(may_see, everything, platform_label(p), report.by_platform[p], mark)
        for p in report.platforms
    ]
    totals.append(_cells(may_see, everything, everything, report.total, mark))
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
    exact = report.total.exact.get("first_response")
    low, floor = 0, 0.0
    for _label, high in DISTRIBUTION:
        if exact is not None:
            counts.append(
                sum(
                    1
                    for v in exact
                    if (not floor or v > floor) and (high is None or v <= high)
                )
            )
            floor = float(high or 0)
            continue
        # Buckets by their upper edge (10 % wide: a straddler is the later one's).
        upper = (
            len(BUCKET_EDGES) + 1 if high is None else bisect_right(BUCKET_EDGES, high)
        )
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


def _approx(exact: bool) -> str:
    return "" if exact else "≈"


@role_required(Role.LEAD)
@require_GET
def report(request: HtmxHttpRequest) -> HttpResponse:
    form = _form(request)
    if not form.is_valid():
        if request.htmx:
            # The report stays; the fields show what is wrong, beside them.
            response = render(
                request, "reports/report.html#range-fields", {"form": form}
            )
            return reswap(retarget(response, "#range-fields"), "outerHTML")
        refused = {"form": form, "refused": True}
        return render(request, "reports/report.html", refused, status=400)
    first, last = form.days
    data = summary.build(first, last)
    if request.GET.get("format") == "csv":
        rows, totals = table(data, request.user)
        return _csv(first, last, rows, totals)
    rows, totals = table(data, request.user, mark=True)
    updated = data.updated_at
    total = data.total
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
            (mask_for(request.user, reason_words(reason)), n)
            for reason, n in total.reasons.most_common(8)
        ],
        "agents": [
            (
                a.name,
                a.replies,
                a.conversations,
                _approx(a.exact is not None) + duration(a.first_response_median)
                if a.first_response_median is not None
                else duration(None),
            )
            for a in data.agents
        ],
        "bot_share": (
            round(total.bot_share * 100) if total.bot_share is not None else None
        ),
        "first_response": (
            f"{_approx(total.is_exact('first_response'))}"
            f"{duration(total.first_response_median)} / "
            f"{duration(total.first_response_p90)}"
        ),
        "any_approx": not all(total.is_exact(n) for n in summary.HISTOGRAMS)
        or any(a.exact is None for a in data.agents),
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


def _range_of(request: HttpRequest) -> tuple[date, date] | None:
    data = request.POST if request.method == "POST" else request.GET
    form = RangeForm(
        {"range": "custom", "start": data.get("from"), "end": data.get("to")},
        today=rollup.local_today(),
    )
    return form.days if form.is_valid() else None


# Status polls before the page stops waiting for a recompute (2 s apart).
RECOMPUTE_POLLS = 150


@role_required(Role.LEAD)
@require_POST
def recompute(request: HtmxHttpRequest) -> HttpResponse:
    """Queue the rollup of the range's days that have data but no rollup."""
    days = _range_of(request)
    if days is None:
        return HttpResponse(_("Pick a range first."), status=400)
    first, last = days
    with transaction.atomic():
        outbox.enqueue("roll_up_days", first.isoformat(), last.isoformat())
    return _rollup_status(request, first, last, polls=0)


@role_required(Role.LEAD)
@require_GET
def rollup_status(request: HtmxHttpRequest) -> HttpResponse:
    """The recompute's progress; when done, the page reloads its report."""
    days = _range_of(request)
    if days is None:
        return HttpResponse(_("Pick a range first."), status=400)
    try:
        polls = int(request.GET.get("polls", "0")) + 1
    except ValueError:
        polls = 1
    return _rollup_status(request, *days, polls=polls)


def _rollup_status(
    request: HttpRequest, first: date, last: date, *, polls: int
) -> HttpResponse:
    missing = rollup.unrolled_days_with_data(first, last)
    context = {
        "first": first,
        "last": last,
        "missing": len(missing),
        "polls": polls,
        "waiting": bool(missing) and polls < RECOMPUTE_POLLS,
        "gave_up": bool(missing) and polls >= RECOMPUTE_POLLS,
        "can_recompute": True,
    }
    response = render(request, "reports/report.html#rollup-status", context)
    if not missing:
        trigger_client_event(response, "reports-updated")
    return response


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


def _digest_context(request: HttpRequest) -> dict[str, Any]:
    today = rollup.local_today()
    yesterday = today - timedelta(days=1)
    sent = Digest.objects.filter(day=yesterday, is_manual=False).first()
    # The same count a send makes (not stored): a preview and a send a moment
    # later differ only by what happened between; "as of" says when.
    so_far = build_digest(today, store=False)
    return {
        "today_so_far": so_far.text,
        "today_as_of": so_far.as_of,
        "yesterday": yesterday,
        "yesterday_text": (
            sent.body if sent else build_digest(yesterday, store=False).text
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


@role_required(Role.LEAD)
@require_GET
def digest(request: HtmxHttpRequest) -> HttpResponse:
    if request.htmx and request.htmx.target == "digest-list":
        # The list's refresh computes nothing.
        digests = list(Digest.objects.select_related("requested_by")[:60])
        return render(request, "reports/digest.html#digest-list", {"digests": digests})
    return render(request, "reports/digest.html", _digest_context(request))


def _send_day_error(value: str) -> tuple[date | None, str]:
    """(the day, "") or (None, why it cannot be sent)."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None, _("Pick a day (YYYY-MM-DD).")
    if day > rollup.local_today():
        return None, _("That day has not happened yet.")
    began = first_day()
    if began is None:
        return None, _("There is nothing to send yet: no conversation so far.")
    if day < began:
        return None, _(
            "The inbox has no data before %(day)s (its first conversation)."
        ) % {"day": began.isoformat()}
    return day, ""


@role_required(Role.ADMIN)
@require_POST
def digest_send(request: HttpRequest) -> HttpResponse:
    """Send a manual copy of a day's digest now (admins); the daily one stays."""
    value = request.POST.get("day", "")
    day, error = _send_day_error(value)
    if day is None:
        context = _digest_context(request) | {"send_error": error, "send_day": value}
        return render(request, "reports/digest.html", context, status=400)
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
