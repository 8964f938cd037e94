"""ASGI entry point: HTTP through Django's WSGI handler, websockets through Channels.

Websockets only open for logged-in staff (session auth) on one of our own
hosts (AllowedHostsOriginValidator refuses other origins).

HTTP: every view here is sync, so each request runs Django's WSGI handler in
a pool thread (a2wsgi's ``WSGIMiddleware``, ``WEB_THREADS`` of them), one hop
per request, as a threaded WSGI server would. Django's ASGI handler runs the
same views but crosses between a thread and the event loop several times per
request (measured: 4.9 ms of CPU for a 404 through it, 1.2 ms through the
WSGI one; docs/benchmarks.md, finding 18).

In front of it, ``RequestGuard`` refuses a body above ``WEB_MAX_BODY_BYTES``
before it is read (by its Content-Length, or by counting a chunked one) and
tells ``inbox.live`` which event loop serves the request.
"""

import asyncio
import json
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
django_wsgi_app = get_wsgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from inbox import live  # noqa: E402
from inbox.consumers import InboxConsumer, NavConsumer  # noqa: E402

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class RequestGuard:
    """What every HTTP request passes before Django sees it.

    * A body larger than ``max_body`` is refused with 413 without reading it:
      by its Content-Length at once, or, sent without one (chunked), as soon
      as the count passes the cap. Such a body under the cap is read here and
      handed on with its length, which a WSGI request needs to read it at all.
    * Header names with ``_`` are dropped, as Django's own handlers do: WSGI
      spells ``X-Forwarded-Proto`` and ``X_Forwarded_Proto`` the same way.
      Several Cookie headers become one.
    * ``inbox.live.server_loop`` is set to this event loop; the view's thread
      sees it (a2wsgi runs the view in a copy of this context), so a live
      publish from the view is handed to the loop instead of waiting on Redis.
    """

    # Replies carry the agent's attached files: a larger cap there only.
    UPLOADS = re.compile(r"^/inbox/c/\d+/reply/$")

    def __init__(self, app: Any, *, max_body: int, max_upload: int = 0) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max(max_upload, max_body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"RequestGuard cannot serve {scope['type']!r}")
        if self.UPLOADS.match(scope.get("path", "")):
            cap = self.max_upload
        else:
            cap = self.max_body
        headers = _headers(scope.get("headers", []))
        lengths = [v for k, v in headers if k.lower() == b"content-length"]
        scope = {**scope, "headers": headers}
        live.server_loop.set(asyncio.get_running_loop())
        if lengths:
            try:
                length = int(lengths[0])
            except ValueError:
                await _refuse(send, 400, "Content-Length is not a number")
                return
            if length > cap:
                await _refuse(send, 413, self._too_large(cap))
                return
            await self.app(scope, receive, send)
            return
        # No length given: chunked (or nothing at all, one empty message).
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before it finished sending
            body += message.get("body", b"")
            if len(body) > cap:
                await _refuse(send, 413, self._too_large(cap))
                return
            if not message.get("more_body"):
                break
        headers.append((b"content-length", str(len(body)).encode()))
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()  # only a disconnect can follow
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self, cap: int) -> str:
        return f"the body is larger than {cap} bytes"


def _headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The request's headers without underscored names, cookies in one header.

    Several Cookie headers (HTTP/2 splits them) are one list joined by "; "
    (RFC 9113 8.2.3); a2wsgi would join them with "," as other headers.
    """
    cookies = [v.strip().rstrip(b";").strip() for k, v in raw if k.lower() == b"cookie"]
    headers = [(k, v) for k, v in raw if b"_" not in k and k.lower() != b"cookie"]
    if cookies:
        headers.append((b"cookie", b"; ".join(c for c in cookies if c)))
    return headers


async def _refuse(send: Send, status: int, reason: str) -> None:
    """A JSON error, as the API and the webhook answer theirs; the body is unread."""
    body = json.dumps(
        {"status": "error", "error": {"field": "body", "reason": reason}}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the unread rest must not pose as a request
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


http_application = RequestGuard(
    # Django's handler returns an HttpResponse, an iterable of bytes as WSGI
    # asks; the stubs type it by its class.
    WSGIMiddleware(django_wsgi_app, workers=settings.WEB_THREADS),  # type: ignore[arg-type]
    max_body=settings.WEB_MAX_BODY_BYTES,
    max_upload=settings.WEB_MAX_UPLOAD_BYTES,
)

application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                URLRouter(
                    [
                        path("ws/inbox/", InboxConsumer.as_asgi()),
                        path("ws/nav/", NavConsumer.as_asgi()),
                    ]
                )
            )
        ),
    }
)
