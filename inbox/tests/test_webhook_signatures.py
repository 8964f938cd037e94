import time

import pytest
from django.test import override_settings

from core.testing import encode, message_event, post_webhook, sign, standard_headers
from inbox.models import Message, WebhookDelivery
from inbox.webhooks import SignatureError, sign_standard, verify_signature

pytestmark = pytest.mark.django_db


def test_standard_webhooks_published_test_vector() -> None:
    # The vector from the Standard Webhooks specification's reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    timestamp = 1614265330
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign_standard(msg_id, timestamp, body, secret) == expected
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,bogus {expected}",
    }
    assert (
        verify_signature(headers, body, [secret], now=timestamp + 10)
        == "standard-webhooks"
    )
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature(headers, body, [secret], now=timestamp + 301)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(headers, body + b" ", [secret], now=timestamp)


def test_openclaw_hex_signature_is_accepted_and_stored() -> None:
    response = post_webhook(message_event(message_id="1"))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "stored"
    delivery = WebhookDelivery.objects.get()
    assert delivery.signature_scheme == "openclaw-hmac"
    assert delivery.outcome == "stored"


def test_standard_webhooks_signature_is_accepted() -> None:
    body = encode(message_event(message_id="2"))
    response = post_webhook(body=body, headers=standard_headers(body))
    assert response.status_code == 200, response.content
    assert WebhookDelivery.objects.get().signature_scheme == "standard-webhooks"


@pytest.mark.parametrize(
    "signature",
    ["0" * 64, "not-hex", sign(b"another body")],
)
def test_wrong_hex_signature_is_401_and_nothing_stored(signature: str) -> None:
    response = post_webhook(message_event(), signature=signature)
    assert response.status_code == 401
    assert response.json()["error"]["field"] == "signature"
    assert not Message.objects.exists()
    rejected = WebhookDelivery.objects.get()
    assert rejected.outcome == "rejected" and rejected.status_code == 401


def test_missing_signature_is_401() -> None:
    response = post_webhook(message_event(), signature="")
    assert response.status_code == 401
    assert "missing signature" in response.json()["error"]["reason"]


def test_stale_standard_timestamp_is_401() -> None:
    body = encode(message_event())
    headers = standard_headers(body, timestamp=int(time.time()) - 301)
    response = post_webhook(body=body, headers=headers)
    assert response.status_code == 401
    assert "tolerance" in response.json()["error"]["reason"]
    assert not Message.objects.exists()


def test_future_standard_timestamp_is_401() -> None:
    body = encode(message_event())
    response = post_webhook(
        body=body, headers=standard_headers(body, timestamp=int(time.time()) + 600)
    )
    assert response.status_code == 401
    assert "tolerance" in response.json()["error"]["reason"]
    assert not Message.objects.exists()
    # Just inside the window either way is accepted: the bound is the cause.
    for offset in (-290, 290):
        body = encode(message_event())
        headers = standard_headers(body, timestamp=int(time.time()) + offset)
        assert post_webhook(body=body, headers=headers).status_code == 200
    assert Message.objects.count() == 2


@override_settings(
    OPENCLAW_WEBHOOK_SECRETS=["new-secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
)
def test_every_configured_secret_verifies_during_rotation() -> None:
    body = encode(message_event(message_id="a"))
    assert (
        post_webhook(body=body, signature=sign(body, "new-secret")).status_code == 200
    )
    body = encode(message_event(message_id="b"))
    headers = standard_headers(body, secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert post_webhook(body=body, headers=headers).status_code == 200
    body = encode(message_event(message_id="c"))
    assert (
        post_webhook(body=body, signature=sign(body, "retired-secret")).status_code
        == 401
    )
