"""The webhook payload's ``data``, declared: one DRF serializer per event type.

``webhooks.validate`` picks the serializer for the event, and ``first_error``
turns DRF's nested error dict into the one ``(field, reason)`` the answer
names (``data.attachments[0].url``: "must be an http(s) URL"). The contract
is in docs/webhook-contract.md; the fields below are its table.

The fields are strict where DRF's own are lenient: a boolean is ``true`` or
``false`` (not "yes"), text is a string (not a number turned into one), and
an id may be a string or a whole number (gateways send both).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from rest_framework import serializers

# "ended" and "reset" are about the session; "delivered" and "failed" are the
# gateway's receipts for a reply sent from the inbox.
STATUSES = ("ended", "reset", "delivered", "failed")
MAX_ID_CHARS = 255
MAX_ATTACHMENTS = 20
MAX_URL_CHARS = 2048


def _kind(value: Any) -> str:
    return type(value).__name__


class Id(serializers.Field):
    """A string (or whole number) id, at most ``limit`` characters; "" is missing."""

    default_error_messages = {
        "required": "is required",
        "type": "must be a string, got {kind}",
        "long": "is longer than {limit} characters",
    }

    def __init__(self, *, limit: int = MAX_ID_CHARS, required: bool = False) -> None:
        self.limit = limit
        if required:
            super().__init__(required=True, allow_null=True)
        else:
            super().__init__(required=False, default="", allow_null=True)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data in (None, ""):
            if self.required:
                self.fail("required")
            return True, ""
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool) or not isinstance(data, (str, int)):
            self.fail("type", kind=_kind(data))
        value = str(data)
        if len(value) > self.limit:
            self.fail("long", limit=self.limit)
        return value


class Text(serializers.Field):
    """Message text exactly as sent (no trimming); ``null`` is empty."""

    default_error_messages = {"type": "must be a string, got {kind}"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_null=True, default="", **kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is None:
            return True, ""
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("type", kind=_kind(data))
        return data


class Count(serializers.Field):
    """A non-negative number (tokens, milliseconds), kept whole."""

    default_error_messages = {"invalid": "must be a non-negative number"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_null=True, default=None, **kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, (int, float)) or data < 0:
            self.fail("invalid")
        try:
            return int(data)
        except (OverflowError, ValueError):
            self.fail("invalid")
            raise  # unreachable: fail() raises


class Flag(serializers.Field):
    """``true`` or ``false``, nothing DRF would read as one."""

    default_error_messages = {"invalid": "must be true or false"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, default=False, **kwargs)

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class WebUrl(serializers.Field):
    """An http(s) URL: shown as a link, never fetched by us."""

    default_error_messages = {
        "required": "must be a non-empty string",
        "invalid": "must be a non-empty string",
        "long": f"is longer than {MAX_URL_CHARS} characters",
        "scheme": "must be an http(s) URL",
    }

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data in (None, ""):
            self.fail("required")
        return super().validate_empty_values(data)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if len(data) > MAX_URL_CHARS:
            self.fail("long")
        if urlsplit(data).scheme not in ("http", "https"):
            self.fail("scheme")
        return data


class Attachment(serializers.Field):
    """``{"url", "type"|"mimeType", "name"|"filename"}``, or just the URL."""

    default_error_messages = {"invalid": "must be an object or a URL string"}

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if isinstance(data, str):
            data = {"url": data}
        if not isinstance(data, Mapping):
            self.fail("invalid")
        try:
            url = WebUrl().run_validation(data.get("url"))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"url": exc.detail}) from exc
        return {
            "url": url,
            "type": str(data.get("type") or data.get("mimeType") or "")[:100],
            "name": str(data.get("name") or data.get("filename") or "")[:255],
        }


class Timestamp(serializers.Field):
    """Epoch seconds or milliseconds, or ISO 8601 (no zone: UTC)."""

    default_error_messages = {
        "invalid": "must be ISO 8601 or epoch",
        "range": "is out of range",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_null=True, default=None, **kwargs)

    def to_internal_value(self, data: Any) -> datetime:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            seconds = data / 1000 if data > 1e11 else data
            try:
                return datetime.fromtimestamp(seconds, tz=UTC)
            except (OverflowError, OSError, ValueError):
                self.fail("range")
        if isinstance(data, str):
            try:
                parsed = datetime.fromisoformat(data.replace("Z", "+00:00"))
            except ValueError:
                self.fail("invalid")
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        self.fail("invalid")
        raise AssertionError("unreachable")


class EventData(serializers.Serializer):
    """What every event's ``data`` carries."""

    sessionId = Id(required=True)
    channel = Id(limit=64)
    channelInfo = serializers.DictField(
        required=False,
        allow_null=True,
        default=None,
        error_messages={"not_a_dict": "must be an object"},
    )
    senderId = Id()
    senderName = Id()
    direction = serializers.ChoiceField(
        choices=["inbound", "outbound"],
        default="inbound",
        error_messages={"invalid_choice": 'must be "inbound" or "outbound"'},
    )
    text = Text()


class MessageData(EventData):
    messageId = Id(required=True)
    attachments = serializers.ListField(
        child=Attachment(),
        required=False,
        allow_null=True,
        default=list,
        max_length=MAX_ATTACHMENTS,
        error_messages={
            "not_a_list": "must be a list",
            "max_length": f"has more than {MAX_ATTACHMENTS} items",
        },
    )
    agentId = Id()
    aiModel = Id(limit=128)
    tokensUsed = Count()
    processingTimeMs = Count()
    timestamp = Timestamp()
    escalate = Flag()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["attachments"] = attrs.get("attachments") or []
        if not attrs["text"] and not attrs["attachments"]:
            raise serializers.ValidationError(
                {"text": "is required for a message without attachments"}
            )
        return attrs


class MediaData(MessageData):
    mediaUrl = WebUrl()
    mediaType = Id(limit=100)
    fileName = Id()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["attachments"] = attrs.get("attachments") or []
        return attrs  # the media is the message: no text needed


class StatusData(EventData):
    status = serializers.ChoiceField(
        choices=STATUSES,
        error_messages={
            "required": "is required",
            "null": "is required",
            "invalid_choice": "must be one of "
            + ", ".join(f'"{status}"' for status in STATUSES),
        },
    )
    messageId = Id()
    error = Id(limit=2000)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A receipt for a reply we sent: messageId is our Idempotency-Key.
        if attrs["status"] in ("delivered", "failed") and not attrs["messageId"]:
            raise serializers.ValidationError({"messageId": "is required"})
        return attrs


class ErrorData(EventData):
    messageId = Id()
    error = serializers.JSONField(required=False, default=None)
    message = serializers.JSONField(required=False, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        error = attrs["error"] or attrs["message"] or attrs["text"]
        if not isinstance(error, str) or not error:
            raise serializers.ValidationError(
                {"error": "is required and must be a string"}
            )
        attrs["error"] = error[:2000]
        return attrs


SERIALIZERS: dict[str, type[EventData]] = {
    "message": MessageData,
    "media": MediaData,
    "status": StatusData,
    "error": ErrorData,
}


def first_error(errors: Any, path: str = "data") -> tuple[str, str]:
    """The first of DRF's (nested) errors as ``(field path, reason)``."""
    while True:
        if isinstance(errors, Mapping):
            key, errors = next(iter(errors.items()))
            if key == "non_field_errors":
                continue
            path = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"
        elif isinstance(errors, list) and errors:
            if all(isinstance(e, str) for e in errors):
                return path, str(errors[0])
            errors = errors[0]
        else:
            return path, str(errors)
