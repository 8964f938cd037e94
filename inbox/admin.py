from django.contrib import admin

from inbox.models import (
    Activity,
    AgentStatus,
    CannedResponse,
    Conversation,
    Message,
    ReadMark,
    WebhookDelivery,
)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = (
        "session_id", "platform", "customer_name", "status", "assignee",
        "message_count", "last_message_at", "is_active",
    )  # fmt: skip
    list_filter = ("platform", "status", "is_active", "assignee")
    search_fields = (
        "session_id",
        "customer_id",
        "customer_name",
        "last_message_preview",
    )
    raw_id_fields = ("assignee",)
    readonly_fields = ("created_at", "updated_at")
    date_hierarchy = "last_message_at"


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = (
        "gateway_message_id", "conversation", "direction", "kind", "sender",
        "delivery_state", "created_at",
    )  # fmt: skip
    list_filter = (
        "direction",
        "kind",
        "delivery_state",
        "author",
        "conversation__platform",
    )
    search_fields = ("gateway_message_id", "text", "sender", "conversation__session_id")
    raw_id_fields = ("conversation",)
    date_hierarchy = "created_at"


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "received_at", "event_type", "outcome", "status_code", "signature_scheme",
        "source_ip", "error",
    )  # fmt: skip
    list_filter = ("outcome", "event_type", "signature_scheme", "status_code")
    search_fields = ("webhook_id", "error", "raw_body")
    raw_id_fields = ("conversation", "message")
    date_hierarchy = "received_at"


@admin.register(Activity)
class ActivityAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "conversation", "message", "created_at")
    list_filter = ("kind",)
    search_fields = ("conversation__session_id",)
    raw_id_fields = ("conversation", "message")


@admin.register(ReadMark)
class ReadMarkAdmin(admin.ModelAdmin):
    list_display = ("user", "conversation", "inbound_seen", "seen_at")
    list_filter = ("user",)
    search_fields = ("conversation__session_id", "user__username")
    raw_id_fields = ("conversation", "user")


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    """Leads edit canned responses here (the "lead" group holds the permissions)."""

    list_display = ("shortcut", "title", "updated_at", "created_by")
    search_fields = ("shortcut", "title", "text")
    readonly_fields = ("created_by", "updated_at")

    def save_model(self, request, obj, form, change):  # noqa: ANN001, ANN201
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(AgentStatus)
class AgentStatusAdmin(admin.ModelAdmin):
    list_display = ("user", "last_seen_at", "last_assigned_at")
    readonly_fields = ("last_seen_at", "last_assigned_at")
