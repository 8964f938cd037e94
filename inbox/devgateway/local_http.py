"""A small threaded HTTP server on 127.0.0.1 that lives inside the test process.

The stub model and the fake Telegram API both build on it: ``start()`` binds
(port 0 picks a free port), serves from a daemon thread and returns the
server; ``stop()`` stops serving and wakes whatever handler is still waiting.
Handlers get JSON helpers and the request's parameters, whichever way the
gateway sent them (query string, JSON, form or multipart body).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

HOST = "127.0.0.1"
# Bodies here are chat messages and small uploads; anything bigger is a bug.
MAX_BODY_BYTES = 32 * 1024 * 1024


class LocalServer:
    """Lifecycle of one in-process HTTP server; subclasses set ``handler_class``.

    ``self.lock`` is a condition guarding the subclass's state; ``stop()``
    notifies it so long-poll handlers return at once.
    """

    handler_class: type[JsonHandler]
    name = "local-http"

    def __init__(self, *, port: int = 0) -> None:
        self.port = port
        self.lock = threading.Condition()
        self.closing = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError(f"{type(self).__name__} has no port until started")
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> LocalServer:
        if self._server is not None:
            return self
        server = _Server((HOST, self.port), self.handler_class, self)
        self.port = server.server_address[1]  # port 0 -> the one we got, kept
        with self.lock:
            self.closing = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"{self.name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is None:
            return
        with self.lock:
            self.closing = True
            self.lock.notify_all()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a long-poll in progress must not hold up stop()
    allow_reuse_address = True  # the dev command reuses its port after a restart

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: LocalServer,
    ) -> None:
        self.owner = owner
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The gateway dropping a connection (its shutdown, a timed-out poll)
        # is expected; real bugs still print.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class JsonHandler(BaseHTTPRequestHandler):
    """Routes every method to ``handle_request(method, path, params)``."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as Node's servers; no delayed-ACK stalls
    server: _Server

    @property
    def owner(self) -> Any:
        return self.server.owner

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the gateway polls constantly; access logs would drown the output

    def do_GET(self) -> None:
        try:
            params = self.read_params()
        except ValueError as exc:
            self.close_connection = True  # the unread body would desync the stream
            self.send_json({"ok": False, "description": str(exc)}, status=400)
            return
        self.handle_request(self.command, urlsplit(self.path).path, params)

    do_POST = do_PUT = do_DELETE = do_GET

    def handle_request(self, method: str, path: str, params: dict[str, Any]) -> None:
        raise NotImplementedError

    def read_params(self) -> dict[str, Any]:
        """Query string and body parameters merged (the body wins)."""
        params: dict[str, Any] = dict(parse_qsl(urlsplit(self.path).query))
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise ValueError("bad Content-Length") from exc
        if length < 0 or length > MAX_BODY_BYTES:
            raise ValueError("bad Content-Length")
        if not length:
            return params
        raw = self.rfile.read(length)
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("JSON body must be an object")
            params.update(body)
        elif "x-www-form-urlencoded" in content_type:
            params.update(parse_qsl(raw.decode()))
        elif "multipart/form-data" in content_type:
            params.update(_multipart_fields(content_type, raw))
        return params

    def send_json(self, payload: Any, *, status: int = 200) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _multipart_fields(content_type: str, raw: bytes) -> dict[str, Any]:
    """Text fields of a multipart body; files are reported by size only."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True) or b""
        if part.get_filename():
            fields[name] = {"filename": part.get_filename(), "bytes": len(payload)}
        else:
            fields[name] = bytes(payload).decode(errors="replace")
    return fields
