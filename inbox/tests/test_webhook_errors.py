import json

import pytest
from django.test import Client, override_settings

from core.testing import WEBHOOK_URL, encode, message_event, post_webhook, sign
from inbox.models import Message, WebhookDelivery

pytestmark = pytest.mark.django_db


def error_of(response) -> dict:  # noqa: ANN001
    assert response["Content-Type"].startswith("application/json")
    return response.json()["error"]


def test_malformed_json_is_400_with_the_reason() -> None:
    response = post_webhook(body=b'{"event": "message", "data": ')
    assert response.status_code == 400
    error = error_of(response)
    assert error["field"] == "body"
    assert "malformed JSON" in error["reason"]


@pytest.mark.parametrize("payload", [[], "text", 42, None])
def test_non_object_body_is_400(payload: object) -> None:
    response = post_webhook(body=json.dumps(payload).encode())
    assert response.status_code == 400
    assert "must be a JSON object" in error_of(response)["reason"]


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda p: p.pop("event"), "event", "required"),
        (lambda p: p.update(data=[1]), "data", "must be an object"),
        (lambda p: p["data"].pop("sessionId"), "data.sessionId", "required"),
        (lambda p: p["data"].pop("messageId"), "data.messageId", "required"),
        (
            lambda p: p["data"].update(sessionId="x" * 256),
            "data.sessionId",
            "longer than 255",
        ),
        (
            lambda p: p["data"].update(messageId="9" * 256),
            "data.messageId",
            "longer than 255",
        ),
        (
            lambda p: p["data"].update(sessionId=["a"]),
            "data.sessionId",
            "must be a string",
        ),
        (lambda p: p["data"].update(text=12), "data.text", "must be a string"),
        (lambda p: p["data"].update(text="", attachments=[]), "data.text", "required"),
        (lambda p: p["data"].update(tokensUsed=-1), "data.tokensUsed", "non-negative"),
        (lambda p: p["data"].update(direction="sideways"), "data.direction", "inbound"),
        (
            lambda p: p["data"].update(attachments="x"),
            "data.attachments",
            "must be a list",
        ),
        (
            lambda p: p["data"].update(attachments=[{"url": "javascript:alert(1)"}]),
            "data.attachments[0].url",
            "http(s)",
        ),
    ],
)
def test_invalid_fields_are_400_naming_the_field(
    mutate, field: str, reason: str
) -> None:  # noqa: ANN001
    payload = message_event()
    mutate(payload)
    response = post_webhook(payload)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["field"] == field
    assert reason in error["reason"]
    assert not Message.objects.exists()


def test_bad_status_value_is_400() -> None:
    payload = {
        "event": "status",
        "data": {"sessionId": "agent:main:telegram:dm:1", "status": "paused"},
    }
    response = post_webhook(payload)
    assert response.status_code == 400
    assert error_of(response)["field"] == "data.status"


def test_media_needs_a_web_url() -> None:
    payload = {
        "event": "media",
        "data": {
            "sessionId": "agent:main:telegram:dm:1",
            "messageId": "5",
            "mediaUrl": "file:///etc/passwd",
        },
    }
    response = post_webhook(payload)
    assert response.status_code == 400
    assert error_of(response)["field"] == "data.mediaUrl"


def test_unknown_event_is_202_ignored_and_logged() -> None:
    response = post_webhook(
        {"event": "typing", "data": {"sessionId": "agent:main:x:dm:1"}}
    )
    assert response.status_code == 202
    assert response.json() == {"status": "ignored", "event": "typing"}
    delivery = WebhookDelivery.objects.get()
    assert delivery.outcome == "ignored" and delivery.event_type == "typing"


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_other_methods_are_405_json(method: str) -> None:
    response = getattr(Client(), method)(WEBHOOK_URL)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert error_of(response)["field"] == "method"


@override_settings(OPENCLAW_WEBHOOK_MAX_BYTES=2048)
def test_body_over_the_cap_is_413_and_not_stored_whole() -> None:
    payload = message_event(text="가" * 3000)
    response = post_webhook(payload)
    assert response.status_code == 413
    assert "2048 bytes" in error_of(response)["reason"]
    rejected = WebhookDelivery.objects.get()
    assert rejected.status_code == 413
    assert len(rejected.raw_body) <= 1024
    assert not Message.objects.exists()


def test_non_json_content_type_is_415() -> None:
    body = encode(message_event())
    response = post_webhook(body=body, content_type="text/plain")
    assert response.status_code == 415
    assert error_of(response)["field"] == "Content-Type"


@override_settings(OPENCLAW_WEBHOOK_RATE="3/m")
def test_past_the_rate_limit_is_429_with_retry_after() -> None:
    for _ in range(3):
        assert post_webhook(message_event()).status_code == 200
    response = post_webhook(message_event())
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert error_of(response)["field"] == "rate"
    assert Message.objects.count() == 3


def test_rejected_body_is_capped_in_the_log() -> None:
    body = b'{"event": "message", "junk": "' + b"x" * 50_000 + b'"}'
    response = post_webhook(body=body, signature="f" * 64)
    assert response.status_code == 401
    rejected = WebhookDelivery.objects.get()
    assert len(rejected.raw_body) == 1024
    assert rejected.body_truncated and rejected.body_size == len(body)


def test_signature_is_checked_before_the_body_is_parsed() -> None:
    # An unsigned caller learns nothing about our payload rules.
    response = post_webhook(body=b"not json", signature="0" * 64)
    assert response.status_code == 401


def test_valid_body_still_reports_json_error_shape() -> None:
    body = b"[1, 2"
    response = post_webhook(body=body, signature=sign(body))
    assert response.status_code == 400
    assert set(response.json()) == {"status", "error"}


# Per day: a window boundary inside the test (per minute: every minute) would
# reset the count halfway.
@override_settings(OPENCLAW_WEBHOOK_JUNK_RATE="100/d")
def test_junk_from_an_address_does_not_spend_the_signed_budget() -> None:
    # 150 unsigned requests: the first 100 are 401, the rest 429 (junk budget).
    answers = [
        post_webhook(message_event(), signature="0" * 64).status_code
        for _ in range(150)
    ]
    assert answers[:100] == [401] * 100
    assert set(answers[100:]) == {429}
    # A correctly signed delivery from the same address is stored all the same.
    response = post_webhook(message_event(text="signed after the junk"))
    assert response.status_code == 200, response.content
    assert Message.objects.filter(text="signed after the junk").count() == 1


@override_settings(OPENCLAW_WEBHOOK_REJECTION_SAMPLES=5)
def test_rejections_are_counted_and_only_a_sample_is_kept_as_rows() -> None:
    from prometheus_client import REGISTRY

    def refused() -> float:
        labels = {"reason": "signature"}
        return (
            REGISTRY.get_sample_value("openclaw_webhook_rejections_total", labels) or 0
        )

    before = refused()
    for _ in range(60):
        assert post_webhook(message_event(), signature="0" * 64).status_code == 401
    after = refused()
    assert after - before == 60
    # 60 refused, 5 kept (unless the minute turned over mid-test: then 10).
    rows = WebhookDelivery.objects.filter(outcome=WebhookDelivery.Outcome.REJECTED)
    assert rows.count() in (5, 10)
    assert all(row.status_code == 401 for row in rows)
