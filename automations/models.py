"""Triggers (keyword patterns → actions), their versions, runs, tickets and calls."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core import outbox
from inbox.models import Conversation, Message, Platform

# Fields a version snapshot keeps, in the order the diff view shows them.
VERSIONED_FIELDS = [
    "name", "description", "is_enabled", "platforms", "patterns", "match_mode",
    "case_sensitive", "states", "priority", "stop_after_match", "run_once",
    "cooldown_seconds", "actions",
]  # fmt: skip


def new_webhook_secret() -> str:
    # Standard Webhooks secrets are base64 with a whsec_ prefix.
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class VersionConflict(Exception):
    """Someone saved the trigger after the editor was opened."""

    def __init__(self, current: Trigger) -> None:
        self.current = current
        who = (
            current.updated_by.get_username()
            if current.updated_by
            else gettext("someone")
        )
        super().__init__(
            gettext("%(who)s saved version %(number)d after you opened this trigger.")
            % {"who": who, "number": current.version}
        )


def default_states() -> list[str]:
    # Not while a human owns the conversation: the agent speaks for us then.
    return [Conversation.Status.BOT, Conversation.Status.ESCALATED]


class TriggerQuerySet(models.QuerySet["Trigger"]):
    def enabled(self) -> TriggerQuerySet:
        return self.filter(is_enabled=True)

    def in_order(self) -> TriggerQuerySet:
        return self.order_by("priority", "pk")


# What each kind of action is called (automations.actions defines what they do).
ACTION_LABELS = {
    "reply": _("Reply"),
    "escalate": _("Escalate to a human"),
    "create_ticket": _("Create ticket"),
    "call_webhook": _("Call webhook"),
    "run_task": _("Run a task"),
}
# What the history calls each versioned field.
FIELD_LABELS = {
    "name": _("name"),
    "description": _("description"),
    "is_enabled": _("is enabled"),
    "platforms": _("platforms"),
    "patterns": _("patterns"),
    "match_mode": _("match mode"),
    "case_sensitive": _("case sensitive"),
    "states": _("states"),
    "priority": _("priority"),
    "stop_after_match": _("stop after match"),
    "run_once": _("run once"),
    "cooldown_seconds": _("cooldown seconds"),
    "actions": _("actions"),
}


class Trigger(models.Model):
    class MatchMode(models.TextChoices):
        ANY = "any", _("Any pattern matches")
        ALL = "all", _("All patterns match")

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    is_enabled = models.BooleanField(default=True)
    is_builtin = models.BooleanField(default=False, editable=False)
    # Empty means every platform.
    platforms = models.JSONField(default=list, blank=True)
    # RE2 syntax; validated by automations.engine.check_pattern.
    patterns = models.JSONField(default=list)
    match_mode = models.CharField(
        max_length=3, choices=MatchMode.choices, default=MatchMode.ANY
    )
    case_sensitive = models.BooleanField(default=False)
    # Conversation states the trigger acts in.
    states = models.JSONField(default=default_states, blank=True)
    # Lower runs first.
    priority = models.IntegerField(default=100, db_index=True)
    stop_after_match = models.BooleanField(default=False)
    run_once = models.BooleanField(
        default=False, help_text=_("At most once per conversation")
    )
    cooldown_seconds = models.PositiveIntegerField(
        default=0, help_text=_("Quiet time per conversation after it fires")
    )
    # [{"type": "reply", "text": ...}, {"type": "create_ticket", ...}, ...];
    # the shapes are in automations.actions.ACTION_TYPES.
    actions = models.JSONField(default=list)
    webhook_secret = models.CharField(max_length=80, default=new_webhook_secret)
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TriggerQuerySet.as_manager()

    class Meta:
        ordering = ["priority", "pk"]

    def __str__(self) -> str:
        return self.name

    def snapshot(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in VERSIONED_FIELDS}

    def applies_to_platform(self, platform: str) -> bool:
        return not self.platforms or platform in self.platforms

    def save_version(
        self, user: Any, *, expected_version: int | None = None
    ) -> TriggerVersion | None:
        """Save the trigger as its next version; ``None`` if no versioned field changed.

        Locks the trigger's row, so two leads saving at once get consecutive
        numbers; ``expected_version`` (the version the editor showed) turns a
        save over someone else's newer one into ``VersionConflict``.
        """
        with transaction.atomic():
            if self.pk is None:
                self.version = 1
                self.created_by = self.updated_by = user
                self.save()
                return TriggerVersion.objects.create(
                    trigger=self,
                    number=1,
                    snapshot=self.snapshot(),
                    changed_fields=["created"],
                    changed_by=user,
                )
            current = (
                # Only the trigger's row: PostgreSQL refuses FOR UPDATE on the
                # nullable side of the join to its editor.
                Trigger.objects.select_for_update(of=("self",))
                .select_related("updated_by")
                .get(pk=self.pk)
            )
            if expected_version is not None and current.version != expected_version:
                raise VersionConflict(current)
            last = current.versions.order_by("-number").first()
            if last is None:
                # Made outside the editor (a migration, a test): record the
                # state before this save, so the first diff has a "before".
                last = TriggerVersion.objects.create(
                    trigger=current,
                    number=current.version,
                    snapshot=current.snapshot(),
                    changed_fields=["created"],
                    changed_by=current.created_by,
                    created_at=current.created_at,
                )
            after = self.snapshot()
            changed = [f for f in VERSIONED_FIELDS if last.snapshot.get(f) != after[f]]
            if not changed:
                return None
            self.version = max(current.version, last.number) + 1
            self.updated_by = user
            self.save()
            return TriggerVersion.objects.create(
                trigger=self,
                number=self.version,
                snapshot=after,
                changed_fields=changed,
                changed_by=user,
            )

    def set_enabled(self, enabled: bool, user: Any) -> TriggerVersion | None:
        self.is_enabled = enabled
        return self.save_version(user)

    def revert_to(self, version: TriggerVersion, user: Any) -> TriggerVersion | None:
        """A new version equal to ``version``'s snapshot; history is never rewritten."""
        for name in VERSIONED_FIELDS:
            if name in version.snapshot:
                setattr(self, name, version.snapshot[name])
        return self.save_version(user)

    def move(self, step: int, user: Any) -> bool:
        """Swap places with the neighbour ``step`` away in run order (-1 is up).

        Locks every trigger: two leads reordering at once must not interleave.
        Swapping two priorities is enough unless they tie (or a third trigger
        shares one); then all are numbered ten apart in the wanted order. Each
        trigger whose priority changed gets a version.
        """
        with transaction.atomic():
            triggers = list(
                Trigger.objects.select_for_update().order_by("priority", "pk")
            )
            index = next((i for i, t in enumerate(triggers) if t.pk == self.pk), None)
            if index is None or not 0 <= index + step < len(triggers):
                return False
            before = {t.pk: t.priority for t in triggers}
            wanted = triggers[:]
            wanted[index], wanted[index + step] = wanted[index + step], wanted[index]
            mine, other = triggers[index], triggers[index + step]
            mine.priority, other.priority = other.priority, mine.priority
            if sorted(triggers, key=lambda t: (t.priority, t.pk)) != wanted:
                for position, trigger in enumerate(wanted, start=1):
                    trigger.priority = position * 10
            for trigger in wanted:
                if trigger.priority != before[trigger.pk]:
                    trigger.save_version(user)
            self.priority = mine.priority
            self.version = mine.version
        return True

    @property
    def platform_labels(self) -> list[str]:
        labels = dict(Platform.choices)
        return [str(labels.get(p, p)) for p in self.platforms] or [
            gettext("All platforms")
        ]

    @property
    def action_labels(self) -> list[str]:
        labels = []
        for action in self.actions:
            kind = action.get("type")
            if kind == "run_task" and action.get("task") == "tag_conversation":
                tag = (action.get("args") or {}).get("tag", "?")
                labels.append(gettext("Tag “%(tag)s”") % {"tag": tag})
            elif kind == "run_task":
                task = action.get("task", "?")
                labels.append(gettext("Task %(task)s") % {"task": task})
            else:
                labels.append(str(ACTION_LABELS.get(kind, "?")))
        return labels


class TriggerVersion(models.Model):
    """A trigger as saved at one moment: who, when, what changed."""

    trigger = models.ForeignKey(
        Trigger, on_delete=models.CASCADE, related_name="versions"
    )
    number = models.PositiveIntegerField()
    snapshot = models.JSONField()
    changed_fields = models.JSONField(default=list)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["trigger", "number"], name="trigger_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.trigger} v{self.number}"

    @property
    def changed_labels(self) -> list[str]:
        return [
            str(FIELD_LABELS.get(name, name.replace("_", " ")))
            for name in self.changed_fields
        ]


class TriggerRun(models.Model):
    """One trigger acting on one message: what matched and what each action did.

    Unique per (trigger, message): the row is written before the actions run,
    so a message Dramatiq delivers twice is acted on once.
    """

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="runs")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="+"
    )
    trigger_version = models.PositiveIntegerField()
    matched_pattern = models.TextField(blank=True)
    span_start = models.PositiveIntegerField(null=True, blank=True)
    span_end = models.PositiveIntegerField(null=True, blank=True)
    results = models.JSONField(default=list)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["trigger", "message"], name="trigger_run_once_per_message"
            )
        ]
        indexes = [
            models.Index(
                fields=["conversation", "trigger", "-created_at"],
                name="run_conv_trigger_idx",
            ),
            models.Index(fields=["trigger", "-created_at"], name="run_trigger_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.trigger} on {self.message_id}"


class Ticket(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        PENDING = "pending", _("Pending")
        CLOSED = "closed", _("Closed")

    class Priority(models.TextChoices):
        LOW = "low", _("Low")
        NORMAL = "normal", _("Normal")
        HIGH = "high", _("High")
        URGENT = "urgent", _("Urgent")

    subject = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="tickets"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    priority = models.CharField(
        max_length=8, choices=Priority.choices, default=Priority.NORMAL
    )
    trigger = models.ForeignKey(
        Trigger, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "-created_at"], name="ticket_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"

    def close(self, user: Any) -> bool:
        """Close the ticket (False if it already was) and say so in the timeline."""
        with transaction.atomic():
            row = Ticket.objects.select_for_update().get(pk=self.pk)
            self.status = row.status
            if row.status == Ticket.Status.CLOSED:
                return False
            row.status = self.status = Ticket.Status.CLOSED
            row.save(update_fields=["status", "updated_at"])
            self.updated_at = row.updated_at
            who = user.get_username() if user is not None else "someone"
            self.conversation.record_event(
                f"Ticket #{self.pk} closed by {who}", ticket=self.pk
            )
        return True


class WebhookCall(models.Model):
    """The delivery log of a trigger's "call webhook" action."""

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        RETRYING = "retrying", _("Retrying")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    trigger = models.ForeignKey(
        Trigger, on_delete=models.CASCADE, related_name="webhook_calls"
    )
    run = models.ForeignKey(
        TriggerRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    url = models.URLField(max_length=500)
    webhook_id = models.CharField(max_length=64, unique=True)
    body = models.TextField()
    state = models.CharField(
        max_length=10, choices=State.choices, default=State.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.url} {self.state}"


BACKTEST_BATCH = 1_000
BACKTEST_SAMPLES = 10
SAMPLE_CHARS = 280


class Backtest(models.Model):
    """A draft trigger run over stored customer messages, newest first.

    The draft (the editor's unsaved patterns, mode and platforms) is copied
    here, so the job needs nothing from the editor. Conversation states,
    cooldowns and run-once are not replayed: only what the text would match.
    """

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    MAX_MESSAGES = 100_000

    draft = models.JSONField()
    n = models.PositiveIntegerField(default=1_000)
    # The newest message when it was asked for: a rerun scans the same ones.
    up_to_message_id = models.PositiveBigIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    matched = models.PositiveIntegerField(default=0)
    samples = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"backtest #{self.pk} of {self.draft.get('name') or 'a draft'}"

    @classmethod
    def start(cls, *, draft: dict[str, Any], n: int, user: Any) -> Backtest:
        newest = Message.objects.order_by("-pk").values_list("pk", flat=True).first()
        with transaction.atomic():
            backtest = cls.objects.create(
                draft=draft, n=n, up_to_message_id=newest or 0, created_by=user
            )
            # Resent only long after its time limit: a slow run gets no twin.
            outbox.enqueue("run_backtest", backtest.pk, resend_after=900)
        return backtest

    @property
    def is_finished(self) -> bool:
        return self.state in (self.State.DONE, self.State.FAILED)

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        return self.processed * 100 // self.total if self.total else 0

    def messages(self) -> models.QuerySet[Message]:
        """The customer messages to try the draft on (as ``engine.may_trigger``)."""
        messages = Message.objects.filter(
            pk__lte=self.up_to_message_id,
            direction=Message.Direction.INBOUND,
            author=Message.Author.CUSTOMER,
            kind__in=[Message.Kind.TEXT, Message.Kind.MEDIA],
        ).exclude(text="")
        if platforms := self.draft.get("platforms"):
            messages = messages.filter(conversation__platform__in=platforms)
        return messages.order_by("-pk")

    def fail(self, reason: str) -> None:
        Backtest.objects.filter(pk=self.pk).update(
            state=self.State.FAILED, error=reason[:2000], finished_at=timezone.now()
        )


def excerpt(text: str, spans: list[tuple[int, int]]) -> dict[str, Any]:
    """At most ``SAMPLE_CHARS`` of ``text`` around its first match, spans moved."""
    start = 0
    if spans and spans[0][1] > SAMPLE_CHARS:
        start = max(0, spans[0][0] - SAMPLE_CHARS // 4)
    end = min(len(text), start + SAMPLE_CHARS)
    return {
        "text": text[start:end],
        "spans": [
            [max(s, start) - start, min(e, end) - start]
            for s, e in spans
            if s < end and e > start
        ],
        "cut_before": start > 0,
        "cut_after": end < len(text),
    }
