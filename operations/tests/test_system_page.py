"""The system page: gateway health (the simulator up, then down), workers and
the scheduler's last runs (a real worker runs the heartbeat), webhooks,
metrics; roles; the regions htmx polls."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from django.test import Client
from django.utils import timezone

from core.testing import create_user, drain, message_event, post_webhook, session_key
from inbox.models import GatewayLink, WebhookDelivery
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
    worker: Any, settings: Any, monkeypatch: Any
) -> None:
    settings.OPENCLAW_GATEWAY_URL = ""
    from operations.tasks import ops_heartbeat

    # Long after the start: no run yet is a fault, not a start.
    monkeypatch.setattr(status, "process_started_at", lambda: time.time() - 600)

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


def _health(client: Client) -> str:
    return client.get(
        "/system/", headers={"HX-Request": "true", "HX-Target": "system-health"}
    ).content.decode()


def test_replays_are_no_traffic_and_ops_commands_are_named(settings: Any) -> None:
    settings.OPENCLAW_GATEWAY_URL = ""
    settings.OPS_COMMAND_SENDERS = ["telegram:777001"]
    post_webhook(message_event(text="hi"))
    post_webhook(message_event(text="x"), signature="bad")
    original = WebhookDelivery.objects.get(outcome="stored")
    lead = create_user(role="lead")
    client = Client()
    client.force_login(lead)
    for _ in range(3):
        client.post("/system/deliveries/replay/", {"delivery": [original.pk]})
    assert WebhookDelivery.objects.filter(replay_of=original).count() == 3
    health = _health(client)
    # The lead's replays are the newest rows: neither "last" nor counted.
    assert "2, 1 rejected (50%)" in health
    assert "Duplicate" not in health.split('id="last-webhook"', 1)[1][:300]
    assert "Webhooks in the last hour: 2, rejected 1 (50%)" in status.summary()

    post_webhook(
        message_event(
            session_id="agent:main:telegram:direct:777001",
            senderId="777001",
            text="/help",
        )
    )
    health = _health(client)
    last = health.split('id="last-webhook"', 1)[1].split("</dd>", 1)[0]
    assert "ops command" in last and "Ignored" not in last
    assert "3, 1 rejected (33%), 1 ops command" in health
    assert "ops commands 1" in status.summary()


def test_status_right_after_the_start_says_starting(monkeypatch: Any) -> None:
    monkeypatch.setattr(status, "process_started_at", lambda: time.time() - 30)
    assert (
        "Workers: starting: no scheduled job has run yet"
        " (the scheduler runs every minute)" in status.summary()
    )
    html = _health(client_for("lead"))
    assert 'data-state="starting"' in html
    # Later, with still nothing run: a fault.
    monkeypatch.setattr(status, "process_started_at", lambda: time.time() - 600)
    summary = status.summary()
    assert "Workers: no scheduled job ran lately (last scheduled run never)" in summary
    assert 'data-state="quiet"' in _health(client_for("lead"))
    # A run long ago, even just after a restart: not "starting" either.
    monkeypatch.setattr(status, "process_started_at", lambda: time.time() - 30)
    JobRun.objects.create(
        name="ops_heartbeat",
        last_finished_at=timezone.now() - timedelta(minutes=30),
    )
    assert "no scheduled job ran lately (last scheduled run 30 min ago)" in (
        status.summary()
    )


def test_the_scheduler_table_names_jobs_and_schedules_for_people() -> None:
    html = _health(client_for("lead"))
    row = html.split('id="job-ops_heartbeat"', 1)[1].split("</tr>", 1)[0]
    assert "Heartbeat and expiry of unconfirmed ops commands" in row
    assert "every minute" in row and "ops_heartbeat</code>" in row
    prune = html.split('id="job-prune_webhook_deliveries"', 1)[1].split("</tr>")[0]
    assert "daily at 03:17" in prune
    rollup = html.split('id="job-roll_up_recent_days"', 1)[1].split("</tr>")[0]
    assert "every 5 minutes" in rollup


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("* * * * *", "every minute"),
        ("*/5 * * * *", "every 5 minutes"),
        ("*/1 * * * *", "every 1 minute"),
        ("17 3 * * *", "daily at 03:17"),
        ("0 * * * *", "hourly at :00"),
        ("0 9 * * mon", ""),  # the page shows the cron line itself
        ("0 9,17 * * *", ""),
        ("garbage", ""),
    ],
)
def test_common_cron_forms_in_words(cron: str, words: str) -> None:
    assert status.describe_schedule(cron) == words


def test_a_job_without_a_label_reads_its_docstring() -> None:
    import dramatiq

    @dramatiq.actor(actor_name="ops_test_unlabelled_job")
    def unlabelled() -> None:
        """Tidy the test's things. Then more words nobody needs here."""

    assert status.job_label("ops_test_unlabelled_job") == "Tidy the test's things"
    assert status.job_label("no_such_actor") == ""


@pytest.mark.postgres  # production mode: the real Redis broker
def test_queue_depth_on_redis_counts_what_waits_not_what_runs(settings: Any) -> None:
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=settings.REDIS_URL, namespace=f"depth-{time.time_ns()}")
    try:
        broker.declare_queue("ops")
        for n in range(3):
            broker.enqueue(dramatiq.Message("ops", "noop", (n,), {}, {}))
        assert status.waiting(broker, "ops") == 3
        # A worker takes one: it runs, it no longer waits (qsize says 3 still).
        consumer = broker.consume("ops", prefetch=1, timeout=1000)
        taken = next(consumer)
        assert taken is not None
        assert status.waiting(broker, "ops") == 2
        consumer.ack(taken)
        consumer.close()
    finally:
        broker.flush_all()
        broker.close()
