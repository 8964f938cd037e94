"""The system page: gateway health (the simulator up, then down), workers and
the scheduler's last runs (a real worker runs the heartbeat), webhooks,
metrics; roles; the regions htmx polls."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from core.testing import create_user, drain, message_event, post_webhook, session_key
from inbox.models import GatewayLink
from inbox.simulated_gateway import GatewayServer
from operations import status
from operations.models import JobRun

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(role: str) -> Client:
    client = Client()
    client.force_login(create_user(role=role))
    return client


@pytest.fixture(autouse=True)
def _fresh_page_client() -> Any:
    status.reset_gateway_client()
    yield
    status.reset_gateway_client()


def test_leads_see_the_gateway_healthy_and_the_newest_sessions(
    gateway: GatewayServer,
) -> None:
    key = session_key()
    post_webhook(message_event(session_id=key, text="hello"))
    gateway.customer_writes(key, "hello")  # the gateway knows the session
    GatewayLink.objects.create(url=gateway.url, device_seed="x" * 43, is_connected=True)
    page = client_for("lead").get("/system/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-state="healthy"' in html and "unreachable" not in html.lower()
    assert "connected" in html
    assert "김민준" in html  # the newest conversation, with its send policy
    assert "<td>allow</td>" in html
    assert "/system/deliveries/" in html
    # Configuration is for admins: no gateway URL, no ops commands section.
    assert gateway.url not in html and "system-config" not in html
    assert "/system/commands/" not in html


def test_a_gateway_that_is_down_shows_unreachable_with_the_reason(
    gateway: GatewayServer,
) -> None:
    post_webhook(message_event(text="hello"))
    gateway.go_down()
    page = client_for("admin").get("/system/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-state="unreachable"' in html
    assert "connection refused" in html
    assert gateway.url in html and 'id="system-config"' in html  # admins: config


def test_without_a_gateway_the_page_says_so(settings: Any) -> None:
    settings.OPENCLAW_GATEWAY_URL = ""
    html = client_for("lead").get("/system/").content.decode()
    assert "No gateway configured." in html


def test_the_heartbeat_run_by_a_worker_shows_workers_alive(
    worker: Any, settings: Any
) -> None:
    settings.OPENCLAW_GATEWAY_URL = ""
    from operations.tasks import ops_heartbeat

    before = client_for("lead").get(
        "/system/", headers={"HX-Request": "true", "HX-Target": "system-health"}
    )
    assert 'data-state="quiet"' in before.content.decode()
    ops_heartbeat.send()
    drain(worker, "ops")
    run = JobRun.objects.get(name="ops_heartbeat")
    assert run.runs == 1 and run.last_error == ""
    region = client_for("lead").get(
        "/system/", headers={"HX-Request": "true", "HX-Target": "system-health"}
    )
    html = region.content.decode()
    assert html.lstrip().startswith('<section id="system-health"')
    assert 'data-state="alive"' in html
    assert 'id="job-ops_heartbeat"' in html and 'id="job-resend_outbox"' in html


def test_the_last_webhook_and_the_metrics_are_shown(settings: Any) -> None:
    settings.OPENCLAW_GATEWAY_URL = ""
    post_webhook(message_event(text="hi"))
    post_webhook(message_event(text="x"), signature="bad")
    client = client_for("lead")
    health = client.get(
        "/system/", headers={"HX-Request": "true", "HX-Target": "system-health"}
    ).content.decode()
    assert "Rejected" in health and "2, 1 rejected (50%)" in health
    metrics = client.get(
        "/system/", headers={"HX-Request": "true", "HX-Target": "system-metrics"}
    ).content.decode()
    assert "openclaw_webhook_deliveries_total" in metrics


def test_agents_may_not_see_the_system_page() -> None:
    assert client_for("agent").get("/system/").status_code == 403
    assert Client().get("/system/").status_code == 302  # log in first
