from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails
from django_ratelimit.core import is_ratelimited

from inbox import live, metrics, webhooks
from inbox.forms import ConversationFilterForm, encode_cursor
from inbox.models import Conversation, Platform, ReadMark, WebhookDelivery

PAGE_SIZE = 50
THREAD_PAGE = 50
JSON_TYPES = ("application/json",)


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


# --- webhook --------------------------------------------------------------------


def _error(status: int, field: str, reason: str, **headers: str) -> JsonResponse:
    response = JsonResponse(
        {"status": "error", "error": {"field": field, "reason": reason}}, status=status
    )
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _reject(
    request: HttpRequest,
    status: int,
    category: str,
    field: str,
    reason: str,
    body: bytes = b"",
) -> JsonResponse:
    """Answer an error and keep a bounded record of it (never the whole body)."""
    metrics.record_rejection(category)
    WebhookDelivery.objects.create(
        webhook_id=request.headers.get("webhook-id", "")[:255],
        raw_body=body[: webhooks.REJECTED_BODY_CHARS].decode("utf-8", "replace"),
        body_size=len(body) or int(request.META.get("CONTENT_LENGTH") or 0),
        body_truncated=len(body) > webhooks.REJECTED_BODY_CHARS,
        source_ip=request.META.get("REMOTE_ADDR") or None,
        outcome=WebhookDelivery.Outcome.REJECTED,
        status_code=status,
        error=f"{field}: {reason}"[:2000],
    )
    return _error(status, field, reason)


@csrf_exempt
def webhook(request: HttpRequest) -> JsonResponse:
    """``POST /api/openclaw/webhook/``: the gateway's deliveries.

    The contract is in docs/webhook-contract.md.
    """
    if request.method != "POST":
        metrics.record_rejection("method")
        return _error(405, "method", "use POST", Allow="POST")
    rate = settings.OPENCLAW_WEBHOOK_RATE
    if is_ratelimited(
        request, group="openclaw-webhook", key="ip", rate=rate, increment=True
    ):
        # Not logged row by row: a flood must not become a flood of rows.
        metrics.record_rejection("rate_limit")
        period = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(rate[-1], 60)
        return _error(
            429, "rate", f"more than {rate} from this address", Retry_After=str(period)
        )
    if request.content_type not in JSON_TYPES:
        return _reject(
            request, 415, "content_type", "Content-Type", "must be application/json"
        )
    cap = settings.OPENCLAW_WEBHOOK_MAX_BYTES
    if int(request.META.get("CONTENT_LENGTH") or 0) > cap:
        return _reject(request, 413, "size", "body", f"is larger than {cap} bytes")
    body = request.read(cap + 1)
    if len(body) > cap:
        return _reject(
            request, 413, "size", "body", f"is larger than {cap} bytes", body
        )
    try:
        scheme = webhooks.verify_signature(
            request.headers, body, settings.OPENCLAW_WEBHOOK_SECRETS
        )
    except webhooks.SignatureError as exc:
        return _reject(request, 401, "signature", "signature", str(exc), body)
    try:
        payload = webhooks.parse_body(body)
    except webhooks.PayloadError as exc:
        return _reject(request, 400, "payload", exc.field, exc.reason, body)

    delivery = WebhookDelivery(
        webhook_id=request.headers.get("webhook-id", "")[:255],
        event_type=payload["event"],
        raw_body=body.decode(),
        body_size=len(body),
        signature_scheme=scheme,
        source_ip=request.META.get("REMOTE_ADDR") or None,
    )
    if payload["event"] not in webhooks.KNOWN_EVENTS:
        # Forward compatible: a newer gateway's event is kept, not refused.
        delivery.outcome = WebhookDelivery.Outcome.IGNORED
        delivery.status_code = 202
        delivery.save()
        metrics.DELIVERIES.labels(outcome="ignored").inc()
        return JsonResponse(
            {"status": "ignored", "event": payload["event"]}, status=202
        )
    try:
        event = webhooks.validate(payload, body)
    except webhooks.PayloadError as exc:
        return _reject(request, 400, "payload", exc.field, exc.reason, body)
    outcome = webhooks.store(event, delivery)
    answer: dict[str, Any] = {"status": outcome.status}
    if outcome.message is not None:
        answer["messageId"] = outcome.message.gateway_message_id
    return JsonResponse(answer)


# --- inbox pages ----------------------------------------------------------------


def _list_context(request: HttpRequest) -> dict[str, Any]:
    form = ConversationFilterForm(request.GET)
    filters = form.filters
    conversations = (
        Conversation.objects.filtered(user=request.user, **filters)
        .with_unread_for(request.user)
        .select_related("assignee")
        .by_activity()
        .before_cursor(form.cursor_key)
    )
    page = list(conversations[: PAGE_SIZE + 1])
    has_more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    return {
        "conversations": page,
        "next_cursor": encode_cursor(page[-1]) if has_more else "",
        "filters": filters,
        "platforms": Platform.choices,
        "statuses": Conversation.Status.choices,
    }


def _thread_context(
    conversation: Conversation, before: int | None = None
) -> dict[str, Any]:
    messages = conversation.messages.order_by("-pk")
    if before is not None:
        messages = messages.filter(pk__lt=before)
    page = list(messages[: THREAD_PAGE + 1])
    has_older = len(page) > THREAD_PAGE
    page = page[:THREAD_PAGE][::-1]
    return {
        "conversation": conversation,
        "thread": page,
        "older_before": page[0].pk if has_older and page else None,
    }


@login_required
@require_GET
def conversation_list(request: HtmxHttpRequest) -> HttpResponse:
    seq = live.current_seq()  # before reading rows: replay covers the rest
    context = _list_context(request) | {"seq": seq, "open": None}
    if request.htmx and request.GET.get("cursor"):
        return render(request, "inbox/inbox.html#conversation-rows", context)
    if request.htmx and request.htmx.target == "list-pane":
        return render(request, "inbox/inbox.html#list-pane", context)
    return render(request, "inbox/inbox.html", context)


@login_required
@require_GET
def conversation_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    seq = live.current_seq()
    conversation = get_object_or_404(
        Conversation.objects.select_related("assignee"), pk=pk
    )
    ReadMark.mark_seen(request.user, conversation)
    context = _thread_context(conversation) | {"seq": seq, "open": conversation}
    if request.htmx and request.htmx.target == "thread-pane":
        return render(request, "inbox/inbox.html#thread-pane", context)
    return render(request, "inbox/inbox.html", context | _list_context(request))


@login_required
@require_GET
def older_messages(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    conversation = get_object_or_404(Conversation, pk=pk)
    try:
        before = int(request.GET.get("before", ""))
    except ValueError:
        return HttpResponse("before must be a message id", status=400)
    return render(
        request,
        "inbox/inbox.html#older-messages",
        _thread_context(conversation, before),
    )
