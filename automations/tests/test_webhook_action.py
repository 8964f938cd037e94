"""The "call webhook" action end to end: a run, the signed POST, the log."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from automations import engine
from automations.models import Trigger, WebhookCall
from core.testing import drain, message_event, post_webhook
from inbox.models import Message
from inbox.webhooks import verify_signature

pytestmark = pytest.mark.django_db(transaction=True)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((dict(self.headers), body))
        self.send_response(self.server.status)
        self.end_headers()
        self.wfile.write(b"thanks")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():  # noqa: ANN201
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.seen, server.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _fire(url: str) -> Trigger:
    trigger = Trigger.objects.create(
        name="Refund hook",
        patterns=["환불|refund"],
        actions=[{"type": "call_webhook", "url": url}],
    )
    post_webhook(message_event(text="환불 해주세요"))
    engine.run_for_message(Message.objects.select_related("conversation").get())
    return trigger


def test_a_matching_message_posts_a_signed_webhook(receiver, worker, settings) -> None:  # noqa: ANN001
    settings.AUTOMATIONS_WEBHOOK_ALLOWLIST = ["127.0.0.1/32"]
    port = receiver.server_address[1]
    trigger = _fire(f"http://127.0.0.1:{port}/hooks/refund")
    drain(worker, "automations")
    call = WebhookCall.objects.get()
    assert call.state == "succeeded" and call.response_status == 200
    assert call.attempts == 1 and call.response_excerpt == "thanks"
    [(headers, body)] = receiver.seen
    # Any Standard Webhooks verifier accepts it with the trigger's secret.
    lowered = {k.lower(): v for k, v in headers.items()}
    assert verify_signature(lowered, body, [trigger.webhook_secret]) == (
        "standard-webhooks"
    )
    assert lowered["webhook-id"] == call.webhook_id
    payload = json.loads(body)
    assert payload["type"] == "trigger.fired"
    assert payload["message"]["text"] == "환불 해주세요"
    assert payload["match"] == {"pattern": "환불|refund", "start": 0, "end": 2}


def test_a_failing_receiver_is_retried_then_logged(receiver, worker, settings) -> None:  # noqa: ANN001
    settings.AUTOMATIONS_WEBHOOK_ALLOWLIST = ["127.0.0.1/32"]
    receiver.status = 404
    _fire(f"http://127.0.0.1:{receiver.server_address[1]}/gone")
    drain(worker, "automations")
    call = WebhookCall.objects.get()
    assert call.state == "failed" and call.attempts == 1  # 4xx: permanent
    assert "404" in call.error and len(receiver.seen) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
    ],
)
def test_private_destinations_are_refused_before_connecting(
    url: str,
    worker,
    monkeypatch,  # noqa: ANN001
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"connect reached for {url}")

    _fire(url)
    # Only now: the webhook POST above needed a real socket to the test DB.
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    call = WebhookCall.objects.get()
    from automations.tasks import call_webhook

    call_webhook.fn(call.pk)
    call.refresh_from_db()
    assert call.state == "failed" and "refused" in call.error


def test_a_busy_receiver_is_retried_by_the_shared_policy(
    receiver, worker, settings, monkeypatch
) -> None:  # noqa: ANN001
    """Replies and trigger webhooks back off by one function (core.calls)."""
    from core import calls

    settings.AUTOMATIONS_WEBHOOK_ALLOWLIST = ["127.0.0.1/32"]
    receiver.status = 503  # transient: retried
    asked: list[tuple] = []

    def policy(attempts, *, base, cap, retry_after=None):  # noqa: ANN001, ANN202
        asked.append((attempts, base, cap))
        if attempts == 2:
            receiver.status = 200  # the receiver is back for the third try
        return 0.05

    monkeypatch.setattr(calls, "retry_delay", policy)
    _fire(f"http://127.0.0.1:{receiver.server_address[1]}/busy")
    drain(worker, "automations", rounds=4)
    call = WebhookCall.objects.get()
    assert (call.state, call.attempts) == ("succeeded", 3)
    assert asked == [(1, 2.0, 300.0), (2, 2.0, 300.0)]
    assert len(receiver.seen) == 3

    # The replies' retries ask the same function, with their own settings.
    from inbox.tasks import retry_delay

    assert retry_delay(4, 9.0) == 0.05
    assert asked[-1] == (
        4,
        settings.INBOX_REPLY_BACKOFF_SECONDS,
        settings.INBOX_REPLY_BACKOFF_MAX_SECONDS,
    )
