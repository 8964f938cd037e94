"""Two agents on one conversation, each in a browser of their own.

Alice and Bob log in through the login form in two browser contexts (two
cookie jars) and open the conversation a customer's signed webhook started.
Alice takes over; Bob's page follows live and the server refuses him. Alice's
reply goes through a real Dramatiq worker to the simulated gateway's RPC, and
the connector reads its echo in the transcript as "delivered".
The shared fixtures (server, browser, tabs, webhook poster) are in
``core/tests/browser.py``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.testing import create_user, drain, session_key
from core.tests.browser import BROWSER_TEST, WAIT_MS, Inbox, LiveServer, expect
from inbox import gateway as gateway_module
from inbox.connector import Connector, ConnectorThread
from inbox.models import Message
from inbox.simulated_gateway import GatewayServer

pytestmark = BROWSER_TEST

State = Message.DeliveryState
# What a reply's state reads on screen, in the order it must go.
REPLY_STATES = [
    State.QUEUED.label, State.SENDING.label, State.SENT.label, State.DELIVERED.label
]  # fmt: skip
NOTE_BACKGROUND = "rgb(255, 248, 219)"  # .message.kind-note .bubble in inbox.css

# Run in a page: from now on, note the state every agent reply is drawn with.
# A live update replaces the reply's <li> whole, so each state is one added node,
# however briefly it is on screen.
RECORD_REPLY_STATES = """() => {
  window.__replyStates = [];
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node.nodeType !== Node.ELEMENT_NODE) continue;
        const items = node.matches("li.message.author-agent")
          ? [node] : node.querySelectorAll("li.message.author-agent");
        for (const li of items) {
          const state = li.querySelector(".state");
          if (state) window.__replyStates.push([li.id, state.textContent]);
        }
      }
    }
  }).observe(document.body, { childList: true, subtree: true });
}"""


class ReceiptsOnCue(GatewayServer):
    """The simulated gateway, holding the echoes of our replies until ``release``.

    The echo (the reply written back into the transcript) is what the
    connector reads as "delivered"; left alone it arrives within milliseconds,
    and "Sent" would be on screen too briefly to look at.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.release = threading.Event()
        self.echo_gate = self.release


@pytest.fixture
def gateway(settings: Any, daphne_server: LiveServer) -> Iterator[ReceiptsOnCue]:
    """A simulated gateway and its connector, storing into the live server's
    database."""
    server = ReceiptsOnCue(token="test-gateway-token").start()
    settings.OPENCLAW_GATEWAY_URL = server.url
    settings.OPENCLAW_GATEWAY_TOKEN = server.token
    gateway_module.reset_client()
    connector = ConnectorThread(Connector(server.url, server.token))
    connector.start()
    try:
        yield server
    finally:
        server.release.set()  # an echo still held ends without a push
        connector.stop()
        server.stop()
        gateway_module.reset_client()


# Made before Chromium starts: see ``browser``. Request these before ``open_inbox``.
@pytest.fixture
def alice(transactional_db: None) -> Any:
    return create_user(role="agent", username="alice")


@pytest.fixture
def bob(transactional_db: None) -> Any:
    return create_user(role="agent", username="bob")


def both_open(a: Inbox, b: Inbox, pk: int) -> None:
    for tab in (a, b):
        tab.wait_for_socket(conversation=None)
        tab.open_conversation(pk)


class FrameGate:
    """Relays a page's websocket frames from the server, or holds them back.

    Install with ``page.route_web_socket`` before the page opens its socket.
    Playwright calls ``_from_server`` only while the test thread is inside a
    Playwright call, so wait for frames with ``page.wait_for_timeout``.
    """

    def __init__(self) -> None:
        self.holding = False
        self.held: list[tuple[Any, str | bytes]] = []

    def route(self, socket: Any) -> None:
        server = socket.connect_to_server()
        server.on_message(lambda message: self._from_server(socket, message))

    def _from_server(self, socket: Any, message: str | bytes) -> None:
        if self.holding:
            self.held.append((socket, message))
        else:
            socket.send(message)

    def wait_for_held(self, page: Any, fragment: str) -> None:
        deadline = time.monotonic() + WAIT_MS / 1000
        while not any(fragment in str(message) for _, message in self.held):
            assert time.monotonic() < deadline, f"no frame with {fragment!r} held"
            page.wait_for_timeout(50)

    def release(self) -> None:
        self.holding = False
        held, self.held = self.held, []
        for socket, message in held:
            socket.send(message)


# --- tests -----------------------------------------------------------------------


def test_take_over_reply_and_note_as_two_agents_see_them(
    alice: Any,
    bob: Any,
    open_inbox: Callable[[Any], Inbox],
    post: Callable[..., dict[str, Any]],
    worker: Any,
    gateway: ReceiptsOnCue,
    screenshots: Path,
) -> None:
    session = session_key()
    post(session_id=session, text="배송 언제 와요? Where is my order #4471?")
    a, b = open_inbox(alice), open_inbox(bob)
    a.log_in()
    b.log_in()
    pk = a.conversation_id(session)
    both_open(a, b, pk)
    a_header = a.page.locator("#conversation-header")
    b_header = b.page.locator("#conversation-header")
    expect(b_header).to_have_attribute("data-status", "bot")
    expect(b.page.locator(f"#presence-{pk}")).to_have_text("Also here: alice")

    # Alice takes over ...
    a.page.click("#conversation-header button.take-over")
    expect(a_header).to_have_attribute("data-status", "human")
    expect(a_header).to_have_attribute("data-mine", "yes")
    expect(a_header.locator(".owner")).to_contain_text("Owned by alice")

    # ... and Bob's page follows, without a reload: alice owns it, the owner's
    # actions are gone and there is nothing left to take over.
    expect(b_header).to_have_attribute("data-status", "human")
    expect(b_header).to_have_attribute("data-owner-id", str(alice.pk))
    expect(b_header).to_have_attribute("data-mine", "no")
    expect(b_header.locator(".owner")).to_contain_text("Owned by alice")
    expect(b_header.locator("button.take-over")).to_have_count(0)
    for actions in b_header.locator(".owner-actions").all():
        expect(actions).to_be_hidden()
    expect(b.page.locator(f"#thread-{pk} > li.audit").last).to_contain_text(
        "alice took over"
    )
    b.page.screenshot(path=screenshots / "takeover-1-bob-sees-alice-owns-it.png")

    # Bob's composer says so before he types: notes only, and a way to take
    # it over. What he writes is an internal note, never sent.
    owner_line = b.page.locator("#composer-owner")
    expect(owner_line).to_be_visible()
    expect(owner_line).to_contain_text("Owned by alice")
    expect(owner_line.get_by_role("button", name="Take over")).to_be_visible()
    expect(b.page.locator("#composer button[type=submit]")).to_have_text("Add note")
    expect(b.page.locator("#composer")).to_have_class(re.compile(r"\bas-note\b"))
    b_text = b.page.locator("#reply-text")
    b_text.fill("bob: I handled this customer last week")
    b_text.press("Enter")
    bobs = a.page.locator(
        f"#thread-{pk} > li.message", has_text="handled this customer"
    )
    expect(bobs).to_have_class(re.compile(r"\bkind-note\b"))
    expect(b.page.locator("#composer .error")).to_have_count(0)
    expect(
        b.page.locator(f"#thread-{pk} > li.message.author-agent.kind-text")
    ).to_have_count(0)
    # Alice's own composer is a normal one.
    expect(a.page.locator("#composer-owner")).to_be_hidden()
    expect(a.page.locator("#composer button[type=submit]")).to_have_text("Send")

    # While Alice types, Bob sees it.
    reply = "환불 처리해 드렸어요. Refund issued, 3-5 days."
    a.page.evaluate(RECORD_REPLY_STATES)
    a_text = a.page.locator("#reply-text")
    a_text.press_sequentially(reply, delay=15)
    expect(b.page.locator(f"#typing-{pk}")).to_have_text("alice is typing a reply…")
    b.page.screenshot(path=screenshots / "takeover-2-bob-sees-alice-typing.png")

    # Enter sends: queued, sending, sent (the receipt is held back) ...
    a_text.press("Enter")
    mine = a.page.locator(f"#thread-{pk} > li.message.author-agent", has_text=reply)
    expect(mine).to_have_count(1)
    expect(mine.locator(".state")).to_have_text(str(State.SENT.label))
    expect(mine).to_have_class(re.compile(r"\bstate-sent\b"))
    a.page.screenshot(path=screenshots / "takeover-3-alice-reply-sent.png")
    # ... then the gateway's echo of it says delivered.
    gateway.release.set()
    expect(mine.locator(".state")).to_have_text(str(State.DELIVERED.label))
    expect(mine).to_have_class(re.compile(r"\bstate-delivered\b"))
    item_id = mine.get_attribute("id")
    seen = [
        text for key, text in a.page.evaluate("window.__replyStates") if key == item_id
    ]
    # In order of first appearance (a frame replayed after a reconnect may
    # draw a state again, idempotently).
    assert list(dict.fromkeys(seen)) == REPLY_STATES, seen
    expect(b.page.locator(f"#{item_id} .state")).to_have_text(
        str(State.DELIVERED.label)
    )

    # The gateway got it exactly once, under the reply's own id.
    [sent] = gateway.received
    assert (sent.kind, sent.session_key, sent.text) == ("send", session, reply)
    assert a.message_ids(session)[sent.idempotency_key] == int(item_id.split("-")[1])

    # An internal note shows in Bob's thread as a note, and never leaves.
    note = "Charged twice: refund approved, watch for a chargeback."
    a.page.check("#reply-note")
    expect(a.page.locator("#composer")).to_have_class(re.compile(r"\bas-note\b"))
    a_text = a.page.locator("#reply-text")
    a_text.fill(note)
    a_text.press("Enter")
    theirs = b.page.locator(f"#thread-{pk} > li.message", has_text=note)
    expect(theirs).to_have_class(re.compile(r"\bkind-note\b"))
    expect(theirs.locator(".note-label")).to_have_text("Internal note · staff only")
    expect(theirs.locator(".bubble")).to_have_css("background-color", NOTE_BACKGROUND)
    expect(theirs.locator(".state")).to_have_count(0)
    b.page.mouse.move(0, 0)  # no hover highlight in the picture
    b.page.screenshot(path=screenshots / "takeover-4-bob-sees-the-note.png")

    drain(worker, "replies", timeout_ms=WAIT_MS)  # every job for the gateway
    assert [(r.kind, r.text) for r in gateway.received] == [("send", reply)]

    # Bob takes it from Alice with his composer's button: his page showed her
    # as the owner, so it is his now, and both pages follow.
    b.page.locator("#composer-owner").get_by_role("button", name="Take over").click()
    expect(b_header).to_have_attribute("data-owner-id", str(bob.pk))
    expect(b.page.locator("#composer-owner")).to_be_hidden()
    expect(b.page.locator("#composer button[type=submit]")).to_have_text("Send")
    expect(a_header).to_have_attribute("data-owner-id", str(bob.pk))
    expect(a.page.locator("#composer-owner")).to_contain_text("Owned by bob")
    assert gateway.policy(session) == "deny"  # the bot is paused at the gateway
    a.page.mouse.move(0, 0)
    a.page.screenshot(path=screenshots / "takeover-5-alice-delivered-and-note.png")
    a.assert_healthy()
    b.assert_healthy()


def test_a_take_over_click_from_a_stale_page_is_told_who_has_it(
    alice: Any,
    bob: Any,
    open_inbox: Callable[[Any], Inbox],
    post: Callable[..., dict[str, Any]],
    screenshots: Path,
) -> None:
    session = session_key()
    post(session_id=session, text="Where is my order #4471?")
    a, b = open_inbox(alice), open_inbox(bob)
    # Bob's live frames pass through the gate, so they can arrive late, as
    # over a slow network: his page still offers "Take over" when he clicks.
    gate = FrameGate()
    b.page.route_web_socket(re.compile(r"/ws/inbox/"), gate.route)
    a.log_in()
    b.log_in()
    pk = a.conversation_id(session)
    both_open(a, b, pk)
    b_header = b.page.locator("#conversation-header")

    gate.holding = True
    a.page.click("#conversation-header button.take-over")
    expect(a.page.locator("#conversation-header")).to_have_attribute(
        "data-owner-id", str(alice.pk)
    )
    gate.wait_for_held(b.page, f'data-owner-id="{alice.pk}"')
    expect(b_header).to_have_attribute("data-status", "bot")

    b.page.click("#conversation-header button.take-over")
    expect(b.page.locator("#action-error")).to_have_text("already taken by alice")
    b.page.screenshot(path=screenshots / "takeover-6-bob-stale-click-refused.png")

    # The late news arrives: Bob's page now shows who has it.
    gate.release()
    expect(b_header).to_have_attribute("data-status", "human")
    expect(b_header).to_have_attribute("data-mine", "no")
    expect(b_header.locator(".owner")).to_contain_text("Owned by alice")
    expect(b_header.locator("button.take-over")).to_have_count(0)
    expect(b.page.locator("#action-error")).to_have_text("already taken by alice")
    a.assert_healthy()
    b.assert_healthy()


def test_a_tab_that_opens_a_conversation_holds_one_live_socket(
    alice: Any,
    open_inbox: Callable[[Any], Inbox],
    post: Callable[..., dict[str, Any]],
) -> None:
    session = session_key()
    post(session_id=session, message_id="1", text="Where is my order #4471?")
    a = open_inbox(alice)
    a.log_in()
    pk = a.conversation_id(session)
    a.wait_for_socket(conversation=None)
    a.open_conversation(pk)
    # A round trip through the server: every socket the tab opened is up by now.
    post(session_id=session, message_id="2", text="Hello?")
    expect(a.page.locator(f"#thread-{pk} > li.message")).to_have_count(2)
    opened = a.page.evaluate("window.__wsOpened.length - window.__wsClosed.length")
    assert (opened, a.server.websocket_count()) == (1, 1)


@pytest.fixture
def lena(transactional_db: None) -> Any:
    return create_user(role="lead", username="lena")


def test_a_leads_assignment_reaches_the_assignees_mine_view_live_with_a_notice(
    alice: Any,
    lena: Any,
    open_inbox: Callable[[Any], Inbox],
    post: Callable[..., dict[str, Any]],
    screenshots: Path,
) -> None:
    older, session = session_key(), session_key()
    post(session_id=older, text="an older conversation")
    post(session_id=session, text="환불 문의드립니다", senderName="김민준")
    post(session_id=session_key(), text="the newest conversation")
    lead, agent = open_inbox(lena), open_inbox(alice)
    lead.log_in()
    agent.log_in()
    mine_pk = lead.conversation_id(older)
    # Alice already has one conversation, so hers is a list to sort into.
    agent.page.goto(f"{agent.server.url}/inbox/c/{mine_pk}/")
    agent.page.click("#conversation-header button.take-over")
    expect(agent.page.locator("#conversation-header")).to_have_attribute(
        "data-mine", "yes"
    )
    agent.page.goto(f"{agent.server.url}/inbox/?owner=mine")
    agent.page.evaluate("window.__notReloaded = true")
    agent.wait_for_socket(conversation=None)
    rows = agent.page.locator("#conversation-list > li.conversation")
    expect(rows).to_have_count(1)

    pk = lead.conversation_id(session)
    lead.wait_for_socket(conversation=None)
    lead.open_conversation(pk)
    lead.page.select_option("#assign-agent", label="alice")
    lead.page.get_by_role("button", name="Assign and lock").click()
    expect(lead.page.locator("#conversation-header")).to_have_attribute(
        "data-owner-id", str(alice.pk)
    )

    # Without a reload or a new message: in her "Mine", in activity order
    # (newer than the one she had), and she is told who gave it to her.
    expect(rows).to_have_count(2)
    assert agent.page.eval_on_selector_all(
        "#conversation-list > li.conversation", "rows => rows.map(r => r.id)"
    ) == [f"conv-{pk}", f"conv-{mine_pk}"]
    notice = agent.page.locator("#notice")
    expect(notice).to_be_visible()
    expect(notice).to_have_text("lena assigned you 김민준")
    agent.page.screenshot(path=screenshots / "assigned-notice.png")
    lead.assert_healthy()
    agent.assert_healthy()


def test_snooze_until_a_picked_time_in_the_agents_own_zone(
    alice: Any, open_inbox: Callable[[Any], Inbox], post: Callable[..., dict[str, Any]]
) -> None:
    """Alice's browser is in Seoul; her profile names no zone, so hers is the
    team's (UTC): the picker says so, and the time she picks is the one the
    header and the thread's line show, stored as that time in UTC."""
    session = session_key()
    post(session_id=session, text="call me back on Monday")
    tab = open_inbox(alice)
    tab.page.context.new_cdp_session(tab.page).send(
        "Emulation.setTimezoneOverride", {"timezoneId": "Asia/Seoul"}
    )
    tab.log_in()
    pk = tab.conversation_id(session)
    tab.wait_for_socket(conversation=None)
    tab.open_conversation(pk)
    header = tab.page.locator("#conversation-header")
    zone = header.locator(".snooze-zone")
    expect(zone).to_be_hidden()
    header.locator(".snooze-choice").select_option("custom")
    picker = header.locator(".snooze-at")
    expect(picker).to_be_visible()
    expect(zone).to_have_text("in UTC")
    day = datetime.now(UTC) + timedelta(days=2)
    picker.fill(day.strftime("%Y-%m-%dT09:30"))
    header.get_by_role("button", name="Snooze").click()
    expect(header).to_have_attribute("data-status", "snoozed")
    shown = f"{day:%b} {day.day}, 09:30"
    if day.year != datetime.now(UTC).year:
        shown = f"{day:%b} {day.day}, {day.year}, 09:30"
    expect(header.locator(".session time")).to_have_text(shown)
    expect(header.locator(".session time")).to_have_attribute(
        "datetime", day.strftime("%Y-%m-%dT09:30:00+00:00")
    )
    audit = tab.page.locator(f"#thread-{pk} li.audit").last
    expect(audit).to_have_text(re.compile(rf"snoozed it \(until {shown}\)"))
    tab.assert_healthy()
