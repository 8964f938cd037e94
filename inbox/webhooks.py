"""Signed webhooks from other senders: verify the signature, validate the payload
into an ``inbox.ingest.Event``. The payload's fields are declared in
``inbox.payloads`` (DRF serializers); storing is ``inbox.ingest.store``, which
the gateway connector uses as well.

The contract is documented in ``docs/webhook-contract.md``. Two signature
schemes are accepted, each against every configured secret (rotation):

* ``X-OpenClaw-Signature``: lowercase hex HMAC-SHA256 of the raw body.
* Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature: v1,<base64>`` over ``"{id}.{timestamp}.{body}"``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext

from core.roles import Role, role_of
from inbox import ingest, payloads
from inbox.ingest import Event
from inbox.models import Message, Platform, WebhookDelivery

log = logging.getLogger(__name__)

KNOWN_EVENTS = set(payloads.SERIALIZERS)
MAX_DEPTH = 32
REJECTED_BODY_CHARS = 1024


def sample_rejection(category: str) -> bool:
    """Whether this rejection is one of the first few of its kind this minute.

    Those are kept as rows (capped) for a look; the rest are only counted
    (``openclaw_webhook_rejections_total``). The count lives in the shared
    cache, so the limit holds across web processes.
    """
    key = f"openclaw:rejections:{category}:{int(time.time() // 60)}"
    cache.add(key, 0, timeout=120)
    try:
        seen = cache.incr(key)
    except ValueError:  # evicted between add and incr
        seen = 1
    return seen <= settings.OPENCLAW_WEBHOOK_REJECTION_SAMPLES


class SignatureError(Exception):
    """The delivery is not from a holder of our secret (answer 401)."""


class PayloadError(Exception):
    """The body is not a valid event (answer 400 naming the field)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# --- signatures -----------------------------------------------------------------


def _standard_key(secret: str) -> bytes:
    # Standard Webhooks secrets are "whsec_" + base64; plain strings are used as-is.
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def sign_openclaw(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_standard(msg_id: str, timestamp: int, body: bytes, secret: str) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_standard_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_signature(
    headers: Any, body: bytes, secrets: list[str], *, now: float | None = None
) -> str:
    """Return the scheme that verified ``body``; raise ``SignatureError`` otherwise."""
    if not secrets:
        raise SignatureError("no webhook secret is configured")
    if headers.get("webhook-signature"):
        return _verify_standard(headers, body, secrets, now=now)
    provided = headers.get("X-OpenClaw-Signature", "").strip().lower()
    if provided:
        for secret in secrets:
            if hmac.compare_digest(sign_openclaw(body, secret), provided):
                return WebhookDelivery.Scheme.OPENCLAW
        raise SignatureError("X-OpenClaw-Signature does not match")
    raise SignatureError(
        "missing signature: send X-OpenClaw-Signature or webhook-signature"
    )


def _verify_standard(
    headers: Any, body: bytes, secrets: list[str], *, now: float | None
) -> str:
    msg_id = headers.get("webhook-id", "")
    raw_ts = headers.get("webhook-timestamp", "")
    if not msg_id or not raw_ts:
        raise SignatureError("webhook-id and webhook-timestamp are required")
    try:
        timestamp = int(raw_ts)
    except ValueError as exc:
        raise SignatureError("webhook-timestamp is not an integer") from exc
    tolerance = settings.OPENCLAW_WEBHOOK_TOLERANCE_SECONDS
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        raise SignatureError("webhook-timestamp is outside the tolerance (replay?)")
    offered = [
        part.split(",", 1)[1]
        for part in headers["webhook-signature"].split()
        if part.startswith("v1,")
    ]
    for secret in secrets:
        try:
            expected = sign_standard(msg_id, timestamp, body, secret).split(",", 1)[1]
        except binascii.Error:
            continue
        for signature in offered:
            if hmac.compare_digest(expected, signature):
                return WebhookDelivery.Scheme.STANDARD
    raise SignatureError("webhook-signature does not match")


# --- payload --------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    # Python's parser takes NaN and Infinity; JSON has no such numbers and
    # PostgreSQL's jsonb refuses them.
    raise PayloadError("body", f"{name} is not a JSON number")


def parse_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object the database can hold, or ``PayloadError``.

    Refused with the field named: NaN / Infinity, nesting deeper than
    ``MAX_DEPTH``, and strings holding a lone UTF-16 surrogate (valid JSON,
    but no UTF-8 can carry them). NUL (U+0000), which PostgreSQL text cannot
    hold either, is kept readable instead: each becomes U+FFFD, the
    replacement character (the delivery log keeps the body as sent).
    """
    try:
        payload = json.loads(body, parse_constant=_no_constants)
    except UnicodeDecodeError as exc:
        raise PayloadError("body", "is not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise PayloadError(
            "body", f"malformed JSON: {exc.msg} at position {exc.pos}"
        ) from exc
    except RecursionError as exc:
        raise PayloadError("body", f"is nested deeper than {MAX_DEPTH} levels") from exc
    payload = _storable(payload)
    if not isinstance(payload, dict):
        raise PayloadError(
            "body", f"must be a JSON object, got {type(payload).__name__}"
        )
    event = payload.get("event")
    if not isinstance(event, str) or not event:
        raise PayloadError("event", "is required and must be a non-empty string")
    if len(event) > 64:
        raise PayloadError("event", "is longer than 64 characters")
    return payload


def _storable(value: Any) -> Any:
    """``value`` with NUL replaced in every string; ``PayloadError`` naming the
    first string no UTF-8 can carry, or nesting deeper than ``MAX_DEPTH``.
    Walks with a stack of its own: no recursion, whatever the input."""

    def clean(text: str, path: str) -> str:
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            raise PayloadError(path, "holds a lone UTF-16 surrogate") from exc
        return text.replace("\x00", "\ufffd") if "\x00" in text else text

    root: list[Any] = [value]
    stack: list[tuple[Any, Any, str, int]] = [(root, 0, "body", 0)]
    while stack:
        parent, slot, path, depth = stack.pop()
        item = parent[slot]
        if isinstance(item, str):
            parent[slot] = clean(item, path)
        elif isinstance(item, (dict, list)):
            if depth >= MAX_DEPTH:
                raise PayloadError(path, f"is nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key in list(item):
                    name = clean(key, f"{path} key")
                    if name != key:
                        item[name] = item.pop(key)
                    stack.append((item, name, _join(path, name), depth + 1))
            else:
                for index in range(len(item)):
                    stack.append((item, index, f"{path}[{index}]", depth + 1))
    return root[0]


def _join(path: str, key: str) -> str:
    return key if path == "body" else f"{path}.{key}"


def platform_from_session(session_id: str) -> str:
    # OpenClaw session keys read agent:<agent>:<channel>:<kind>:<peer>.
    parts = session_id.split(":")
    return (
        Platform.parse(parts[2])
        if len(parts) >= 3 and parts[0] == "agent"
        else Platform.OTHER
    )


def validate(payload: dict[str, Any], body: bytes) -> Event:
    """A known event's ``data`` checked by its serializer (``inbox.payloads``)
    and turned into an ``Event``; ``PayloadError`` names the first bad field."""
    data = payload.get("data")
    if not isinstance(data, dict):
        raise PayloadError("data", "is required and must be an object")
    checked = payloads.SERIALIZERS[payload["event"]](data=data)
    if not checked.is_valid():
        raise PayloadError(*payloads.first_error(checked.errors))
    fields = checked.validated_data
    event = Event(type=payload["event"], data=data)
    event.session_id = fields["sessionId"]
    channel = fields["channel"]
    event.platform = (
        Platform.parse(channel) if channel else platform_from_session(event.session_id)
    )
    channel_info = fields["channelInfo"] or {}
    sender_id = fields["senderId"]
    sender_name = (
        fields["senderName"]
        or str(channel_info.get("displayName") or channel_info.get("username") or "")[
            :255
        ]
    )
    inbound = fields["direction"] == "inbound"
    event.fields = {
        "conversation": {
            "platform": event.platform,
            "customer_id": sender_id if inbound else "",
            "customer_name": sender_name if inbound else "",
            "metadata": channel_info,
        },
        "sender": sender_name or sender_id,
    }
    if event.type in ("message", "media"):
        event.message_id = fields["messageId"]
        event.fields["message"] = _message_fields(
            event, fields, sender_name or sender_id
        )
        event.fields["escalate"] = fields["escalate"]
    elif event.type == "status":
        event.fields["status"] = fields["status"]
        event.fields["error"] = fields["error"]
        event.message_id = fields["messageId"] or _fallback_id("reset", body)
    elif event.type == "error":
        event.fields["error"] = fields["error"]
        event.message_id = fields["messageId"] or _fallback_id("error", body)
    return event


def _message_fields(
    event: Event, fields: dict[str, Any], sender: str
) -> dict[str, Any]:
    """The ``Message`` a message or media event stores."""
    text = fields["text"]
    metadata: dict[str, Any] = {}
    if len(text) > settings.OPENCLAW_MAX_TEXT_CHARS:
        # The full text stays in the delivery's raw body; the thread shows a cap.
        metadata["truncated_from"] = len(text)
        text = text[: settings.OPENCLAW_MAX_TEXT_CHARS]
    attachments = list(fields["attachments"])
    kind = Message.Kind.TEXT
    if event.type == "media":
        kind = Message.Kind.MEDIA
        attachments.insert(
            0,
            {
                "url": fields["mediaUrl"],
                "type": fields["mediaType"],
                "name": fields["fileName"],
            },
        )
    outbound = fields["direction"] == "outbound"
    return {
        "gateway_message_id": event.message_id,
        "direction": fields["direction"],
        "kind": kind,
        "author": Message.Author.BOT if outbound else Message.Author.CUSTOMER,
        "sender": (fields["agentId"] or "bot") if outbound else sender,
        "text": text,
        "attachments": attachments,
        "ai_model": fields["aiModel"],
        "tokens_used": fields["tokensUsed"],
        "processing_time_ms": fields["processingTimeMs"],
        "delivery_state": Message.DeliveryState.SENT
        if outbound
        else Message.DeliveryState.RECEIVED,
        "sent_at": fields["timestamp"],
        "metadata": metadata,
    }


def _fallback_id(kind: str, body: bytes) -> str:
    # Events without their own id dedupe on the exact body: a redelivery is identical.
    return f"{kind}:{hashlib.sha256(body).hexdigest()[:40]}"


# --- replay ---------------------------------------------------------------------


class ReplayRefused(Exception):
    """The delivery's body cannot be run again (the reason is for the lead)."""


def replay(
    delivery: WebhookDelivery, user: Any, *, trust_unsigned: bool = False
) -> WebhookDelivery:
    """Run ``delivery``'s kept body through the storing path again and record
    the attempt as a row of its own (``replay_of``, ``replayed_by``).

    The signature is not checked again: the body is one we received. One no
    signature verified (refused for its signature, or before it was checked)
    may have come from anyone: storing it trusts its sender, so only an admin
    may, and only saying so (``trust_unsigned``, the page's confirmation).
    Everything else is checked: a malformed body stays rejected with its
    reason, a stored one is found stored (``duplicate``, no second message),
    and an ops command is never run again. ``ReplayRefused`` when no original
    body is left to run, or the unsigned rule says no.
    """
    refusal = delivery.replay_refusal()
    if refusal:
        raise ReplayRefused(refusal)
    if delivery.is_unsigned:
        if role_of(user) < Role.ADMIN:
            raise ReplayRefused(
                gettext(
                    "The gateway did not sign this body: only an admin may replay it."
                )
            )
        if not trust_unsigned:
            raise ReplayRefused(
                gettext(
                    "The gateway did not sign this body: replay it from its own "
                    "page, confirming that you trust its sender."
                )
            )
        log.warning(
            "delivery %s: unsigned body replayed by user %s, its sender trusted",
            delivery.pk,
            getattr(user, "pk", None),
        )
    body = delivery.raw_body.encode()
    attempt = WebhookDelivery(
        webhook_id=delivery.webhook_id,
        event_type=delivery.event_type,
        body_size=delivery.body_size,
        signature_scheme=delivery.signature_scheme,
        replay_of=delivery,
        replayed_by=user,
    )
    try:
        payload = parse_body(body)
        attempt.event_type = payload["event"]
        if payload["event"] not in KNOWN_EVENTS:
            return _record(attempt, WebhookDelivery.Outcome.IGNORED, 202)
        event = validate(payload, body)
    except PayloadError as exc:
        error = f"{exc.field}: {exc.reason}"[:2000]
        return _record(attempt, WebhookDelivery.Outcome.REJECTED, 400, error)
    event.is_replay = True
    ingest.store(event, attempt)  # sets the outcome and saves the row
    return attempt


def _record(
    attempt: WebhookDelivery, outcome: str, status: int, error: str = ""
) -> WebhookDelivery:
    attempt.outcome, attempt.status_code, attempt.error = outcome, status, error
    attempt.processed_at = timezone.now()
    attempt.save()
    return attempt
