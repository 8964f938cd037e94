"""Read-only JSON API for staff and integrations (Django REST framework).

DRF rather than django-ninja: its ``authtoken`` app gives per-user tokens that
admins create in the Django admin, and ``CursorPagination`` is built in;
drf-spectacular writes the OpenAPI schema from the same serializers.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
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
    assignee = serializers.CharField(
        source="assignee.get_username", default=None, allow_null=True
    )
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
    tokensUsed = serializers.IntegerField(source="tokens_used", allow_null=True)
    processingTimeMs = serializers.IntegerField(
        source="processing_time_ms", allow_null=True
    )
    deliveryState = serializers.CharField(source="delivery_state")
    deliveredAt = serializers.DateTimeField(source="delivered_at", allow_null=True)
    sentAt = serializers.DateTimeField(source="sent_at", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Message
        fields = [
            "id", "messageId", "direction", "kind", "author", "sender", "text",
            "attachments", "aiModel", "tokensUsed", "processingTimeMs", "deliveryState",
            "deliveredAt", "sentAt", "createdAt",
        ]  # fmt: skip


class StrictCursor(CursorPagination):
    """A cursor that does not decode, or decodes but points nowhere real (a
    tampered date, say), is a 400 naming it: not DRF's 404, nor a 500 from
    the query it would make."""

    def decode_cursor(self, request: Any) -> Any:
        # DRF answers an undecodable cursor 404; it is a bad parameter.
        try:
            return super().decode_cursor(request)
        except NotFound as exc:
            raise ParseError({"cursor": "is not a cursor this API gave out"}) from exc

    def get_page_size(self, request: Any) -> int | None:
        """``limit``: a whole number, 1 or more (above the most, the most).

        DRF would quietly use the default for ``limit=abc``; a caller who
        asked for something else is told."""
        values = request.query_params.getlist(self.page_size_query_param or "")
        if not values:
            return self.page_size
        if len(values) > 1 or not values[0].isdecimal() or int(values[0]) < 1:
            raise ParseError({"limit": "must be one whole number, 1 or more"})
        return min(int(values[0]), self.max_page_size or int(values[0]))

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters

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


ERRORS = {
    400: OpenApiResponse(
        description="A parameter is wrong: the body names it, as "
        '{"cursor": "is not a cursor this API gave out"}'
    ),
    401: OpenApiResponse(description="No valid token or session"),
    403: OpenApiResponse(description="The user has no agent role"),
}


@extend_schema(
    parameters=FILTER_PARAMS,
    responses={200: ConversationSerializer(many=True), **ERRORS},
)
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


@extend_schema(
    responses={
        200: MessageSerializer(many=True),
        **ERRORS,
        404: OpenApiResponse(description="No conversation has this session id"),
    }
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
