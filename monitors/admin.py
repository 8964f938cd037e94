from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from monitors.forms import MonitorForm
from monitors.models import Alert, Monitor, Snapshot


@admin.register(Monitor)
class MonitorAdmin(admin.ModelAdmin):
    # The page's form: the same SSRF and selector checks.
    form = MonitorForm
    list_display = ("name", "url", "is_active", "last_checked_at", "failing_since")
    list_filter = ("is_active", "is_price")
    search_fields = ("name", "url")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by checks only."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    list_display = ("monitor", "fetched_at", "is_change", "number", "error")
    list_filter = ("is_change",)
    search_fields = ("monitor__name", "error")


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("monitor", "kind", "text", "created_at")
    list_filter = ("kind",)
    search_fields = ("monitor__name", "text")
