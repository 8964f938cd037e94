"""inbox.gateway against the simulator's gateway API, over real HTTP on 127.0.0.1."""

import json
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from inbox import gateway as gateway_module
from inbox.gateway import GatewayError, OpenClawClient
from inbox.simulator import GatewayServer, Simulator
from inbox.webhooks import sign_openclaw

KEY = "agent:main:telegram:dm:123456789"


@contextmanager
def stub_server(status: int = 200, body: bytes = b"", content_type: str = "text/html"):
    """A tiny loopback server answering every request alike and recording POSTs."""
    posts: list[tuple[str, dict[str, str], bytes]] = []
    arrived = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            posts.append((self.path, dict(self.headers), raw))
            arrived.set()
            self._answer()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", posts, arrived
    finally:
        server.shutdown()
        server.server_close()


def fast_client(server: GatewayServer, **timeouts: float) -> OpenClawClient:
    return OpenClawClient(server.url, server.token, timeouts=timeouts)


# -- sending --------------------------------------------------------------------------


def test_send_carries_bearer_token_and_idempotency_key(gateway) -> None:
    result = OpenClawClient().send_message(
        KEY,
        "안녕하세요, 상담원입니다.",
        attachments=["https://files.example.com/a.pdf"],
        idempotency_key="inbox-msg-1",
    )
    assert result["status"] == "sent"
    [sent] = gateway.received
    assert result["messageId"] == sent.message_id
    assert sent.headers["Authorization"] == "Bearer test-gateway-token"
    assert sent.headers["Idempotency-Key"] == "inbox-msg-1"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.session_key == KEY
    assert sent.text == "안녕하세요, 상담원입니다."
    assert sent.attachments == ["https://files.example.com/a.pdf"]
    assert sent.channel == "telegram"


def test_repeated_idempotency_key_is_received_once(gateway) -> None:
    client = OpenClawClient()
    first = client.send_message(KEY, "hello", idempotency_key="inbox-msg-2")
    again = client.send_message(KEY, "hello", idempotency_key="inbox-msg-2")
    assert again == first
    assert len(gateway.received) == 1
    assert gateway.attempts == 2


def test_concurrent_sends_share_the_client_and_a_racing_retry_is_received_once(
    gateway,
) -> None:
    shared = gateway_module.client()
    keys = [f"k{n}" for n in range(12)] + ["same"] * 8
    errors: list[BaseException] = []

    def send(key: str) -> None:
        try:
            shared.send_message(KEY, f"text {key}", idempotency_key=key)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert gateway.attempts == 20
    assert sorted(s.idempotency_key for s in gateway.received) == sorted(
        [f"k{n}" for n in range(12)] + ["same"]
    )


def test_session_key_with_reserved_characters_round_trips(gateway) -> None:
    client = OpenClawClient()
    odd = "agent:main:webchat:dm:a/b?c#d %e"
    client.send_message(KEY, "one", idempotency_key="k1")
    client.send_message(odd, "two", idempotency_key="k2")
    assert [sent.session_key for sent in gateway.received] == [KEY, odd]
    assert client.session_info(odd) == {
        "key": odd,
        "sendPolicy": "allow",
        "messages": 1,
    }


def test_shared_client_is_one_and_reads_settings_at_call_time(
    gateway, settings
) -> None:
    shared = gateway_module.client()
    assert gateway_module.client() is shared
    assert shared.health() == {"status": "ok"}
    settings.OPENCLAW_GATEWAY_TOKEN = "rotated-elsewhere"
    with pytest.raises(GatewayError) as caught:
        shared.health()
    assert caught.value.status == 401


def test_calls_reuse_one_connection(gateway) -> None:
    client = OpenClawClient()
    for n in range(5):
        client.send_message(KEY, f"reply {n}", idempotency_key=f"k{n}")
    assert len(gateway.received) == 5
    assert gateway.connections_opened == 1


def test_default_timeouts_are_the_seeds_and_can_be_overridden() -> None:
    assert OpenClawClient("http://127.0.0.1:9").timeouts == {
        "send": 10.0,
        "broadcast": 30.0,
        "session": 5.0,
        "browser": 60.0,
        "health": 3.0,
    }
    assert (
        OpenClawClient("http://127.0.0.1:9", timeouts={"send": 0.5}).timeouts["send"]
        == 0.5
    )
    with pytest.raises(ValueError, match="unknown timeout"):
        OpenClawClient("http://127.0.0.1:9", timeouts={"sned": 1})


# -- error classification -----------------------------------------------------------


def test_503_is_transient_and_the_retry_succeeds(gateway) -> None:
    client = OpenClawClient()
    gateway.fail_next(1, status=503)
    with pytest.raises(GatewayError) as caught:
        client.send_message(KEY, "hi", idempotency_key="k")
    error = caught.value
    assert (error.permanent, error.status) == (False, 503)
    assert str(error).startswith("gateway answered 503:")
    assert gateway.received == []
    assert client.send_message(KEY, "hi", idempotency_key="k")["status"] == "sent"
    assert (len(gateway.received), gateway.attempts) == (1, 2)


def test_429_is_transient_with_retry_after_seconds(gateway) -> None:
    gateway.fail_next(1, status=429, retry_after=7)
    with pytest.raises(GatewayError) as caught:
        OpenClawClient().send_message(KEY, "hi", idempotency_key="k")
    assert caught.value.permanent is False
    assert caught.value.status == 429
    assert caught.value.retry_after == 7


def test_408_retry_after_as_http_date(gateway) -> None:
    gateway.fail_next(
        1, status=408, retry_after=formatdate(time.time() + 30, usegmt=True)
    )
    with pytest.raises(GatewayError) as caught:
        OpenClawClient().send_message(KEY, "hi", idempotency_key="k")
    assert caught.value.permanent is False
    assert 25 <= caught.value.retry_after <= 30


def test_400_is_permanent_and_names_the_gateways_reason(gateway) -> None:
    client = OpenClawClient()
    with pytest.raises(GatewayError) as caught:
        client.send_message(KEY, "   ", idempotency_key="k")
    assert (caught.value.permanent, caught.value.status) == (True, 400)
    assert "text or attachments required" in str(caught.value)
    gateway.fail_next(1, status=400)
    with pytest.raises(GatewayError) as caught:
        client.send_message(KEY, "fine text", idempotency_key="k")
    assert caught.value.permanent is True
    assert caught.value.retry_after is None


def test_wrong_token_is_permanent_401(gateway) -> None:
    with pytest.raises(GatewayError) as caught:
        OpenClawClient(gateway.url, "not-the-token").send_message(
            KEY, "hi", idempotency_key="k"
        )
    assert (caught.value.permanent, caught.value.status) == (True, 401)
    assert "unauthorized" in str(caught.value)
    assert gateway.received == []
    assert gateway.attempts == 1


def test_slow_gateway_times_out_as_transient_and_the_retry_sends_once(gateway) -> None:
    client = fast_client(gateway, send=0.2)
    gateway.slow(0.6)
    with pytest.raises(GatewayError) as caught:
        client.send_message(KEY, "hi", idempotency_key="k")
    assert caught.value.permanent is False
    assert str(caught.value) == "gateway timed out after 0.2 s"
    gateway.slow(0)
    # The gateway did send before answering late; the retry must not send again.
    assert client.send_message(KEY, "hi", idempotency_key="k")["status"] == "sent"
    assert (len(gateway.received), gateway.attempts) == (1, 2)


def test_gateway_down_is_transient_and_back_up_works(gateway) -> None:
    client = OpenClawClient()
    client.health()  # leaves a pooled keep-alive connection behind
    url = gateway.url
    gateway.go_down()
    with pytest.raises(GatewayError) as caught:
        client.send_message(KEY, "hi", idempotency_key="k")
    assert caught.value.permanent is False
    assert str(caught.value).startswith("gateway unreachable: ")
    with pytest.raises(
        GatewayError, match=r"^gateway unreachable: connection refused$"
    ):
        OpenClawClient().health()  # a fresh pool: nothing stale to try first
    gateway.come_up()
    assert gateway.url == url
    assert client.send_message(KEY, "hi", idempotency_key="k")["status"] == "sent"
    assert len(gateway.received) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"<html>proxy login</html>", "text/html", "not a JSON object"),
        (
            b'{"ok": false, "error": {"type": "busy", "message": "try later"}}',
            "application/json",
            "not ok: busy: try later",
        ),
    ],
)
def test_2xx_without_an_ok_envelope_is_permanent(body, content_type, reason) -> None:
    with stub_server(200, body, content_type) as (url, _, _):
        with pytest.raises(GatewayError) as caught:
            OpenClawClient(url, "").health()
    assert caught.value.permanent is True
    assert reason in str(caught.value)


# -- sessions, broadcast, tools -----------------------------------------------------


def test_send_policy_deny_shows_in_session_info(gateway) -> None:
    client = OpenClawClient()
    assert client.set_send_policy(KEY, "deny")["sendPolicy"] == "deny"
    assert client.session_info(KEY) == {"key": KEY, "sendPolicy": "deny", "messages": 0}
    assert gateway.policies == {KEY: "deny"}
    client.set_send_policy(KEY, "allow")
    assert client.session_info(KEY)["sendPolicy"] == "allow"
    with pytest.raises(ValueError):
        client.set_send_policy(KEY, "pause")
    assert gateway.policies == {KEY: "allow"}


def test_reset_session(gateway) -> None:
    assert OpenClawClient().reset_session(KEY) == {"key": KEY, "status": "reset"}
    assert gateway.resets == [KEY]


def test_broadcast_records_each_recipient_once(gateway) -> None:
    client = OpenClawClient()
    recipients = ["agent:main:telegram:dm:1", "agent:main:telegram:dm:2"]
    result = client.broadcast("telegram", recipients, "공지", idempotency_key="b1")
    assert result["sent"] == 2
    assert [r["recipient"] for r in result["results"]] == recipients
    assert (
        client.broadcast("telegram", recipients, "공지", idempotency_key="b1") == result
    )
    assert [(s.kind, s.session_key, s.channel) for s in gateway.received] == [
        ("broadcast", recipients[0], "telegram"),
        ("broadcast", recipients[1], "telegram"),
    ]


def test_browser_tool_goes_through_tools_invoke(gateway) -> None:
    args = {"action": "open", "url": "https://example.com/order/4471"}
    assert OpenClawClient().invoke_browser(KEY, args) == {
        "tool": "browser",
        "echo": args,
    }
    # Other tools are refused as the real gateway refuses them.
    request = urllib.request.Request(
        f"{gateway.url}/tools/invoke",
        data=json.dumps({"tool": "exec", "args": {}}).encode(),
        headers={"Authorization": "Bearer test-gateway-token"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 404


def test_health(gateway) -> None:
    assert OpenClawClient().health() == {"status": "ok"}


# -- delivered webhooks and the demo bot ----------------------------------------------


def test_accepted_send_is_reported_delivered_by_a_signed_webhook() -> None:
    with (
        stub_server(200, b'{"status": "stored"}', "application/json") as (
            url,
            posts,
            arrived,
        ),
        GatewayServer(
            token="t",
            webhook_url=f"{url}/api/openclaw/webhook/",
            secret="hook-secret",
            delivery_delay=0.01,
        ) as server,
    ):
        client = fast_client(server)
        client.send_message(KEY, "hi", idempotency_key="inbox-msg-9")
        client.send_message(KEY, "hi", idempotency_key="inbox-msg-9")  # a retry
        assert arrived.wait(5)
        time.sleep(0.2)  # room for a wrong second post to arrive
    [(path, headers, raw)] = posts
    assert path == "/api/openclaw/webhook/"
    assert headers["X-OpenClaw-Signature"] == sign_openclaw(raw, "hook-secret")
    payload = json.loads(raw)
    assert payload["event"] == "status"
    assert payload["data"] | {"timestamp": 0} == {
        "sessionId": KEY,
        "channel": "telegram",
        "messageId": "inbox-msg-9",
        "status": "delivered",
        "timestamp": 0,
    }


def test_demo_bot_stays_quiet_where_send_policy_is_deny(gateway) -> None:
    simulator = Simulator("http://127.0.0.1:9/", seed=11, gateway=gateway)
    quiet, talking = simulator.chats[0], simulator.chats[1]
    gateway.policies[quiet.session_id] = "deny"
    last_inbound: dict[str, bool] = {}
    replies: dict[str, int] = {}
    for _ in range(600):
        data = simulator.next_payload()["data"]
        session = data["sessionId"]
        if data.get("direction") == "outbound":
            # A bot reply follows a customer message of the same chat.
            assert last_inbound.get(session) is True
            replies[session] = replies.get(session, 0) + 1
            last_inbound[session] = False
        elif "senderId" in data:
            last_inbound[session] = True
    assert quiet.session_id not in replies
    assert replies.get(talking.session_id, 0) > 0
