from django.contrib import admin

from operations.models import ChatCommand, CommandSender


@admin.register(CommandSender)
class CommandSenderAdmin(admin.ModelAdmin):
    list_display = ["platform", "sender_id", "note", "created_at"]
    list_filter = ["platform"]
    search_fields = ["sender_id", "note"]


@admin.register(ChatCommand)
class ChatCommandAdmin(admin.ModelAdmin):
    """Read-only: the audit is written by the commands themselves."""

    list_display = ["received_at", "platform", "sender_id", "name", "outcome"]
    list_filter = ["outcome", "platform"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
