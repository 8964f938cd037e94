"""Website monitors: a page (or part of it) read on a schedule, kept as
snapshots, compared, and alerts raised once per occasion.

The state changes are model methods that lock the monitor's row; they record
what happened (snapshots, alerts). Reading the page is ``monitors/checks.py``'s,
the jobs ``monitors/tasks.py``'s.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.roles import LEAD_GROUP
from inbox.models import Notification
from monitors.signals import alert_raised

MAX_DIFF_CHARS = 20_000
MAX_ERROR_CHARS = 500
# How long a claimed check may take before the scheduler may claim it again
# (a worker that died mid-check): longer than the gateway's browser timeout.
CLAIM_LEASE = timedelta(minutes=5)
# The scheduler runs at the top of each minute, a few ms before a check that
# ended at :00.08 last time is due again: without this slack a 5-minute
# monitor was checked every 6 minutes.
DUE_SLACK = timedelta(seconds=30)

_NUMBER = re.compile(r"\d(?:[\d.,'\u00a0\u202f ]*\d)?")


def parse_price(text: str) -> Decimal | None:
    """The first number in ``text``, read the way prices are written.

    "₩1,250,000" → 1250000, "$1,299.00" → 1299.00, "1.299,00 €" → 1299.00,
    "12,900원" → 12900. With both "." and "," the last one is the decimal
    mark; with one of them, it is a thousands separator when it repeats or
    is followed by exactly three digits.
    """
    match = _NUMBER.search(text)
    if match is None:
        return None
    token = re.sub(r"['\u00a0\u202f ]", "", match.group())
    last_dot, last_comma = token.rfind("."), token.rfind(",")
    if last_dot >= 0 and last_comma >= 0:
        decimal_mark = "." if last_dot > last_comma else ","
    elif last_dot >= 0 or last_comma >= 0:
        mark = "." if last_dot >= 0 else ","
        tail = token.rpartition(mark)[2]
        decimal_mark = "" if token.count(mark) > 1 or len(tail) == 3 else mark
    else:
        decimal_mark = ""
    if decimal_mark:
        whole, _sep, fraction = token.rpartition(decimal_mark)
        digits = re.sub(r"[.,]", "", whole) + "." + fraction
    else:
        digits = re.sub(r"[.,]", "", token)
    try:
        return Decimal(digits)
    except InvalidOperation:
        return None


def normalise(text: str) -> str:
    """Whitespace that a re-render may change is not a change."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def text_diff(before: str, after: str) -> str:
    """A unified diff of two texts (lines), capped."""
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), "before", "after", n=1, lineterm=""
    )
    return "\n".join(lines)[:MAX_DIFF_CHARS]


class MonitorQuerySet(models.QuerySet["Monitor"]):
    def due(self, now: datetime) -> MonitorQuerySet:
        return self.filter(is_active=True, next_check_at__lte=now)


class Monitor(models.Model):
    """A page watched for changes, or for a price crossing a threshold."""

    class Direction(models.TextChoices):
        BELOW = "below", _("goes below")
        ABOVE = "above", _("goes above")

    name = models.CharField(_("name"), max_length=100)
    url = models.URLField(_("URL"), max_length=2000)
    selector = models.CharField(
        _("CSS selector"),
        max_length=300,
        blank=True,
        help_text=_("Watch only this part of the page; empty watches the whole page."),
    )
    interval_minutes = models.PositiveIntegerField(
        _("check every (minutes)"), default=60
    )
    is_active = models.BooleanField(_("active"), default=True)
    # Price watch: the first number of the watched text, against a threshold.
    is_price = models.BooleanField(_("price watch"), default=False)
    threshold = models.DecimalField(
        _("threshold"), max_digits=18, decimal_places=4, null=True, blank=True
    )
    direction = models.CharField(
        _("alert when the price"),
        max_length=8,
        choices=Direction.choices,
        default=Direction.BELOW,
    )
    alerts_admin_channel = models.BooleanField(
        _("also alert the admin channel"), default=False
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    next_check_at = models.DateTimeField(default=timezone.now)
    check_requested_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_changed_at = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Set when the URL or selector changes: older reads are not compared.
    baseline_at = models.DateTimeField(null=True, blank=True)

    objects = MonitorQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        indexes = [
            models.Index(
                fields=["next_check_at"],
                condition=Q(is_active=True),
                name="monitor_due_idx",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("monitors:monitor-detail", args=[self.pk])

    @property
    def status(self) -> str:
        """ok, changed (since the last day), failing, paused or new."""
        if not self.is_active:
            return "paused"
        if self.failing_since is not None:
            return "failing"
        if self.last_checked_at is None:
            return "new"
        if self.last_changed_at and timezone.now() - self.last_changed_at < timedelta(
            days=1
        ):
            return "changed"
        return "ok"

    @property
    def is_check_pending(self) -> bool:
        """'Check now' was pressed and its check has not ended (a check lost
        with its worker stops counting after the claim lease)."""
        requested = self.check_requested_at
        return requested is not None and timezone.now() - requested < CLAIM_LEASE

    @property
    def is_backing_off(self) -> bool:
        """Failing, so the next check waits longer than the interval."""
        return self.failures > 0 and self.backoff(self.failures) > timedelta(
            minutes=self.interval_minutes
        )

    # -- scheduling ---------------------------------------------------------------

    @classmethod
    def claim_due(cls, now: datetime) -> list[int]:
        """Claim every due monitor for one check; the ids claimed.

        Each claim is a conditional UPDATE on the ``next_check_at`` just read:
        of two schedulers (or a slow one and the next minute's) only one
        moves it, so only one enqueues the check. The lease is the new
        ``next_check_at``; the check sets the real one when it ends.
        """
        claimed = []
        due = cls.objects.due(now + DUE_SLACK).values_list("pk", "next_check_at")
        due = due[:500]
        for pk, next_check_at in due:
            moved = cls.objects.filter(
                pk=pk, is_active=True, next_check_at=next_check_at
            ).update(next_check_at=now + CLAIM_LEASE)
            if moved:
                claimed.append(pk)
        return claimed

    def request_check(self) -> None:
        """'Check now': the page shows it pending until the check ends."""
        Monitor.objects.filter(pk=self.pk).update(check_requested_at=timezone.now())
        self.check_requested_at = timezone.now()

    def set_active(self, active: bool) -> None:
        """Pause, or resume (checked at the next scheduler run)."""
        fields: dict[str, Any] = {"is_active": active}
        if active:
            fields["next_check_at"] = timezone.now()
        Monitor.objects.filter(pk=self.pk).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)

    def backoff(self, failures: int) -> timedelta:
        """Interval × 2^failures, capped (``MONITORS_MAX_BACKOFF_MINUTES``)."""
        cap = settings.MONITORS_MAX_BACKOFF_MINUTES
        minutes = self.interval_minutes * 2 ** min(failures, 20)
        return timedelta(minutes=min(minutes, max(cap, self.interval_minutes)))

    # -- results ------------------------------------------------------------------

    def last_good(self) -> Snapshot | None:
        good = self.snapshots.filter(error="")
        if self.baseline_at is not None:
            good = good.filter(fetched_at__gte=self.baseline_at)
        return good.order_by("-fetched_at", "-pk").first()

    def start_new_baseline(self) -> None:
        """Another page or part of it: the next read is a new baseline, not a
        change (call before saving the edited monitor)."""
        self.baseline_at = timezone.now()
        self.next_check_at = timezone.now()

    def record_text(self, text: str) -> tuple[Snapshot, Alert | None]:
        """Store a successful read; alert on a change or a threshold crossed.

        Locks the monitor's row: two checks of one monitor (a redelivered job
        beside 'Check now') compare against each other's snapshots in turn,
        never both against the same one. The first read is the baseline.
        One check raises at most one alert: a price crossing that is also a
        change of the page says both in one line.
        """
        now = timezone.now()
        text = normalise(text)[: settings.MONITORS_MAX_TEXT_CHARS]
        digest = hashlib.sha256(text.encode()).hexdigest()
        with transaction.atomic():
            monitor = Monitor.objects.select_for_update().get(pk=self.pk)
            previous = monitor.last_good()
            number = parse_price(text) if monitor.is_price else None
            changed = previous is not None and previous.text_hash != digest
            snapshot = Snapshot.objects.create(
                monitor=monitor,
                fetched_at=now,
                text=text,
                text_hash=digest,
                number=number,
                is_change=changed,
                diff=text_diff(previous.text, text) if changed and previous else "",
            )
            crossed = monitor.crossed(previous.number if previous else None, number)
            alert = None
            if crossed or changed:
                # Keyed by the check, not the kind: one bell item per check.
                alert = Alert.raise_once(
                    monitor,
                    key=f"check-{snapshot.pk}",
                    kind=Alert.Kind.PRICE if crossed else Alert.Kind.CHANGE,
                    snapshot=snapshot,
                )
            fields = {
                "last_checked_at": now,
                "failures": 0,
                "failing_since": None,
                "last_error": "",
                "check_requested_at": None,
                "next_check_at": now + timedelta(minutes=monitor.interval_minutes),
            }
            if changed:
                fields["last_changed_at"] = now
            Monitor.objects.filter(pk=monitor.pk).update(**fields)
            monitor.prune()
        self.refresh_from_db()
        return snapshot, alert

    def record_failure(self, error: str) -> tuple[Snapshot, Alert | None]:
        """Store a failed read and back off; alert once when failing for long.

        The failing alert's key is the episode's start: one alert per episode,
        however many checks fail; a success ends the episode.
        """
        now = timezone.now()
        error = (error or "unknown error")[:MAX_ERROR_CHARS]
        with transaction.atomic():
            monitor = Monitor.objects.select_for_update().get(pk=self.pk)
            failures = monitor.failures + 1
            since = monitor.failing_since or now
            snapshot = Snapshot.objects.create(
                monitor=monitor, fetched_at=now, error=error
            )
            Monitor.objects.filter(pk=monitor.pk).update(
                last_checked_at=now,
                failures=failures,
                failing_since=since,
                last_error=error,
                check_requested_at=None,
                next_check_at=now + monitor.backoff(failures),
            )
            alert = None
            limit = timedelta(hours=settings.MONITORS_FAILING_ALERT_HOURS)
            if now - since >= limit:
                alert = Alert.raise_once(
                    monitor,
                    key=f"failing-{int(since.timestamp())}",
                    kind=Alert.Kind.FAILING,
                    snapshot=snapshot,
                )
            monitor.prune()
        self.refresh_from_db()
        return snapshot, alert

    def crossed(self, before: Decimal | None, after: Decimal | None) -> bool:
        """Whether the price moved past the threshold with this read (a first
        read already past it counts: that is news too)."""
        if not self.is_price or self.threshold is None or after is None:
            return False
        return self._past(after) and (before is None or not self._past(before))

    def _past(self, value: Decimal) -> bool:
        assert self.threshold is not None
        if self.direction == Monitor.Direction.ABOVE:
            return value > self.threshold
        return value < self.threshold

    def prune(self) -> None:
        """Keep the newest ``MONITORS_KEEP_SNAPSHOTS`` snapshots; alerts keep theirs."""
        keep = settings.MONITORS_KEEP_SNAPSHOTS
        old = list(
            self.snapshots.order_by("-fetched_at", "-pk").values_list("pk", flat=True)[
                keep : keep + 500
            ]
        )
        if old:
            Snapshot.objects.filter(pk__in=old, alerts__isnull=True).delete()


class Snapshot(models.Model):
    """One check: the text read (capped) and its hash, or the error."""

    monitor = models.ForeignKey(
        Monitor, on_delete=models.CASCADE, related_name="snapshots"
    )
    fetched_at = models.DateTimeField(default=timezone.now)
    text = models.TextField(blank=True)
    text_hash = models.CharField(max_length=64, blank=True)
    number = models.DecimalField(max_digits=24, decimal_places=4, null=True, blank=True)
    error = models.TextField(blank=True)
    is_change = models.BooleanField(default=False)
    diff = models.TextField(blank=True)  # against the previous good snapshot

    class Meta:
        ordering = ["-fetched_at", "-pk"]
        indexes = [
            models.Index(fields=["monitor", "-fetched_at"], name="snapshot_recent_idx")
        ]

    def __str__(self) -> str:
        return f"{self.monitor_id} @ {self.fetched_at:%Y-%m-%d %H:%M}"

    @property
    def diff_lines(self) -> list[tuple[str, str]]:
        """(kind, line) for the page: kind is add, remove, hunk or context."""
        kinds = {"+": "add", "-": "remove", "@": "hunk"}
        return [
            (kinds.get(line[:1], "context"), line)
            for line in self.diff.splitlines()
            if not line.startswith(("+++", "---"))
        ]


class Alert(models.Model):
    """One alert, once per occasion (``key``): a redelivered job finds it made."""

    class Kind(models.TextChoices):
        CHANGE = "change", _("changed")
        PRICE = "price", _("price threshold")
        FAILING = "failing", _("failing")

    monitor = models.ForeignKey(
        Monitor, on_delete=models.CASCADE, related_name="alerts"
    )
    snapshot = models.ForeignKey(
        Snapshot,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alerts",
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    key = models.CharField(max_length=64)
    text = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["monitor", "key"], name="alert_once")
        ]

    def __str__(self) -> str:
        return self.text

    @classmethod
    def raise_once(
        cls, monitor: Monitor, *, key: str, kind: str, snapshot: Snapshot | None
    ) -> Alert | None:
        """Record the alert unless this occasion has one; the new row or None.

        Call inside the monitor's locked transaction; the alert goes out
        (notifications, admin channel) after commit.
        """
        alert, created = cls.objects.get_or_create(
            monitor=monitor,
            key=key,
            defaults={
                "kind": kind,
                "snapshot": snapshot,
                "text": describe(monitor, kind, snapshot),
            },
        )
        if not created:
            return None
        # In the alert's transaction: an alert without its notifications
        # cannot be committed, nor notifications twice (unique per key).
        Notification.send(
            list(leads_and_admins()),
            kind=Notification.Kind.MONITOR,
            key=f"monitor-{monitor.pk}-{key}",
            text=alert.text,
            link=monitor.get_absolute_url(),
        )
        transaction.on_commit(
            lambda: alert_raised.send(sender=cls, alert=alert), robust=True
        )
        return alert


def leads_and_admins() -> Any:
    """Who hears of alerts: every active lead and admin."""
    from django.contrib.auth import get_user_model

    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name=LEAD_GROUP))
        .distinct()
    )


def _amount(value: Decimal | None) -> str:
    return "?" if value is None else f"{value.normalize():,f}"


def describe(monitor: Monitor, kind: str, snapshot: Snapshot | None) -> str:
    """The alert's line, in English: it is stored once for everyone (the
    notification and the digest show it as written)."""
    if kind == Alert.Kind.CHANGE:
        return f"{monitor.name}: the page changed"[:300]
    if kind == Alert.Kind.PRICE:
        number = snapshot.number if snapshot else None
        word = "below" if monitor.direction == Monitor.Direction.BELOW else "above"
        also = " (page changed)" if snapshot and snapshot.is_change else ""
        return (
            f"{monitor.name}: price {_amount(number)} is {word} "
            f"{_amount(monitor.threshold)}{also}"
        )[:300]
    since = monitor.failing_since or timezone.now()
    error = snapshot.error if snapshot else monitor.last_error
    return f"{monitor.name}: failing since {since:%Y-%m-%d %H:%M} UTC ({error})"[:300]
