"""The baselines served by daphne exactly like the app's own views.

``seed_webhook`` is the "seed recipe": what a naive first version writes,
everything synchronous inside the request, no transaction, no idempotency.
``floor`` is the least a Django view can do with a delivery: one INSERT.
``reply_floor`` is the least a Django view can do with an agent's reply: the
logged-in session and CSRF check of every page, one INSERT, one POST to the
gateway, inside the request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import quote

import requests
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from bench.seed.models import SeedMessage, SeedSession, SeedWebhookLog

KEYWORDS = {
    "refund": ["환불", "refund", "money back", "charged twice", "결제"],
    "shipping": ["배송", "delivery", "shipping", "order", "주문", "ship"],
    "account": ["비밀번호", "password", "login", "account", "로그인"],
    "complaint": ["최악", "worst", "실망", "angry", "terrible"],
    "thanks": ["감사", "thanks", "thank you", "해결"],
}


def classify(text: str) -> str:
    lowered = text.lower()
    for category, words in KEYWORDS.items():
        for word in words:
            if word in lowered:
                return category
    return "other"


@csrf_exempt
def seed_webhook(request: HttpRequest) -> HttpResponse:
    body = request.body
    secret = settings.OPENCLAW_WEBHOOK_SECRETS[0].encode()
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(
        expected, request.headers.get("X-OpenClaw-Signature", "")
    ):
        return JsonResponse({"error": "bad signature"}, status=401)
    payload = json.loads(body)
    data = payload["data"]
    session, _ = SeedSession.objects.get_or_create(
        session_id=data["sessionId"],
        defaults={
            "platform": data.get("channel", ""),
            "customer_name": data.get("senderName", ""),
        },
    )
    text = data.get("text", "")
    category = classify(text)
    message = SeedMessage.objects.create(
        session=session,
        message_id=data.get("messageId", ""),
        direction=data.get("direction", "inbound"),
        sender=data.get("senderName", ""),
        text=text,
        category=category,
    )
    SeedWebhookLog.objects.create(event=payload["event"], payload=body.decode())
    html = render_to_string(
        "seed/message.html",
        {"message": message, "session": session, "category": category},
    )
    async_to_sync(get_channel_layer().group_send)(
        "seed-inbox", {"type": "seed.message", "html": html}
    )
    return JsonResponse({"status": "ok", "id": message.pk})


def _insert_floor_row(size: int) -> None:
    """The floors' one INSERT, as plain SQL: no model instance, no ORM."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_seed_floorrow (body_size, created_at)"
            " VALUES (%s, now())",
            [size],
        )


@csrf_exempt
def floor(request: HttpRequest) -> HttpResponse:
    _insert_floor_row(len(request.body))
    return HttpResponse("ok")


_gateway = requests.Session()  # one connection pool, as the app's client keeps


@require_POST
def reply_floor(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return JsonResponse({"error": "log in"}, status=401)
    text = request.POST.get("text", "")
    _insert_floor_row(len(text))
    session = request.POST.get("session", "")
    sent = _gateway.post(
        f"{settings.OPENCLAW_GATEWAY_URL.rstrip('/')}/api/sessions/"
        f"{quote(session, safe='')}/messages",
        json={"text": text, "attachments": []},
        headers={
            "Authorization": f"Bearer {settings.OPENCLAW_GATEWAY_TOKEN}",
            "Idempotency-Key": f"bench-floor-{text[:9]}",
        },
        timeout=10,
    )
    return JsonResponse({"gateway": sent.status_code})
