"""The daily rollup behind the reports page, and the morning digest.

Reports read these rows, never the message tables: a day is recomputed from
the inbox's rows and upserted (``reports.rollup.store_day``), so running it
twice, or from two schedulers, gives the same rows. Percentiles cannot be
summed, so each time metric keeps a histogram of fixed buckets per day; a
range sums the buckets and reads its median and p90 from the sum.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def _edges() -> tuple[int, ...]:
    """Upper edges (seconds) of the time histograms' buckets; the last bucket
    is open. One second apart up to 10 s, then at most 10 % apart (log-spaced)
    up to a week: a percentile read from them, interpolated inside its bucket,
    is within 10 % of the true value. Changing them needs a recompute of every
    day (``manage.py rollup_reports`` or the page's Recompute button)."""
    edges = list(range(1, 11))
    while edges[-1] < 604800:
        edges.append(max(edges[-1] + 1, int(edges[-1] * 1.1)))
    return tuple(edges)


BUCKET_EDGES: tuple[int, ...] = _edges()
# Up to this many durations a day and platform (or agent) are also kept
# exactly: a range whose rows all have theirs reads exact percentiles.
EXACT_SAMPLES = 200
BUCKETS = len(BUCKET_EDGES) + 1


def empty_buckets() -> list[int]:
    return [0] * BUCKETS


class RollupDay(models.Model):
    """One local day the rollup has computed, and when: the page's freshness
    (a day without messages has no ``DailyStat`` rows but is still done)."""

    day = models.DateField(unique=True)
    computed_at = models.DateTimeField(default=timezone.now)
    # What the day took to compute (the management command prints it).
    duration_ms = models.FloatField(default=0)

    def __str__(self) -> str:
        return f"{self.day} at {self.computed_at:%H:%M}"


class DailyStat(models.Model):
    """One local day × one platform. Definitions: README, "Reports"."""

    day = models.DateField()
    platform = models.CharField(max_length=16)
    conversations_opened = models.PositiveIntegerField(default=0)
    messages_in = models.PositiveIntegerField(default=0)
    messages_out = models.PositiveIntegerField(default=0)
    # Conversations answered that day: by the bot (and automations) alone, or
    # with at least one agent reply.
    answered_bot = models.PositiveIntegerField(default=0)
    answered_human = models.PositiveIntegerField(default=0)
    # Escalated or with a human (before the day's end), and no agent reply
    # that day: neither bot alone nor answered by a human.
    waiting_human = models.PositiveIntegerField(default=0)
    escalations = models.PositiveIntegerField(default=0)
    sla_breaches = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)
    # Escalated, owned by a human or snoozed when the day ended.
    unresolved_at_close = models.PositiveIntegerField(default=0)
    # {reason: count}
    escalation_reasons = models.JSONField(default=dict, blank=True)
    # Histograms over BUCKET_EDGES (seconds).
    first_response = models.JSONField(default=empty_buckets)
    resolution = models.JSONField(default=empty_buckets)
    queue_wait = models.JSONField(default=empty_buckets)
    # {histogram name: [seconds, ...]} when the day had at most EXACT_SAMPLES
    # of it; a name missing means "too many: only the histogram".
    exact = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "platform"], name="dailystat_once_per_day_platform"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.platform}"


class AgentDailyStat(models.Model):
    """One local day × one agent: replies sent, conversations replied to, and
    the wait from an escalation to this agent's first reply after it."""

    day = models.DateField()
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    replies = models.PositiveIntegerField(default=0)
    conversations = models.PositiveIntegerField(default=0)
    first_response = models.JSONField(default=empty_buckets)
    # As DailyStat.exact: {"first_response": [seconds, ...]} when few.
    exact = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "agent"], name="agentdailystat_once_per_day_agent"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.agent_id}"


class TriggerDailyStat(models.Model):
    """One local day × one trigger: how many messages it matched."""

    day = models.DateField()
    trigger = models.ForeignKey(
        "automations.Trigger", on_delete=models.CASCADE, related_name="+"
    )
    matches = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "trigger"], name="triggerdailystat_once_per_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.trigger_id}"


class Delivery(models.TextChoices):
    PENDING = "pending", _("pending")
    SENDING = "sending", _("sending")
    RETRYING = "retrying", _("retrying")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")
    SKIPPED = "skipped", _("not configured")


class Digest(models.Model):
    """The summary of one local day, sent to the admin channel and by email.

    The scheduled one is unique per day (a partial constraint): two schedulers,
    or a job delivered twice, write one row and the first wins. "Send now"
    writes a manual copy beside it. Each channel claims its send with a
    conditional UPDATE (``claim``), so of two workers one sends.
    """

    day = models.DateField()
    is_manual = models.BooleanField(default=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    body = models.TextField()
    email_state = models.CharField(
        max_length=10, choices=Delivery.choices, default=Delivery.PENDING
    )
    email_attempts = models.PositiveSmallIntegerField(default=0)
    email_error = models.TextField(blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    gateway_state = models.CharField(
        max_length=10, choices=Delivery.choices, default=Delivery.PENDING
    )
    gateway_attempts = models.PositiveSmallIntegerField(default=0)
    gateway_error = models.TextField(blank=True)
    gateway_sent_at = models.DateTimeField(null=True, blank=True)
    # When a send was last claimed (either channel).
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day"],
                condition=Q(is_manual=False),
                name="digest_once_per_day",
            )
        ]
        ordering = ["-day", "-created_at"]

    def __str__(self) -> str:
        return f"digest {self.day}{' (manual)' if self.is_manual else ''}"

    @property
    def idempotency_key(self) -> str:
        """The gateway's key: the day's digest is one send however often it is
        tried (a crash after the gateway took it, before we wrote "sent")."""
        suffix = f"-manual-{self.pk}" if self.is_manual else ""
        return f"inbox-digest-{self.day.isoformat()}{suffix}"

    def claim(
        self,
        channel: str,
        *,
        states: tuple[str, ...],
        stale_after: timedelta | None = None,
    ) -> bool:
        """Move ``channel`` ("email" or "gateway") from one of ``states`` to
        sending, counting the attempt; False when another worker has it or it
        is done. A conditional UPDATE: no lock is held during the send.
        ``stale_after``: a send claimed that long ago (its worker died) may be
        claimed again."""
        field = f"{channel}_state"
        now = timezone.now()
        free = Q(**{f"{field}__in": states})
        if stale_after is not None:
            free |= Q(**{field: Delivery.SENDING, "claimed_at__lt": now - stale_after})
        claimed = Digest.objects.filter(free, pk=self.pk).update(
            **{
                field: Delivery.SENDING,
                f"{channel}_attempts": F(f"{channel}_attempts") + 1,
                "claimed_at": now,
            }
        )
        if claimed:
            self.refresh_from_db()
        return bool(claimed)

    def finish(self, channel: str, state: str, error: str = "") -> None:
        """Record how a claimed send ended."""
        fields: dict[str, Any] = {
            f"{channel}_state": state,
            f"{channel}_error": error[:2000],
        }
        if state == Delivery.SENT:
            fields[f"{channel}_sent_at"] = timezone.now()
        Digest.objects.filter(pk=self.pk).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)
