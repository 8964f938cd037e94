from django.contrib import admin

from core.models import MaskingPattern


@admin.register(MaskingPattern)
class MaskingPatternAdmin(admin.ModelAdmin):
    """Patterns are checked by ``MaskingPattern.clean`` (RE2, length, not empty)."""

    list_display = ["name", "pattern", "label", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "pattern"]
