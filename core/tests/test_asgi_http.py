"""HTTP through ``core.asgi.application``: RequestGuard, then Django's WSGI
handler on a2wsgi's thread pool.

Driven as the server drives it, with ASGI messages: the request body in
pieces, the response as ``http.response.start`` and ``http.response.body``.
"""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.core.signals import request_finished

from core.asgi import RequestGuard, application
from core.testing import WEBHOOK_URL, create_user, encode, message_event, sign
from inbox.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


def _call(path: str, **options: object) -> tuple[int, dict[bytes, bytes], bytes]:
    return async_to_sync(_acall)(path, **options)


async def _acall(
    path: str,
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    chunk: int = 16 * 1024,
    content_length: bool = True,
    app: object = application,
) -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    if body and content_length:  # without it: a chunked body
        scope["headers"].append((b"content-length", str(len(body)).encode()))
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    incoming = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1}
        for i, piece in enumerate(pieces)
    ]
    sent: list[dict] = []
    _received[:] = []

    async def receive() -> dict:
        if not incoming:  # all of it read: only the client leaving can follow
            await asyncio.sleep(3600)
        _received.append(incoming[0])
        return incoming.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, *body_messages = sent
    assert start["type"] == "http.response.start"
    assert all(m["type"] == "http.response.body" for m in body_messages)
    assert not body_messages[-1].get("more_body")
    _last_headers[:] = start["headers"]
    content = b"".join(m.get("body", b"") for m in body_messages)
    return start["status"], dict(start["headers"]), content


_last_headers: list[tuple[bytes, bytes]] = []  # as sent, repeated ones too
_received: list[dict] = []  # the request's messages the app asked for
BODY_IN_MEMORY = 64 * 1024


async def _apost_webhook(
    body: bytes, **options: object
) -> tuple[int, dict[bytes, bytes], bytes]:
    """A signed webhook through the app, as the gateway would send it."""
    headers = [
        (b"content-type", b"application/json"),
        (b"x-openclaw-signature", sign(body).encode()),
    ]
    return await _acall(
        WEBHOOK_URL, method="POST", body=body, headers=headers, **options
    )


def _post_webhook(body: bytes, **options: object) -> tuple[int, dict, bytes]:
    return async_to_sync(_apost_webhook)(body, **options)


def test_a_webhook_larger_than_the_in_memory_buffer_arrives_whole() -> None:
    # The signature covers every byte: one lost or reordered piece is a 401.
    text = "환불 " * (BODY_IN_MEMORY // 4)
    body = encode(message_event(text=text[:15_000], padding="x" * BODY_IN_MEMORY))
    assert len(body) > BODY_IN_MEMORY
    status, headers, content = _post_webhook(body)
    assert status == 200, content
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(content)["status"] == "stored"
    assert Message.objects.get().text == text[:15_000]


def test_a_chunked_webhook_without_content_length_is_read_whole() -> None:
    body = encode(message_event(text="청크로 보낸 메시지"))
    status, _, content = _post_webhook(body, chunk=100, content_length=False)
    assert status == 200, content
    assert Message.objects.get().text == "청크로 보낸 메시지"


def test_cookies_are_set_one_header_each_without_a_leading_space() -> None:
    # Logging in sets two cookies (a new session and a rotated CSRF token):
    # each must be its own Set-Cookie header, as WSGI lists them.
    from urllib.parse import urlencode

    create_user(username="cookie-jar", password="pw-123456", role="agent")
    status, _, _ = _call("/login/")
    assert status == 200
    token = next(
        v.split(b";")[0].split(b"=", 1)[1]
        for name, v in _last_headers
        if name == b"set-cookie"
    )
    body = urlencode(
        {
            "username": "cookie-jar",
            "password": "pw-123456",
            "csrfmiddlewaretoken": token,
        }
    ).encode()
    status, _, _ = _call(
        "/login/",
        method="POST",
        body=body,
        headers=[
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"cookie", b"csrftoken=" + token),
        ],
    )
    assert status == 302
    cookies = [value for name, value in _last_headers if name == b"set-cookie"]
    assert sorted(c.split(b"=")[0] for c in cookies) == [b"csrftoken", b"sessionid"]
    assert not any(c.startswith(b" ") for c in cookies), cookies


def test_every_request_is_closed_so_django_finishes_it() -> None:
    # request_finished is where Django gives its database connection back.
    finished: list[object] = []

    def count(**kwargs: object) -> None:
        finished.append(kwargs)

    request_finished.connect(count)
    try:
        for _ in range(3):
            status, _, content = _call("/healthz")
            assert status == 200 and json.loads(content)["status"] == "ok"
    finally:
        request_finished.disconnect(count)
    assert len(finished) == 3


def test_a_session_cookie_among_others_logs_the_agent_in() -> None:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    user = create_user(username="alice", role="agent")
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    cookies = [
        (b"cookie", b"theme=dark; "),
        (b"cookie", f"sessionid={store.session_key}".encode()),
    ]
    status, _, content = _call("/inbox/", headers=cookies)
    assert status == 200
    assert b"alice" in content
    status, headers, _ = _call("/inbox/")
    assert status == 302 and headers[b"location"].startswith(b"/login/")


def _environ_of(scope_headers: list, **scope: object) -> dict:
    """What Django's WSGI handler would be given, through the shipped stack."""
    from a2wsgi import WSGIMiddleware

    seen: dict = {}

    def app(environ: dict, start_response: object) -> list[bytes]:
        seen.update(environ, body=environ["wsgi.input"].read())
        start_response("204 No Content", [])
        return []

    guarded = RequestGuard(WSGIMiddleware(app, workers=1), max_body=1000)
    _call("/", app=guarded, headers=scope_headers, **scope)
    return seen


def test_the_environ_follows_pep_3333() -> None:
    result = _environ_of(
        [
            (b"content-type", b"application/json"),
            (b"accept", b"text/html"),
            (b"accept", b"application/json"),
            (b"x-forwarded-for", b"203.0.113.9"),
        ],
        method="POST",
        body=b"{}",
    )
    assert result["CONTENT_TYPE"] == "application/json"
    assert result["CONTENT_LENGTH"] == "2"
    assert "HTTP_CONTENT_TYPE" not in result
    assert result["HTTP_ACCEPT"] == "text/html,application/json"
    assert result["HTTP_X_FORWARDED_FOR"] == "203.0.113.9"
    assert result["REMOTE_ADDR"] == "127.0.0.1"
    assert result["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert result["body"] == b"{}"


def test_underscored_headers_are_dropped_and_a_chunked_body_gets_its_length() -> None:
    result = _environ_of(
        [
            (b"x-forwarded-proto", b"http"),
            (b"x_forwarded_proto", b"https"),  # could pose as the dashed one
        ],
        method="POST",
        body=b"x" * 120,
        chunk=50,
        content_length=False,
    )
    assert result["HTTP_X_FORWARDED_PROTO"] == "http"
    # A chunked body: its length as read, which Django needs to read it.
    assert result["CONTENT_LENGTH"] == "120"
    assert result["body"] == b"x" * 120


def test_a_body_declared_too_large_is_refused_before_any_of_it_is_read() -> None:
    status, headers, content = _call(
        "/login/",
        method="POST",
        headers=[(b"content-length", b"314572800")],  # 300 MB, never sent
    )
    assert status == 413
    assert headers[b"content-type"] == b"application/json"
    assert "larger than" in json.loads(content)["error"]["reason"]
    assert _received == []  # not one byte of the body was asked for


def test_a_chunked_body_is_read_only_up_to_the_cap() -> None:
    from django.conf import settings

    cap = settings.WEB_MAX_BODY_BYTES
    body = b"x" * (cap * 4)
    status, _, content = _post_webhook(body, chunk=64 * 1024, content_length=False)
    assert status == 413, content
    read = sum(len(m["body"]) for m in _received)
    assert cap < read <= cap + 64 * 1024  # stopped at the first piece past it
    assert Message.objects.count() == 0


def test_a_malformed_content_length_is_a_400() -> None:
    status, _, content = _call(
        "/api/openclaw/webhook/", method="POST", headers=[(b"content-length", b"ten")]
    )
    assert status == 400
    assert "Content-Length" in json.loads(content)["error"]["reason"]


@pytest.mark.postgres
def test_a_request_waiting_on_a_row_lock_does_not_hold_up_the_others() -> None:
    """Requests run side by side in pool threads, as under Django's own handler."""
    from core.testing import (
        conversation_row_held,
        post_webhook,
        session_key,
        wait_for_a_lock_wait,
    )

    session = session_key()
    post_webhook(message_event(session_id=session, text="first"))
    body = encode(message_event(session_id=session, text="second"))
    with conversation_row_held(session) as release:

        async def both() -> tuple[bool, int]:
            # Both on one event loop, as daphne serves them.
            webhook = asyncio.ensure_future(_apost_webhook(body))
            await asyncio.to_thread(wait_for_a_lock_wait)
            status, _, _ = await asyncio.wait_for(_acall("/healthz"), timeout=10)
            waiting = not webhook.done()
            release.set()
            await webhook
            return waiting, status

        waiting, health = asyncio.run(both())
    assert health == 200
    assert waiting, "the webhook should still have been waiting on the lock"
    assert Message.objects.filter(text="second").count() == 1


def test_only_the_reply_form_may_carry_files_larger_than_the_body_cap() -> None:
    from django.conf import settings

    size = str(settings.WEB_MAX_BODY_BYTES + 1000).encode()
    header = [(b"content-length", size)]
    assert _call("/inbox/c/1/contact/", method="POST", headers=header)[0] == 413
    assert _call("/inbox/c/1/reply/x", method="POST", headers=header)[0] == 413
    over = str(settings.WEB_MAX_UPLOAD_BYTES + 1).encode()
    status, _, content = _call(
        "/inbox/c/1/reply/", method="POST", headers=[(b"content-length", over)]
    )
    assert status == 413 and str(settings.WEB_MAX_UPLOAD_BYTES).encode() in content
