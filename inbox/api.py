"""Read-only JSON API for staff and integrations (Django REST framework).

DRF rather than django-ninja: its ``authtoken`` app gives per-user tokens that
admins create in the Django admin, and ``CursorPagination`` is built in;
drf-spectacular writes the OpenAPI schema from the same serializers.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import generics, serializers
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.pagination import CursorPagination

from inbox.forms import ConversationFilterForm
from inbox.models import Conversation, Message


class ConversationSerializer(serializers.ModelSerializer):
    sessionId = serializers.CharField(source="session_id")
    customerId = serializers.CharField(source="customer_id")
    customerName = serializers.CharField(source="customer_name")
    assignee = serializers.CharField(source="assignee.get_username", default=None)
    messageCount = serializers.IntegerField(source="message_count")
    unreadCount = serializers.IntegerField(source="unread")
    lastMessageAt = serializers.DateTimeField(source="last_message_at")
    lastMessagePreview = serializers.CharField(source="last_message_preview")
    isActive = serializers.BooleanField(source="is_active")
    lastError = serializers.CharField(source="last_error")
    channelInfo = serializers.JSONField(source="metadata")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Conversation
        fields = [
            "id", "sessionId", "platform", "customerId", "customerName", "status",
            "assignee", "messageCount", "unreadCount", "lastMessageAt",
            "lastMessagePreview", "isActive", "lastError", "channelInfo", "createdAt",
        ]  # fmt: skip


class MessageSerializer(serializers.ModelSerializer):
    messageId = serializers.CharField(source="gateway_message_id")
    aiModel = serializers.CharField(source="ai_model")
    tokensUsed = serializers.IntegerField(source="tokens_used")
    processingTimeMs = serializers.IntegerField(source="processing_time_ms")
    deliveryState = serializers.CharField(source="delivery_state")
    deliveredAt = serializers.DateTimeField(source="delivered_at")
    sentAt = serializers.DateTimeField(source="sent_at")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Message
        fields = [
            "id", "messageId", "direction", "kind", "author", "sender", "text",
            "attachments", "aiModel", "tokensUsed", "processingTimeMs", "deliveryState",
            "deliveredAt", "sentAt", "createdAt",
        ]  # fmt: skip


class StrictCursor(CursorPagination):
    """A cursor that decodes but points nowhere real (a tampered date, say) is
    a 400 naming it, not a 500 from the query it would make."""

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValueError, TypeError, OverflowError, DjangoValidationError) as exc:
            raise ParseError({"cursor": "is not a cursor this API gave out"}) from exc


class ActivityCursor(StrictCursor):
    ordering = ("-last_message_at", "-id")
    page_size = 50
    max_page_size = 200
    page_size_query_param = "limit"


class ThreadCursor(StrictCursor):
    ordering = ("id",)
    page_size = 100
    max_page_size = 500
    page_size_query_param = "limit"


FILTER_PARAMS = [
    OpenApiParameter("platform", str, description="telegram, whatsapp, …"),
    OpenApiParameter("status", str, description="open, escalated, human, resolved"),
    OpenApiParameter("owner", str, description="mine or unassigned"),
    OpenApiParameter("q", str, description="search customer and message text"),
]


@extend_schema(parameters=FILTER_PARAMS)
class ConversationList(generics.ListAPIView):
    """Conversations, newest activity first, with the inbox's filters."""

    serializer_class = ConversationSerializer
    pagination_class = ActivityCursor

    def get_queryset(self) -> Any:
        return (
            Conversation.objects.filtered(
                user=self.request.user,
                **ConversationFilterForm(self.request.GET).filters,
            )
            .with_unread_for(self.request.user)
            .select_related("assignee")
        )


class MessageList(generics.ListAPIView):
    """One conversation's messages, oldest first; ``text`` is raw, JSON-escaped only."""

    serializer_class = MessageSerializer
    pagination_class = ThreadCursor

    def get_queryset(self) -> Any:
        session_id = self.kwargs["session_id"]
        if "\x00" in session_id:  # no key holds one; PostgreSQL would refuse it
            raise NotFound()
        conversation = get_object_or_404(Conversation, session_id=session_id)
        return conversation.messages.all()


schema_view = SpectacularAPIView.as_view()
