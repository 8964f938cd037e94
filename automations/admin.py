from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from automations import engine
from automations.actions import clean_action
from automations.models import (
    VERSIONED_FIELDS,
    Backtest,
    Ticket,
    Trigger,
    TriggerRun,
    TriggerVersion,
    WebhookCall,
)


class TriggerVersionInline(admin.TabularInline):
    model = TriggerVersion
    fields = ("number", "changed_fields", "changed_by", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-number",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TriggerAdminForm(forms.ModelForm):
    """The editor's checks, so the admin cannot save what the engine would skip."""

    class Meta:
        model = Trigger
        fields = [*VERSIONED_FIELDS, "webhook_secret"]

    def clean_patterns(self) -> list[str]:
        patterns = self.cleaned_data["patterns"]
        if not isinstance(patterns, list) or not patterns:
            raise ValidationError("A list of at least one RE2 pattern.")
        for pattern in patterns:
            problem = engine.check_pattern(str(pattern))
            if problem is not None:
                raise ValidationError(f"{pattern!r}: {problem.message}")
        return patterns

    def clean_actions(self) -> list[dict[str, Any]]:
        actions = self.cleaned_data["actions"]
        if not isinstance(actions, list) or not all(
            isinstance(a, dict) for a in actions
        ):
            raise ValidationError("A list of actions, each an object with a type.")
        return [clean_action(dict(action)) for action in actions]


@admin.register(Trigger)
class TriggerAdmin(admin.ModelAdmin):
    form = TriggerAdminForm
    list_display = (
        "name", "priority", "is_enabled", "is_builtin", "match_mode", "version",
        "updated_by", "updated_at",
    )  # fmt: skip
    list_filter = ("is_enabled", "is_builtin", "match_mode")
    search_fields = ("name", "description")
    readonly_fields = (
        "is_builtin", "version", "created_by", "updated_by", "created_at", "updated_at",
    )  # fmt: skip
    inlines = [TriggerVersionInline]

    def save_model(
        self, request: HttpRequest, obj: Trigger, form: Any, change: bool
    ) -> None:
        # Through the same door as the editor, so an admin edit is a version too;
        # a change to an unversioned field (the secret) is saved plainly.
        if obj.save_version(request.user) is None:
            obj.save()


@admin.register(TriggerRun)
class TriggerRunAdmin(admin.ModelAdmin):
    list_display = (
        "created_at", "trigger", "trigger_version", "conversation", "matched_pattern",
        "duration_ms", "error",
    )  # fmt: skip
    list_filter = ("trigger",)
    search_fields = ("matched_pattern", "error")
    raw_id_fields = ("trigger", "message", "conversation")
    date_hierarchy = "created_at"


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = (
        "subject",
        "status",
        "priority",
        "conversation",
        "trigger",
        "created_at",
    )
    list_filter = ("status", "priority", "trigger")
    search_fields = ("subject", "body")
    raw_id_fields = ("conversation", "trigger")
    date_hierarchy = "created_at"


@admin.register(WebhookCall)
class WebhookCallAdmin(admin.ModelAdmin):
    list_display = (
        "created_at", "trigger", "url", "state", "attempts", "response_status",
        "finished_at",
    )  # fmt: skip
    list_filter = ("state", "trigger")
    search_fields = ("url", "webhook_id", "error")
    raw_id_fields = ("trigger", "run")
    readonly_fields = ("webhook_id", "body", "created_at", "finished_at")
    date_hierarchy = "created_at"


@admin.register(Backtest)
class BacktestAdmin(admin.ModelAdmin):
    list_display = (
        "created_at", "created_by", "state", "n", "total", "processed", "matched",
        "finished_at",
    )  # fmt: skip
    list_filter = ("state",)
    readonly_fields = (
        "draft", "n", "up_to_message_id", "total", "processed", "matched", "samples",
        "state", "error", "created_by", "created_at", "finished_at",
    )  # fmt: skip
    date_hierarchy = "created_at"
