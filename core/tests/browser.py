"""Fixtures shared by the Playwright modules, and a signed webhook poster over HTTP.

Daphne serves ``core.asgi:application`` from a thread of the test process, so
the server shares this process's test database (SQLite in embedded mode,
PostgreSQL in production mode) and channel layer (the in-memory one only works
inside one process). Webhooks go over real HTTP to that server, so they are
stored and published by the same process that holds the sockets. The Twisted
reactor cannot be restarted, hence one server per test session.

The root conftest loads this module as a plugin, so the inbox's and the
automations' browser tests share one server. Test modules import ``Inbox``,
``WAIT_MS`` and ``LiveServer`` from ``core.tests.browser``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the ``browser`` fixture skips, or fails under CI
    expect = sync_playwright = None

from core.testing import WEBHOOK_URL, encode, message_event, sign

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# A noisy two-core box: generous, but every wait is bounded.
WAIT_MS = 20_000
# What a browser test module sets as its ``pytestmark``. Sequences restart
# so activity ids follow on from 0 as on a fresh database; after a plain
# flush the first id leaves a hole the consumer waits out.
BROWSER_TEST = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, reset_sequences=True),
]
VIEWPORT = {"width": 1280, "height": 800}

# Runs before any page script: records the URL of every socket htmx opens, so a
# test can wait for the socket of the view it expects, not just any socket.
WATCH_SOCKETS = """
window.__wsOpened = [];
window.__wsClosed = [];
document.addEventListener("htmx:wsOpen", function (e) {
  window.__wsOpened.push(e.detail.event.target.url);
});
document.addEventListener("htmx:wsClose", function (e) {
  window.__wsClosed.push(e.detail.event.code);
});
"""


# --- signed webhooks over HTTP ---------------------------------------------------


@pytest.fixture
def post_to() -> Iterator[Callable[..., dict[str, Any]]]:
    """POST a signed webhook to the server at ``base_url``; return its JSON answer.

    ``post_to("http://127.0.0.1:8001", text="hi")``: the keywords go to
    ``core.testing.message_event``. Any answer but 200 fails the test.
    """
    http = requests.Session()
    http.trust_env = False  # 127.0.0.1 only, never through a proxy

    def send(base_url: str, **fields: Any) -> dict[str, Any]:
        body = encode(message_event(**fields))
        response = http.post(
            f"{base_url}{WEBHOOK_URL}",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-OpenClaw-Signature": sign(body),
            },
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()

    yield send
    http.close()


# --- server ----------------------------------------------------------------------


class LiveServer:
    """Daphne on 127.0.0.1 in a daemon thread running the Twisted reactor."""

    def __init__(self, application: Any) -> None:
        self.application = application
        self.server: Any = None
        self.url = ""
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, name="daphne-live", daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(timeout=30) or self.error is not None:
            raise RuntimeError(f"daphne did not start: {self.error!r}")

    def _run(self) -> None:
        try:
            from daphne.server import Server
            from twisted.internet import reactor

            self.server = Server(
                application=self.application,
                endpoints=["tcp:port=0:interface=127.0.0.1"],
                signal_handlers=False,
            )
            reactor.callLater(0.05, self._wait_for_port)
            self.server.run()
        except BaseException as exc:  # reported to the test thread
            self.error = exc
            self.ready.set()

    def _wait_for_port(self) -> None:
        from twisted.internet import reactor

        if self.server.listening_addresses:
            host, port = self.server.listening_addresses[0]
            self.url = f"http://{host}:{port}"
            self.ready.set()
        else:
            reactor.callLater(0.05, self._wait_for_port)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in the reactor thread and return its result."""
        from twisted.internet import reactor
        from twisted.internet.threads import blockingCallFromThread

        return blockingCallFromThread(reactor, fn)

    def websocket_count(self) -> int:
        from daphne.ws_protocol import WebSocketProtocol

        def count() -> int:
            return sum(
                isinstance(p, WebSocketProtocol) and "disconnected" not in details
                for p, details in self.server.connections.items()
            )

        return self.call(count)

    def drop_websockets(self) -> int:
        """Cut every websocket's TCP connection, as a dead network would."""
        from daphne.ws_protocol import WebSocketProtocol

        def drop() -> int:
            cut = 0
            for protocol, details in list(self.server.connections.items()):
                if (
                    isinstance(protocol, WebSocketProtocol)
                    and "disconnected" not in details
                ):
                    protocol.transport.abortConnection()
                    cut += 1
            return cut

        return self.call(drop)

    def stop(self) -> None:
        from twisted.internet import reactor

        if self.thread.is_alive():
            reactor.callFromThread(reactor.stop)
            self.thread.join(timeout=15)


@pytest.fixture(scope="session")
def daphne_server() -> Iterator[LiveServer]:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from core.asgi import application

    server = LiveServer(ASGIStaticFilesHandler(application))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def post(
    daphne_server: LiveServer, post_to: Callable[..., dict[str, Any]]
) -> Callable[..., dict[str, Any]]:
    """POST a signed webhook over HTTP to the live server; return its JSON answer."""

    def send(**fields: Any) -> dict[str, Any]:
        return post_to(daphne_server.url, **fields)

    return send


# --- browser ---------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true" or os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (CI=true or REQUIRE_BROWSER=1: browser tests must run)")
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Chromium for one test.

    Function-scoped on purpose: the sync API keeps an event loop running in
    this thread while it is started, and Django refuses ORM calls from a thread
    with a running loop (the test database's flush among them), as would any
    pytest-asyncio test that came after. So make users before requesting it,
    and read the database through the server's API while it runs.
    """
    if sync_playwright is None:
        _unavailable("the playwright package is not installed: pip install -e .[test]")
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium")
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000
        )
        yield browser
        browser.close()


class Inbox:
    """One logged-in browser tab plus what it saw go wrong."""

    def __init__(self, page: Any, server: LiveServer, user: Any) -> None:
        self.page = page
        self.server = server
        self.user = user
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.htmx_errors: list[str] = []
        self.csp_violations: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", self._on_console)

    def _on_console(self, message: Any) -> None:
        # htmx logs its errors (a fragment with no target, a bad swap) here,
        # and Chromium what the Content-Security-Policy blocked.
        if message.type == "error" and message.text.startswith("htmx:"):
            self.htmx_errors.append(message.text)
        if "Content Security Policy" in message.text:
            self.csp_violations.append(
                f"{message.text[:80]} ({message.location['url']})"
            )

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def log_in(self) -> None:
        page = self.page
        page.goto(f"{self.server.url}/login/")
        page.fill("#id_username", self.user.username)
        page.fill("#id_password", self.user.raw_password)
        page.click("form.login button[type=submit]")
        page.wait_for_url(re.compile(r"/inbox/$"))
        # Survives any number of live updates, not a reload.
        page.evaluate("window.__notReloaded = true")

    def expect_live(self) -> None:
        expect(self.page.locator("#live-status")).to_have_text("live")

    def wait_for_socket(self, *, conversation: int | None) -> None:
        """Wait until the newest socket htmx opened is for this view, and it is live."""
        wanted = f"conversation={conversation}" if conversation else None
        self.page.wait_for_function(
            """(wanted) => {
              const urls = window.__wsOpened;
              if (!urls.length) return false;
              const last = urls[urls.length - 1];
              return wanted ? last.includes(wanted) : !last.includes("conversation=");
            }""",
            arg=wanted,
            timeout=WAIT_MS,
        )
        self.expect_live()

    def open_conversation(self, pk: int) -> None:
        self.page.click(f"#conv-{pk} a")
        expect(self.page.locator(f"#thread-{pk}")).to_be_visible()
        self.wait_for_socket(conversation=pk)

    def api(self, path: str) -> Any:
        response = self.page.request.get(f"{self.server.url}{path}")
        assert response.ok, response.text()
        return response.json()

    def conversation_id(self, session: str) -> int:
        rows = self.api("/api/conversations/?limit=200")["results"]
        return next(row["id"] for row in rows if row["sessionId"] == session)

    def message_ids(self, session: str) -> dict[str, int]:
        """Gateway message id → our primary key, read through the server."""
        rows = self.api(f"/api/conversations/{session}/messages/?limit=500")["results"]
        return {row["messageId"]: row["id"] for row in rows}

    def assert_healthy(self) -> None:
        assert self.page.evaluate("window.__notReloaded === true"), "the page reloaded"
        self.assert_healthy_but_reloaded()

    def assert_healthy_but_reloaded(self) -> None:
        """No dialog, script, htmx or CSP error, for a test that navigates."""
        assert self.dialogs == [], f"a dialog fired: {self.dialogs}"
        assert self.errors == [], f"page errors: {self.errors}"
        assert self.htmx_errors == [], f"htmx errors: {self.htmx_errors}"
        assert self.csp_violations == [], f"blocked by CSP: {self.csp_violations}"


@pytest.fixture
def open_inbox(
    transactional_db: None, daphne_server: LiveServer, browser: Any
) -> Iterator[Callable[[Any], Inbox]]:
    """``open_inbox(user)``: a fresh tab for ``user`` in a context of its own.

    Each context has its own cookies, so two agents can be logged in at once.
    Make the users before this fixture starts Chromium: see ``browser``.
    """
    contexts: list[Any] = []

    def open_for(user: Any) -> Inbox:
        context = browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        context.set_default_timeout(WAIT_MS)
        context.add_init_script(WATCH_SOCKETS)
        return Inbox(context.new_page(), daphne_server, user)

    try:
        yield open_for
    finally:
        for context in contexts:
            context.close()
        # Let the server see the sockets go before the database is flushed.
        deadline = time.monotonic() + 10
        while daphne_server.websocket_count() and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.fixture
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots for a human to look at, kept under pytest's temporary folder."""
    path = tmp_path_factory.getbasetemp() / "screenshots"
    path.mkdir(exist_ok=True)
    return path
