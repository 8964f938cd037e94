"""The rollup and the digests, read-only in the admin: the rollup is
recomputed (``manage.py rollup_reports``), never edited by hand, and a
digest's states are the senders' to write."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from reports.models import DailyStat, Digest, RollupDay


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Digest)
class DigestAdmin(ReadOnly):
    list_display = (
        "day",
        "is_manual",
        "gateway_state",
        "gateway_attempts",
        "email_state",
        "created_at",
    )
    list_filter = ("is_manual", "gateway_state", "email_state")
    date_hierarchy = "day"


@admin.register(DailyStat)
class DailyStatAdmin(ReadOnly):
    list_display = (
        "day",
        "platform",
        "conversations_opened",
        "messages_in",
        "messages_out",
        "escalations",
        "sla_breaches",
        "computed_at",
    )
    list_filter = ("platform",)
    date_hierarchy = "day"


@admin.register(RollupDay)
class RollupDayAdmin(ReadOnly):
    list_display = ("day", "computed_at", "duration_ms")
    date_hierarchy = "day"
