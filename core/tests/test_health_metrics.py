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


def test_without_a_token_metrics_are_closed_unless_public_on_purpose(
    client, settings
) -> None:  # noqa: ANN001
    settings.METRICS_TOKEN = ""
    settings.METRICS_PUBLIC = False
    closed = client.get("/metrics")
    assert closed.status_code == 403
    assert b"METRICS_TOKEN" in closed.content and b"# HELP" not in closed.content
    settings.METRICS_PUBLIC = True
    assert client.get("/metrics").status_code == 200


def test_production_mode_closes_metrics_and_the_schema_by_default() -> None:
    import os
    import subprocess
    import sys

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("METRICS_PUBLIC", "API_SCHEMA_PUBLIC")
    }
    env |= {
        "DATABASE_URL": "postgres://nobody@127.0.0.1:5432/unused",
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "SECRET_KEY": "x" * 60,
        "OPENCLAW_WEBHOOK_SECRET": "s",
    }
    code = (
        "from django.conf import settings as s; "
        "print(s.METRICS_PUBLIC, s.SPECTACULAR_SETTINGS['SERVE_PERMISSIONS'][0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env=env | {"DJANGO_SETTINGS_MODULE": "core.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.split()[-2:] == ["False", "core.roles.HasAgentRole"], done.stderr


def test_an_unknown_api_path_is_a_json_404_and_a_page_path_is_html(
    client, settings
) -> None:  # noqa: ANN001
    settings.DEBUG = False
    api = client.get("/api/conversations/%0A/messages/")
    assert api.status_code == 404
    assert api["Content-Type"] == "application/json"
    assert api.json()["error"]["reason"] == "no such resource"
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
