import pytest
from django.test import Client, override_settings

from core.testing import message_event, post_webhook

pytestmark = pytest.mark.django_db


def test_healthz_is_200_when_everything_answers() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["database"] == "ok"


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_healthz_is_503_naming_redis_when_it_is_down() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"].startswith("down")
    assert response.json()["checks"]["database"] == "ok"


def test_metrics_count_messages_deliveries_and_sessions() -> None:
    def value(text: str, line_start: str) -> float:
        for line in text.splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = Client().get("/metrics").content.decode()
    post_webhook(
        message_event(channel="discord", session_id="agent:main:discord:channel:9")
    )
    post_webhook(message_event(), signature="0" * 64)
    text = Client().get("/metrics").content.decode()
    received = (
        'openclaw_messages_received_total{direction="inbound",platform="discord"}'
    )
    assert value(text, received) == value(before, received) + 1
    rejected = 'openclaw_webhook_rejections_total{reason="signature"}'
    assert value(text, rejected) == value(before, rejected) + 1
    assert value(text, "openclaw_active_sessions") == 1
    assert "openclaw_message_processing_seconds_bucket" in text
    assert "openclaw_websocket_clients" in text


def test_metrics_can_require_a_bearer_token(client, settings) -> None:  # noqa: ANN001
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    right = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert right.status_code == 200 and b"# HELP" in right.content
