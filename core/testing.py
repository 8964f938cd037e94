"""Test helpers: keyword-only factories and a signed webhook poster.

Each factory sets only what a test needs; everything else gets a plain default.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

_counter = itertools.count(1)

WEBHOOK_URL = "/api/openclaw/webhook/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(metrics_dir: Path) -> dict[str, str]:
    """The environment for a server process on this test's PostgreSQL database.

    Its transactions commit into the test database (use it from tests marked
    ``django_db(transaction=True)``), and its metrics go to ``metrics_dir``.
    """
    from django.db import connection

    db = connection.settings_dict
    return os.environ | {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }


def wait_until_healthy(port: int, *, timeout: float = 30.0) -> None:
    """Wait for 127.0.0.1:``port`` to answer ``/healthz``; fail after ``timeout``."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                return
        except requests.RequestException:
            # Refused, or accepted into a socket whose server is still starting.
            pass
        assert time.monotonic() < deadline, f"no server answered on port {port}"
        time.sleep(0.2)


def create_user(
    *,
    username: str | None = None,
    password: str = "pw-123456",
    role: str | None = None,
    **extra: Any,
) -> Any:
    """A user; ``role`` is "agent", "lead" or "admin" (a superuser)."""
    from django.contrib.auth.models import Group

    User = get_user_model()
    if role == "admin":
        extra |= {"is_superuser": True, "is_staff": True}
    user = User.objects.create_user(
        username=username or f"agent{next(_counter)}", password=password, **extra
    )
    if role in ("agent", "lead"):
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    user.raw_password = password  # type: ignore[attr-defined]  # for log-in forms
    return user


def session_cookie(user: Any) -> str:
    """The ``Cookie`` header value of a logged-in session for ``user``."""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def session_key(*, chat: str = "telegram", peer: str | None = None) -> str:
    return f"agent:main:{chat}:direct:{peer or next(_counter) + 100_000_000}"


def message_event(
    *,
    session_id: str | None = None,
    message_id: str | int | None = None,
    text: str = "안녕하세요, 주문이 아직 안 왔어요",
    channel: str = "telegram",
    **data: Any,
) -> dict[str, Any]:
    return {
        "event": "message",
        "data": {
            "sessionId": session_id or session_key(chat=channel),
            "channel": channel,
            "senderId": "123456789",
            "senderName": "김민준",
            "messageId": str(message_id if message_id is not None else next(_counter)),
            "text": text,
            **data,
        },
    }


def sign(body: bytes, secret: str | None = None) -> str:
    from inbox.webhooks import sign_openclaw

    return sign_openclaw(body, secret or settings.OPENCLAW_WEBHOOK_SECRETS[0])


def standard_headers(
    body: bytes, *, secret: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    from inbox.webhooks import sign_standard

    msg_id = f"msg_{uuid.uuid4().hex}"
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign_standard(
            msg_id, stamp, body, secret or settings.OPENCLAW_WEBHOOK_SECRETS[0]
        ),
    }


def encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def post_webhook(
    payload: Any = None,
    *,
    body: bytes | None = None,
    client: Client | None = None,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> Any:
    """POST a webhook; signed the seed's way unless told otherwise."""
    if body is None:
        body = encode(payload if payload is not None else message_event())
    all_headers = dict(headers or {})
    if "webhook-signature" not in all_headers and signature != "":
        all_headers["X-OpenClaw-Signature"] = signature or sign(body)
    return (client or Client()).post(
        WEBHOOK_URL, data=body, content_type=content_type, headers=all_headers
    )


def drain(worker: Any, *queues: str, rounds: int = 1, timeout_ms: int = 20_000) -> None:
    """Wait until ``worker`` has done every job on ``queues``, delayed ones too.

    ``rounds``: join again, for jobs that queue more (a retry with a delay, a
    trigger's reply). A queue nothing was ever sent to is skipped.
    """
    import dramatiq

    broker = dramatiq.get_broker()
    for _ in range(rounds):
        for queue in queues:
            if queue in broker.get_declared_queues():
                broker.join(queue, timeout=timeout_ms)
        worker.join()


def wait_for(check: Any, seconds: float = 10, what: str = "") -> Any:
    """Poll ``check()`` until it is truthy (returned) or ``seconds`` pass (fail)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what or check}")


def post_action(client: Any, conversation: Any, action: str, **body: Any) -> Any:
    """``POST /api/conversations/<session>/<action>/`` with a JSON ``body``."""
    return client.post(
        f"/api/conversations/{conversation.session_id}/{action}/",
        body,
        content_type="application/json",
    )


def post_reply(user: Any, conversation: Any, text: str) -> Any:
    """An agent's reply through the view, as the composer posts it; the message."""
    from inbox.models import Message

    client = Client()
    client.force_login(user)
    response = client.post(
        f"/inbox/c/{conversation.pk}/reply/",
        {"text": text},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200, response.content
    return Message.objects.filter(author="agent").latest("pk")


def start_connector(url: str | None = None, token: str | None = None) -> Any:
    """The gateway connector on a thread of its own, once it reads the live feed."""
    from inbox.connector import Connector, ConnectorThread

    thread = ConnectorThread(Connector(url, token))
    thread.start()
    wait_for(lambda: thread.connector.state == "live", 30, "the connector")
    return thread


def metric(text: str, line_start: str) -> float:
    """The value of the first ``/metrics`` line starting with ``line_start`` (0)."""
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@contextlib.contextmanager
def conversation_row_held(session_id: str) -> Iterator[threading.Event]:
    """Hold the conversation's row lock from another thread (PostgreSQL), as a
    slow transaction would, until the yielded event is set or the block ends."""
    from django.db import close_old_connections, transaction

    from inbox.models import Conversation

    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                Conversation.objects.select_for_update().get(session_id=session_id)
                locked.set()
                release.wait(timeout=30)
        finally:
            close_old_connections()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(timeout=10), "the row was never locked"
        yield release
    finally:
        release.set()
        holder.join(timeout=30)


def wait_for_a_lock_wait(seconds: float = 10) -> None:
    """Until PostgreSQL shows a session of this database waiting on a lock.

    Closes this thread's connection when done (it may be a worker thread's,
    which the test database must not outlive)."""
    from django.db import connections

    deadline = time.monotonic() + seconds
    try:
        with connections["default"].cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
                if cursor.fetchone()[0]:
                    return
                time.sleep(0.02)
        raise AssertionError("nothing ever waited on the row lock")
    finally:
        connections["default"].close()


def create_monitor(*, url: str, **fields: Any) -> Any:
    """A website monitor of ``url`` (due now, every 60 minutes, whole page)."""
    from monitors.models import Monitor

    return Monitor.objects.create(
        name=fields.pop("name", "Product page"), url=url, **fields
    )
