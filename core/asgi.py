"""ASGI entry point: HTTP through Django, websockets through Channels.

Websockets only open for logged-in staff (session auth) on one of our own
hosts (AllowedHostsOriginValidator refuses other origins).

HTTP goes to Django's WSGI handler in a pool thread, one hop per request
(``SyncHTTP``), as a threaded WSGI server would run it: every HTTP view here
is sync, and Django's ASGI handler, which would run them just as well,
starts a thread per request and crosses between it and the event loop
several times (the request signals, the sync-only middleware, the view).
Measured on these machines: 4.9 ms of CPU for a 404 through the ASGI
handler, 1.2 ms through the WSGI one (docs/benchmarks.md, finding 18).
"""

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from tempfile import SpooledTemporaryFile
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
django_wsgi_app = get_wsgi_application()

from asgiref.sync import sync_to_async  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from inbox.consumers import InboxConsumer  # noqa: E402

log = logging.getLogger(__name__)

# Request bodies above this go to a temporary file while they are read.
BODY_IN_MEMORY = 64 * 1024
SERVER_ERROR = (
    500,
    [(b"content-type", b"text/plain; charset=utf-8")],
    b"Internal Server Error",
)


class SyncHTTP:
    """An ASGI app that answers HTTP with a WSGI app, run in a pool thread.

    The request body is read here first; the WSGI app then runs to the end in
    one ``sync_to_async`` call on a pool of ``threads`` (``WEB_THREADS``), so
    requests run side by side as under Django's own handler (one waiting on a
    row lock holds up only its thread) and each thread keeps its own database
    connection. Its response, closed there as WSGI requires (Django sends
    ``request_finished`` then), is sent from the event loop. Responses are
    not streamed: no view here streams.
    """

    def __init__(self, wsgi_app: Any, *, threads: int) -> None:
        self.wsgi_app = wsgi_app
        self.threads = ThreadPoolExecutor(threads, thread_name_prefix="http")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"SyncHTTP cannot serve {scope['type']!r}")
        body = SpooledTemporaryFile(max_size=BODY_IN_MEMORY)
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    body.close()
                    return  # the client left before it finished sending
                body.write(message.get("body", b""))
                if not message.get("more_body"):
                    break
        except BaseException:
            body.close()
            raise
        # From here the thread owns the body and closes it, even if this
        # coroutine is cancelled (daphne gives up on a request) meanwhile.
        respond = sync_to_async(
            self._respond, thread_sensitive=False, executor=self.threads
        )
        status, headers, content = await respond(scope, body)
        start = {"type": "http.response.start", "status": status, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": content})

    def _respond(self, scope: dict, body: Any) -> tuple[int, list, bytes]:
        started: dict[str, Any] = {}

        def start_response(status: str, headers: list, exc_info: Any = None) -> None:
            started["status"] = int(status.split(" ", 1)[0])
            # Django's WSGI handler leaves a space before each cookie's value.
            started["headers"] = [
                (name.lower().encode("latin1"), value.strip().encode("latin1"))
                for name, value in headers
            ]

        response = None
        try:
            length = body.tell()
            body.seek(0)
            response = self.wsgi_app(environ(scope, body, length), start_response)
            content = b"".join(response)
            return started["status"], started["headers"], content
        except Exception:
            # Django turns a view's errors into its own 500; this is for what
            # fails around the view (a request_started receiver, say).
            log.exception("HTTP request failed outside the view")
            return SERVER_ERROR
        finally:
            try:
                if response is not None and hasattr(response, "close"):
                    response.close()
            finally:
                body.close()


def environ(scope: dict, body: Any, length: int | None = None) -> dict[str, Any]:
    """The WSGI environ for an ASGI HTTP scope (PEP 3333; the ASGI spec's mapping).

    As Django's ASGI request reads a scope: repeated headers joined with
    ",", cookies with "; ", names with "_" dropped (they could pose as the
    dashed ones), "unknown" for the server of a unix socket. ``length``: the
    bytes read, for a body sent without Content-Length (chunked), which a
    WSGI request would otherwise read as empty.
    """
    script_name = scope.get("root_path", "")
    path_info = scope["path"]
    if script_name and path_info.startswith(script_name):
        path_info = path_info[len(script_name) :]
    server = scope.get("server") or ("unknown", "0")
    result: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        # WSGI carries the path's UTF-8 bytes as latin-1 text.
        "SCRIPT_NAME": script_name.encode().decode("latin1"),
        "PATH_INFO": path_info.encode().decode("latin1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else 0),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": _Errors(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        result["REMOTE_ADDR"] = scope["client"][0]
        result["REMOTE_PORT"] = str(scope["client"][1])
    for raw_name, raw_value in scope.get("headers", []):
        header = raw_name.decode("latin1")
        if "_" in header:
            continue
        name = header.upper().replace("-", "_")
        if name not in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            name = f"HTTP_{name}"
        value = raw_value.decode("latin1")
        if name == "HTTP_COOKIE":
            value = value.rstrip("; ")
        if name in result:
            glue = "; " if name == "HTTP_COOKIE" else ","
            value = result[name] + glue + value
        result[name] = value
    if "CONTENT_LENGTH" not in result and length:
        result["CONTENT_LENGTH"] = str(length)
    return result


class _Errors:
    """``wsgi.errors``: what a WSGI app writes there goes to the log."""

    def write(self, text: str) -> None:
        log.error(text.rstrip())

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass


http_application = SyncHTTP(django_wsgi_app, threads=settings.WEB_THREADS)

application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/inbox/", InboxConsumer.as_asgi())]))
        ),
    }
)
