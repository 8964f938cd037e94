"""What every app shares in the database: the outbox of jobs not yet confirmed,
and each agent's own preferences (language, time zone)."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils.translation import gettext_lazy as _

from core import masking


class OutboxJob(models.Model):
    """A background job that must not be lost, written in the transaction
    that made it necessary (``core.outbox.enqueue``).

    Sent to Dramatiq once that transaction commits; deleted when the job has
    run (``core.outbox.ConfirmMiddleware``). A row still there at ``due_at``
    was lost on the way (the process died after the commit, the broker was
    down, the worker was killed) and the scheduler sends it again
    (``core.tasks.resend_outbox``), every ``resend_seconds``. The jobs are
    idempotent: a second run finds its work done.
    """

    actor = models.CharField(max_length=100)
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    due_at = models.DateTimeField()
    resend_seconds = models.PositiveIntegerField(default=60)
    attempts = models.PositiveSmallIntegerField(default=1)

    class Meta:
        indexes = [models.Index(fields=["due_at"], name="outbox_due")]

    def __str__(self) -> str:
        return f"{self.actor}{tuple(self.args)} (#{self.pk}, {self.attempts} sent)"


def language_choices() -> list[tuple[str, str]]:
    return list(settings.LANGUAGES)


def validate_time_zone(value: str) -> None:
    if value and value not in zoneinfo.available_timezones():
        raise ValidationError(
            _("%(zone)s is not a time zone (e.g. Asia/Seoul or Europe/London)."),
            code="invalid",
            params={"zone": value},
        )


@dataclass(frozen=True)
class Preferences:
    """What a request needs of a profile; blank fields mean the defaults."""

    language: str = ""
    time_zone: str = ""


class Profile(models.Model):
    """An agent's own settings. No row, or a blank field, means the default:
    the browser's language, the team's time zone (``TIME_ZONE``)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    language = models.CharField(
        _("language"),
        max_length=8,
        blank=True,
        choices=language_choices,
        help_text=_("Blank: your browser's language."),
    )
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        blank=True,
        validators=[validate_time_zone],
        help_text=_("Blank: the team's time zone."),
    )

    class Meta:
        verbose_name = _("profile")
        verbose_name_plural = _("profiles")

    def __str__(self) -> str:
        return f"profile of user #{self.user_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        # Read on every request (core.middleware) from the cache: forget the
        # old value now, and again once committed (a request between the two
        # may have cached the row as it was before).
        key = preferences_key(self.user_id)
        cache.delete(key)
        transaction.on_commit(lambda: cache.delete(key))

    @classmethod
    def preferences_of(cls, user_id: int) -> Preferences:
        """The user's preferences, cached: no query per request (query budgets)."""
        key = preferences_key(user_id)
        found = cache.get(key)
        if isinstance(found, tuple):
            return Preferences(*found)
        row = cls.objects.filter(user_id=user_id).values("language", "time_zone")
        prefs = Preferences(**row[0]) if row else Preferences()
        # No expiry: every change deletes it (save).
        cache.set(key, (prefs.language, prefs.time_zone), None)
        return prefs


def preferences_key(user_id: int) -> str:
    return f"core:preferences:{user_id}"


@receiver(post_delete, sender=Profile)
def forget_preferences(sender: Any, instance: Profile, **kwargs: Any) -> None:
    # Also when its user is deleted (a cascade calls no delete()): SQLite may
    # hand that user id out again.
    key = preferences_key(instance.user_id)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


@receiver(user_logged_in)
def load_preferences(sender: Any, user: Any, **kwargs: Any) -> None:
    """Read them once at login, so the pages after it need no query for them."""
    Profile.preferences_of(user.pk)


class MaskingPattern(models.Model):
    """A pattern an admin adds to what ``core.masking`` hides (RE2 syntax).

    Also the home of the ``view_personal_data`` permission: users and groups
    granted it (and superusers) see personal data as written.
    """

    name = models.CharField(_("name"), max_length=100)
    pattern = models.CharField(
        _("pattern"),
        max_length=500,
        help_text=_("RE2 syntax (no lookaround, no backreferences)."),
    )
    label = models.CharField(
        _("label"),
        max_length=32,
        default="masked",
        validators=[
            RegexValidator(
                r"^[a-z0-9_-]+$",
                _("Lowercase letters, digits, dashes and underscores only."),
            )
        ],
        help_text=_("Shown in place of the match, in brackets: [label]."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("masking pattern")
        verbose_name_plural = _("masking patterns")
        permissions = [
            ("view_personal_data", _("Can see personal data unmasked")),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        forget_masking_patterns()

    def clean(self) -> None:
        problem = masking.check_pattern(self.pattern)
        if problem:
            raise ValidationError({"pattern": problem})


def forget_masking_patterns() -> None:
    # Now, and again once committed (a request between the two may have
    # cached the rows as they were before); then cached again, since the log
    # filter reads the cache only.
    masking.forget()
    transaction.on_commit(masking.reload)


@receiver(post_delete, sender=MaskingPattern)
def masking_pattern_deleted(
    sender: Any, instance: MaskingPattern, **kwargs: Any
) -> None:
    forget_masking_patterns()
