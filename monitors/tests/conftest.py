"""Fixtures for the monitors' tests: a web page on 127.0.0.1 whose content the
test changes, and the settings that let a monitor read it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class PageServer:
    """``http://127.0.0.1:<port>/…`` answering ``html`` (changeable) with ``status``."""

    def __init__(self) -> None:
        self.html = "<html><body><h1>Hello</h1></body></html>"
        self.status = 200
        self.requests = 0
        page = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                page.requests += 1
                body = page.html.encode()
                self.send_response(page.status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/product"

    def start(self) -> PageServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def page() -> Iterator[PageServer]:
    server = PageServer().start()
    yield server
    server.stop()


@pytest.fixture
def allow_loopback(settings: Any) -> Any:
    """Monitors may read 127.0.0.1 (the test page): allowlisted, as an
    operator would allowlist an internal address on purpose."""
    settings.AUTOMATIONS_WEBHOOK_ALLOWLIST = ["127.0.0.1/32"]
    return settings
