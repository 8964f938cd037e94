"""Ops commands sent from a chat (each one a ``ChatCommand`` row: the audit),
the senders allowed to send them, and the scheduler's last runs."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from inbox.models import Platform

# Cut kept of a program's output (its tail: the end says how it went).
OUTPUT_CHARS = 3_000
CONFIRM_SECONDS = 60
# A command written longer ago than this (the inbox was down and the
# connector caught up) is refused, not run late.
STALE_AFTER = timedelta(minutes=10)
# Wrong codes before the command waiting for one is refused outright.
CONFIRM_TRIES = 3


class CommandSender(models.Model):
    """A chat account allowed to send ops commands, besides the
    ``OPS_COMMAND_SENDERS`` setting (admins add these in the Django admin)."""

    platform = models.CharField(_("platform"), max_length=20, choices=Platform.choices)
    sender_id = models.CharField(
        _("sender id"),
        max_length=255,
        help_text=_("The sender's id on that platform (a Telegram user id, say)."),
    )
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("ops command sender")
        verbose_name_plural = _("ops command senders")
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "sender_id"], name="ops_sender_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.platform}:{self.sender_id}"


class ChatCommandQuerySet(models.QuerySet["ChatCommand"]):
    def waiting_for(self, platform: str, sender_id: str) -> ChatCommandQuerySet:
        """Commands of this sender waiting for their confirmation code."""
        return self.filter(
            platform=platform,
            sender_id=sender_id,
            outcome=ChatCommand.Outcome.NEEDS_CONFIRMATION,
        )


class ChatCommand(models.Model):
    """One command an allowlisted sender typed in a chat, and what became of it.

    Recorded by the inbox's ``store()`` transaction (``operations.chat``),
    unique per session and gateway message id: a redelivered webhook or a
    connector catch-up finds the row and runs nothing again. The actor
    (``operations.tasks.run_chat_command``) claims it, runs it, records the
    result, then sends the reply.
    """

    class Outcome(models.TextChoices):
        RECEIVED = "received", _("received")
        RUNNING = "running", _("running")
        RAN = "ran", _("ran")
        REFUSED = "refused", _("refused")
        NEEDS_CONFIRMATION = "needs_confirmation", _("needs confirmation")
        CONFIRMED = "confirmed", _("confirmed")
        EXPIRED = "expired", _("expired")
        FAILED = "failed", _("failed")
        TIMED_OUT = "timed_out", _("timed out")

    platform = models.CharField(max_length=20, choices=Platform.choices)
    sender_id = models.CharField(max_length=255)
    session_key = models.CharField(max_length=255)
    gateway_message_id = models.CharField(max_length=255)
    text = models.CharField(max_length=2_000)
    name = models.CharField(max_length=40)
    # What the sender typed after the name: recorded, never passed to a program.
    args = models.JSONField(default=list, blank=True)
    outcome = models.CharField(
        max_length=20, choices=Outcome.choices, default=Outcome.RECEIVED
    )
    reason = models.CharField(max_length=300, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    output = models.TextField(blank=True)
    # The whole output's length; ``output`` keeps its last OUTPUT_CHARS.
    output_length = models.PositiveIntegerField(default=0)
    confirm_code = models.CharField(max_length=6, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    wrong_codes = models.PositiveSmallIntegerField(default=0)
    # A /confirm row: the command it confirmed (or tried to).
    confirms = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # When the sender wrote it (the chat's timestamp), if the gateway said.
    sent_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    reply_text = models.TextField(blank=True)
    replied_at = models.DateTimeField(null=True, blank=True)
    reply_error = models.CharField(max_length=500, blank=True)
    reply_attempts = models.PositiveSmallIntegerField(default=0)

    objects = ChatCommandQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session_key", "gateway_message_id"],
                name="ops_command_once_per_message",
            )
        ]
        indexes = [
            models.Index(fields=["-received_at"], name="ops_command_received"),
            models.Index(
                fields=["outcome", "-received_at"], name="ops_command_outcome"
            ),
        ]

    def __str__(self) -> str:
        return f"/{self.name} from {self.platform}:{self.sender_id} ({self.outcome})"

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def is_stale(self) -> bool:
        written = self.sent_at or self.received_at
        return self.received_at - written > STALE_AFTER

    @property
    def reply_pending(self) -> bool:
        return bool(self.reply_text) and self.replied_at is None

    def claim(self) -> bool:
        """Move a received or confirmed command to running; ``False`` if it is
        not one (done already, or another run has it).

        Locks the row: two deliveries of the job run it once.
        """
        with transaction.atomic():
            row = ChatCommand.objects.select_for_update().get(pk=self.pk)
            if row.outcome not in (self.Outcome.RECEIVED, self.Outcome.CONFIRMED):
                return False
            row.outcome = self.Outcome.RUNNING
            row.started_at = timezone.now()
            row.save(update_fields=["outcome", "started_at"])
        self.outcome, self.started_at = row.outcome, row.started_at
        return True

    def finish(self, outcome: str, reply: str, **fields: Any) -> None:
        """Record how the run ended and the reply to send. Needs the claim."""
        self.outcome = outcome
        self.reply_text = reply
        # A confirmed command answers a second time: a new reply is owed.
        self.replied_at = None
        self.reply_error = ""
        self.finished_at = timezone.now()
        for name, value in fields.items():
            setattr(self, name, value)
        self.save(
            update_fields=[
                "outcome",
                "reply_text",
                "replied_at",
                "reply_error",
                "finished_at",
                *fields.keys(),
            ]
        )

    @property
    def reply_key(self) -> str:
        """The reply's idempotency key at the gateway: one per answer (a
        dangerous command answers when asked and again when it ran), the
        same for every retry of one answer."""
        return f"ops-{self.pk}-{self.outcome}"

    def keep_output(self, output: str) -> None:
        self.output_length = len(output)
        self.output = output[-OUTPUT_CHARS:]

    def ask_for_confirmation(self) -> str:
        """Wait for a code the sender must repeat within CONFIRM_SECONDS."""
        self.confirm_code = f"{secrets.randbelow(1_000_000):06d}"
        self.expires_at = timezone.now() + timedelta(seconds=CONFIRM_SECONDS)
        return self.confirm_code

    def confirm_with(self, code: str, at: Any) -> tuple[str, ChatCommand | None]:
        """Check ``code`` (typed at ``at``) against this sender's waiting command.

        Returns a refusal reason ("" when confirmed) and the command it was
        for. A confirmed command moves to CONFIRMED: the caller enqueues its
        run in the same transaction. Locks the waiting rows.
        """
        with transaction.atomic():
            waiting = list(
                ChatCommand.objects.waiting_for(self.platform, self.sender_id)
                .select_for_update()
                .order_by("-received_at")
            )
            if not waiting:
                return "nothing is waiting for a confirmation", None
            target = next((c for c in waiting if c.confirm_code == code), None)
            if target is None:
                target = waiting[0]
                target.wrong_codes += 1
                fields = ["wrong_codes"]
                if target.wrong_codes >= CONFIRM_TRIES:
                    target.outcome = self.Outcome.REFUSED
                    target.reason = "too many wrong confirmation codes"
                    target.finished_at = timezone.now()
                    fields += ["outcome", "reason", "finished_at"]
                target.save(update_fields=fields)
                return "wrong confirmation code", target
            if target.expires_at is None or at > target.expires_at:
                target.expire()
                return "the confirmation code expired", target
            target.outcome = self.Outcome.CONFIRMED
            target.save(update_fields=["outcome"])
            return "", target

    def expire(self) -> None:
        self.outcome = self.Outcome.EXPIRED
        self.reason = "not confirmed in time"
        self.finished_at = timezone.now()
        self.save(update_fields=["outcome", "reason", "finished_at"])

    def note_reply(self, error: str = "") -> None:
        """Record a reply sent (no ``error``) or an attempt that failed."""
        self.reply_attempts += 1
        self.reply_error = error[:500]
        fields = ["reply_attempts", "reply_error"]
        if not error:
            self.replied_at = timezone.now()
            fields.append("replied_at")
        ChatCommand.objects.filter(pk=self.pk).update(
            **{name: getattr(self, name) for name in fields}
        )


class JobRun(models.Model):
    """A scheduled job's last run, recorded by ``operations.jobs.RecordJobRuns``
    after any run of an actor the scheduler starts."""

    name = models.CharField(max_length=200, unique=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    runs = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.name
