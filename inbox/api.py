"""JSON API for staff and integrations (Django REST framework): conversations
and messages to read, and the conversation buttons to press.

DRF rather than django-ninja: its ``authtoken`` app gives per-user tokens that
admins create in the Django admin, and ``CursorPagination`` is built in;
drf-spectacular writes the OpenAPI schema from the same serializers.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils import timezone, translation
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import generics, serializers, views
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from core import masking
from core.roles import Role, role_of, staff_users
from inbox.forms import SNOOZE_LONGEST, ConversationFilterForm
from inbox.models import Conversation, Message, TransitionError, wake_at

# --- personal data ----------------------------------------------------------------
# Users without core.view_personal_data get texts, names and contact fields
# masked (core.masking). The session key stays: it is the resource's address.


class MaskedForUser:
    """Serializer mixin: ``masks()`` unless the request's user may see
    personal data (without a request in the context: masks)."""

    context: dict[str, Any]

    def masks(self) -> bool:
        request = self.context.get("request")
        user = getattr(request, "user", None)
        return not masking.may_see_personal_data(user)


def _name(value: str) -> str:
    return masking.NAME if value else ""


def _masked_info(info: Any) -> Any:
    return masking.mask_data(info, name_keys=masking.NAME_KEYS)


class ConversationSerializer(MaskedForUser, serializers.ModelSerializer):
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

    def to_representation(self, instance: Conversation) -> dict[str, Any]:
        data = super().to_representation(instance)
        if self.masks():
            data["customerName"] = _name(data["customerName"])
            data["customerId"] = masking.mask(data["customerId"])
            data["lastMessagePreview"] = masking.mask(data["lastMessagePreview"])
            data["lastError"] = masking.mask(data["lastError"])
            data["channelInfo"] = _masked_info(data["channelInfo"])
        return data


class MessageSerializer(MaskedForUser, serializers.ModelSerializer):
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

    def to_representation(self, instance: Message) -> dict[str, Any]:
        data = super().to_representation(instance)
        if self.masks():
            data["text"] = masking.mask(data["text"])
            data["attachments"] = masking.mask_data(data["attachments"])
            if instance.author == Message.Author.CUSTOMER:
                data["sender"] = _name(data["sender"])
        return data


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
# Swagger UI with its setup script as a file of its own (the CSP allows no
# inline script), the page's own styles in a static file (nor inline style).
docs_view = SpectacularSwaggerSplitView.as_view(
    url_name="inbox:api-schema", template_name="api_docs.html"
)


# --- actions: what the buttons do, for agents' tools ---------------------------------


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class ReplyInput(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=False)
    note = serializers.BooleanField(default=False)

    def validate_text(self, value: str) -> str:
        limit = settings.INBOX_MAX_REPLY_CHARS
        if not value.strip():
            raise serializers.ValidationError("is required")
        if len(value) > limit:
            raise serializers.ValidationError(f"is at most {limit} characters")
        return value


class TakeOverInput(serializers.Serializer):
    # The owner the caller saw: take it from them (unless a lead locked it).
    from_owner = serializers.CharField(required=False, allow_blank=True)


class HandBackInput(serializers.Serializer):
    to = serializers.ChoiceField(choices=["bot", "queue"], default="bot")


class AssignInput(serializers.Serializer):
    agent = serializers.CharField(help_text="the agent's username")


class SnoozeInput(serializers.Serializer):
    minutes = serializers.IntegerField(required=False, min_value=1, max_value=525_600)
    until = serializers.DateTimeField(required=False)
    until_reply = serializers.BooleanField(default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [k for k in ("minutes", "until") if k in attrs] + (
            ["until_reply"] if attrs.get("until_reply") else []
        )
        if len(given) != 1:
            raise serializers.ValidationError(
                "give one of minutes, until or until_reply"
            )
        until = attrs.get("until")
        # The page's rule and words (SnoozeForm), in English as the API answers.
        if until is not None and until <= timezone.now():
            raise serializers.ValidationError({"until": "pick a time in the future"})
        if until is not None and until > timezone.now() + SNOOZE_LONGEST:
            raise serializers.ValidationError({"until": "pick a time within a year"})
        return attrs

    @property
    def until_time(self) -> Any:
        data = self.validated_data
        return wake_at(minutes=data.get("minutes"), until=data.get("until"))


class NoInput(serializers.Serializer):
    """An action that takes nothing but its conversation."""


class TagInput(serializers.Serializer):
    tag = serializers.SlugField(max_length=40, allow_unicode=True)


ACTION_ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="the input, and why"),
    401: OpenApiResponse(description="No valid token or session"),
    403: OpenApiResponse(
        ErrorSerializer, description="another agent's conversation, or not your role"
    ),
    404: OpenApiResponse(description="No conversation has this session id"),
    409: OpenApiResponse(
        ErrorSerializer,
        description="it changed meanwhile (resolved, handed back, …)",
    ),
}
# Actions that never refuse another agent's conversation up front.
ROLE_ERRORS = {
    **ACTION_ERRORS,
    403: OpenApiResponse(ErrorSerializer, description="not your role"),
}
# Replying and taking over answer another agent's conversation as their
# buttons do: a conflict to resolve by taking it from them, not a refusal.
TAKING_ERRORS = {
    **ROLE_ERRORS,
    409: OpenApiResponse(
        ErrorSerializer,
        description='another agent has it ("already taken by …"; take-over with '
        "from_owner takes it from them unless a lead assigned it), or it changed "
        "meanwhile",
    ),
}


class ConversationAction(views.APIView):
    """One of the conversation buttons, with the same rules and row locks.

    ``input_class`` checks the body; ``act`` does it with the conversation
    locked by the model method it calls. Refusals as the pages give them:
    403 for the role, and for another agent's conversation (``check_owner``)
    unless ``taken_status`` says otherwise; 409 when it changed meanwhile
    (resolved, or taken under the row lock: "already taken by …").
    """

    input_class: type[serializers.Serializer] = NoInput
    check_owner = True
    taken_status = 403
    minimum = Role.AGENT

    def checks_owner(self, data: dict[str, Any]) -> bool:
        """Whether another agent's conversation is refused before acting."""
        return self.check_owner

    def post(self, request: Any, session_id: str) -> Response:
        if "\x00" in session_id:
            raise NotFound()
        if role_of(request.user) < self.minimum:
            return Response({"detail": "your role may not do this"}, status=403)
        conversation = get_object_or_404(
            Conversation.objects.select_related("assignee"), session_id=session_id
        )
        given = self.input_class(data=request.data)
        given.is_valid(raise_exception=True)
        # The API answers in English whatever the client's Accept-Language.
        with translation.override("en"):
            reason = self.checks_owner(given.validated_data) and conversation.why_not(
                request.user
            )
        if reason:
            return Response({"detail": reason}, status=self.taken_status)
        try:
            result = self.act(conversation, given, request.user)
        except TransitionError as exc:
            with translation.override("en"):
                return Response({"detail": str(exc)}, status=409)
        if isinstance(result, Message):
            return Response(
                MessageSerializer(result, context={"request": request}).data,
                status=201,
            )
        conversation.refresh_from_db()
        annotated = Conversation.objects.with_unread_for(request.user).select_related(
            "assignee"
        )
        return Response(
            ConversationSerializer(
                annotated.get(pk=conversation.pk), context={"request": request}
            ).data
        )

    def act(self, conversation: Conversation, given: Any, user: Any) -> Any:
        raise NotImplementedError


class ReplyAction(ConversationAction):
    # As the page's composer: a reply to another agent's conversation is a
    # 409 naming the owner (a note is anyone's); a lead's is decided by
    # take_over() under the row lock.
    taken_status = 409

    def checks_owner(self, data: dict[str, Any]) -> bool:
        return not data["note"]


def _action(
    name: str,
    input_class: type[serializers.Serializer],
    act: Any,
    *,
    summary: str,
    returns: Any = ConversationSerializer,
    status: int = 200,
    check_owner: bool = True,
    minimum: Role = Role.AGENT,
    base: type[ConversationAction] = ConversationAction,
    errors: dict[int, OpenApiResponse] = ACTION_ERRORS,
) -> Any:
    """A ConversationAction view for one button, with its OpenAPI description."""
    view = type(
        f"{name}Action",
        (base,),
        {
            "input_class": input_class,
            "check_owner": check_owner,
            "minimum": minimum,
            "act": staticmethod(act),
            "__doc__": summary,
        },
    )
    described: Any = extend_schema(
        request=input_class,
        responses={status: returns, **errors},
        summary=summary,
    )(view)
    return described.as_view()


def _take_over(conversation: Conversation, given: Any, user: Any) -> Any:
    name = given.validated_data.get("from_owner") or ""
    owner = conversation.assignee
    from_owner = (
        owner.pk if owner is not None and owner.get_username() == name else None
    )
    return conversation.take_over(user, from_owner=from_owner)


def _assign(conversation: Conversation, given: Any, user: Any) -> Any:
    agent = staff_users().filter(username=given.validated_data["agent"]).first()
    if agent is None:
        raise serializers.ValidationError({"agent": "is not an agent here"})
    return conversation.assign(user, agent)


reply_view = _action(
    "Reply",
    ReplyInput,
    lambda c, given, user: c.reply(
        user, given.validated_data["text"], note=given.validated_data["note"]
    ),
    summary="Reply to the customer (taking it over), or add an internal note",
    returns=MessageSerializer,
    status=201,
    base=ReplyAction,
    errors=TAKING_ERRORS,
)
take_over_view = _action(
    "TakeOver",
    TakeOverInput,
    _take_over,
    summary="Take the conversation over: the bot stops answering",
    check_owner=False,  # take_over decides under the row lock
    errors=TAKING_ERRORS,
)
hand_back_view = _action(
    "HandBack",
    HandBackInput,
    lambda c, given, user: c.hand_back(user, to=given.validated_data["to"]),
    summary="Hand it back to the bot, or to the escalation queue",
)
assign_view = _action(
    "Assign",
    AssignInput,
    _assign,
    summary="Assign it to an agent and lock it to them (leads and admins)",
    minimum=Role.LEAD,
    errors=ROLE_ERRORS,  # a lead may act on anyone's
)
resolve_view = _action(
    "Resolve",
    NoInput,
    lambda c, given, user: c.resolve(user),
    summary="Resolve the conversation",
)
snooze_view = _action(
    "Snooze",
    SnoozeInput,
    lambda c, given, user: c.snooze(user, given.until_time),
    summary="Snooze for minutes, until a time, or until the customer replies",
)
tag_view = _action(
    "Tag",
    TagInput,
    lambda c, given, user: c.add_tag(
        given.validated_data["tag"], by=user.get_username()
    ),
    summary="Add a tag",
    check_owner=False,
    errors=ROLE_ERRORS,
)
