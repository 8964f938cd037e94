"""The key inbox flows in a real browser: Chromium against the real ASGI app.

Daphne serves ``core.asgi:application`` from a thread of the test process, so
the server shares this process's test database (SQLite in memory in embedded
mode, reached through its shared-cache URI) and channel layer (the in-memory
one only works inside one process). Webhooks go over real HTTP to that server,
so they are stored and published by the same process that holds the sockets.
The Twisted reactor cannot be restarted, hence one server per test session.
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

from core.testing import (
    WEBHOOK_URL,
    create_user,
    encode,
    message_event,
    session_key,
    sign,
)
from inbox import live

# Sequences restart so activity ids follow on from 0 as on a fresh database;
# after a plain flush the first id leaves a hole the consumer waits out.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, reset_sequences=True),
]

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
XSS = "<img src=x onerror=alert(1)>"

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
    pytest-asyncio test that came after.
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
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

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
        assert self.dialogs == [], f"a dialog fired: {self.dialogs}"
        assert self.errors == [], f"page errors: {self.errors}"


@pytest.fixture
def agent(transactional_db: None) -> Any:
    # Made before Chromium starts: see ``browser``.
    return create_user(is_staff=True)


@pytest.fixture
def inbox(agent: Any, daphne_server: LiveServer, browser: Any) -> Iterator[Inbox]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(WATCH_SOCKETS)
    page = context.new_page()
    try:
        yield Inbox(page, daphne_server, agent)
    finally:
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


@pytest.fixture
def post(daphne_server: LiveServer) -> Iterator[Callable[..., dict[str, Any]]]:
    """POST a signed webhook over HTTP to the live server; return its JSON answer."""
    http = requests.Session()
    http.trust_env = False  # 127.0.0.1 only, never through a proxy

    def send(**fields: Any) -> dict[str, Any]:
        body = encode(message_event(**fields))
        response = http.post(
            f"{daphne_server.url}{WEBHOOK_URL}",
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


def row_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#conversation-list > li.conversation", "rows => rows.map(r => r.id)"
    )


# --- tests -----------------------------------------------------------------------


def test_new_conversation_appears_live_with_its_text_escaped(
    inbox: Inbox, post: Callable[..., dict[str, Any]], screenshots: Path
) -> None:
    page = inbox.page
    older = session_key()
    post(session_id=older, text="an older conversation")
    inbox.log_in()
    older_id = inbox.conversation_id(older)
    assert row_ids(page) == [f"conv-{older_id}"]
    inbox.wait_for_socket(conversation=None)

    newer = session_key()
    post(session_id=newer, text=XSS)
    new_id = inbox.conversation_id(newer)
    row = page.locator(f"#conv-{new_id}")
    expect(row).to_be_visible()
    assert row_ids(page) == [f"conv-{new_id}", f"conv-{older_id}"]
    assert XSS in row.inner_text()
    expect(page.locator(f"#unread-{new_id}")).to_have_text("1")

    # The thread, swapped in by htmx, shows the same text as text.
    inbox.open_conversation(new_id)
    expect(page.locator(f"#thread-{new_id} .text")).to_have_text(XSS)

    page.wait_for_timeout(500)  # an onerror handler would have fired by now
    assert page.locator("#conversation-list img, #thread-pane img").count() == 0
    inbox.assert_healthy()
    page.mouse.move(0, 0)  # no hover highlight in the picture
    page.screenshot(path=screenshots / "test1-new-conversation.png", full_page=True)


def test_open_thread_grows_live_and_only_other_badges_count_up(
    inbox: Inbox, post: Callable[..., dict[str, Any]]
) -> None:
    page = inbox.page
    opened, other = session_key(), session_key()
    post(session_id=opened, message_id="a1", text="first in the opened one")
    post(session_id=other, message_id="b1", text="first in the other one")
    inbox.log_in()
    a, b = inbox.conversation_id(opened), inbox.conversation_id(other)
    inbox.wait_for_socket(conversation=None)
    inbox.open_conversation(a)
    thread = page.locator(f"#thread-{a} > li.message")
    badge_a, badge_b = page.locator(f"#unread-{a}"), page.locator(f"#unread-{b}")
    expect(thread).to_have_count(1)
    expect(badge_b).to_have_text("1")

    post(session_id=opened, message_id="a2", text="second in the opened one")
    expect(thread).to_have_count(2)
    expect(thread.last).to_contain_text("second in the opened one")
    expect(badge_a).to_be_hidden()
    assert row_ids(page)[0] == f"conv-{a}"

    for count, text in ((2, "second in the other one"), (3, "third in the other one")):
        post(session_id=other, message_id=f"b{count}", text=text)
        expect(badge_b).to_have_text(str(count))
        expect(badge_b).to_be_visible()
        expect(page.locator(f"#conv-{b} .preview")).to_have_text(text)
        expect(badge_a).to_be_hidden()
    assert row_ids(page)[:2] == [f"conv-{b}", f"conv-{a}"]

    post(session_id=opened, message_id="a3", text="third in the opened one")
    expect(thread).to_have_count(3)
    expect(badge_a).to_be_hidden()
    expect(badge_b).to_have_text("3")
    ids = inbox.message_ids(opened)
    assert page.eval_on_selector_all(
        f"#thread-{a} > li.message", "items => items.map(i => i.id)"
    ) == [f"msg-{ids[g]}" for g in ("a1", "a2", "a3")]
    expect(page.locator(f"#thread-{a}")).not_to_contain_text("in the other one")
    inbox.assert_healthy()

    # What the stream built is what a fresh page shows (the read marks were stored).
    page.reload()
    expect(page.locator(f"#unread-{a}")).to_be_hidden()
    expect(page.locator(f"#unread-{b}")).to_have_text("3")
    expect(page.locator(f"#thread-{a} > li.message")).to_have_count(3)


def test_opening_a_conversation_hides_its_unread_badge(
    inbox: Inbox, post: Callable[..., dict[str, Any]]
) -> None:
    inbox.log_in()
    inbox.wait_for_socket(conversation=None)
    # Arrives live, so the page's sequence number is past it: nothing replays it.
    session = session_key()
    post(session_id=session, text="unread until opened")
    pk = inbox.conversation_id(session)
    expect(inbox.page.locator(f"#unread-{pk}")).to_have_text("1")
    inbox.open_conversation(pk)
    expect(inbox.page.locator(f"#unread-{pk}")).to_be_hidden(timeout=5_000)


def test_open_conversation_stays_selected_when_a_message_moves_it_up(
    inbox: Inbox, post: Callable[..., dict[str, Any]]
) -> None:
    opened, other = session_key(), session_key()
    post(session_id=opened, message_id="a1", text="opened")
    post(session_id=other, message_id="b1", text="other")
    inbox.log_in()
    a = inbox.conversation_id(opened)
    inbox.wait_for_socket(conversation=None)
    inbox.open_conversation(a)
    row = inbox.page.locator(f"#conv-{a}")
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    post(session_id=opened, message_id="a2", text="moves it up")
    expect(inbox.page.locator(f"#thread-{a} > li.message")).to_have_count(2)
    assert row_ids(inbox.page)[0] == f"conv-{a}"
    expect(row).to_have_class(re.compile(r"\bselected\b"), timeout=5_000)


def test_message_arriving_while_a_conversation_opens_reaches_its_thread(
    inbox: Inbox, post: Callable[..., dict[str, Any]]
) -> None:
    page = inbox.page
    session = session_key()
    post(session_id=session, message_id="1", text="already there")
    inbox.log_in()
    pk = inbox.conversation_id(session)
    inbox.wait_for_socket(conversation=None)

    # Hold the rendered thread back, as a slow network would ...
    held: list[tuple[Any, Any]] = []
    page.route(f"**/inbox/c/{pk}/", lambda route: held.append((route, route.fetch())))
    page.click(f"#conv-{pk} a")
    deadline = time.monotonic() + WAIT_MS / 1000
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "the thread was never requested"
    # ... while a message arrives and the list's socket applies it.
    post(session_id=session, message_id="2", text="arrived while opening")
    expect(page.locator(f"#conv-{pk} .preview")).to_have_text("arrived while opening")
    route, response = held[0]
    route.fulfill(response=response)

    inbox.wait_for_socket(conversation=pk)
    expect(page.locator(f"#thread-{pk} > li.message")).to_have_count(2, timeout=5_000)


def test_messages_sent_while_the_socket_is_down_arrive_once_after_reconnect(
    inbox: Inbox, post: Callable[..., dict[str, Any]], screenshots: Path
) -> None:
    page = inbox.page
    opened, other = session_key(), session_key()
    post(session_id=opened, message_id="a1", text="before the drop")
    post(session_id=other, message_id="b1", text="the other conversation")
    inbox.log_in()
    a, b = inbox.conversation_id(opened), inbox.conversation_id(other)
    inbox.wait_for_socket(conversation=None)
    inbox.open_conversation(a)
    thread = page.locator(f"#thread-{a} > li.message")
    expect(thread).to_have_count(1)
    assert row_ids(page) == [f"conv-{b}", f"conv-{a}"]
    status = page.locator("#live-status")

    # The network goes: Chromium's offline mode refuses new connections but
    # leaves an open websocket alone, so the server also cuts the live one.
    page.context.set_offline(True)
    try:
        assert inbox.server.drop_websockets() >= 1
        expect(status).to_have_text("reconnecting…")
        missed = [f"missed {i}" for i in range(1, 4)]
        for i, text in enumerate(missed, start=2):
            post(session_id=opened, message_id=f"a{i}", text=text)
        # Down for longer than the grace a socket without a resume point gets,
        # so only resuming from the page's sequence number brings these back.
        page.wait_for_timeout((live.GAP_GRACE.total_seconds() + 1) * 1000)
        expect(status).to_have_text("reconnecting…")
        expect(thread).to_have_count(1)
    finally:
        page.context.set_offline(False)

    expect(status).to_have_text("live")
    expect(thread).to_have_count(4)
    page.wait_for_timeout(1_500)  # a late duplicate would show up by now
    ids = inbox.message_ids(opened)
    for gateway_id in ("a2", "a3", "a4"):
        assert page.locator(f'[id="msg-{ids[gateway_id]}"]').count() == 1
    assert page.eval_on_selector_all(
        f"#thread-{a} > li.message", "items => items.map(i => i.id)"
    ) == [f"msg-{ids[f'a{i}']}" for i in range(1, 5)]
    expect(thread.last).to_contain_text("missed 3")
    assert row_ids(page) == [f"conv-{a}", f"conv-{b}"]
    expect(page.locator(f"#conv-{a} .preview")).to_have_text("missed 3")
    expect(page.locator(f"#unread-{a}")).to_be_hidden()
    expect(page.locator(f"#unread-{b}")).to_have_text("1")
    expect(status).to_have_text("live")
    inbox.assert_healthy()
    page.mouse.move(0, 0)  # no hover highlight in the picture
    page.screenshot(path=screenshots / "test3-after-reconnect.png", full_page=True)
