"""inbox.gateway against the simulated gateway's WebSocket RPC on 127.0.0.1."""

import json
import threading
from pathlib import Path

import pytest

from inbox import gateway as gateway_module
from inbox import protocol
from inbox.gateway import GatewayError, OpenClawClient
from inbox.simulated_gateway import GatewayServer

KEY = "agent:main:telegram:direct:123456789"
WEB = "agent:main:web-4821"
FRAMES = Path(__file__).parent / "frames"

pytestmark = pytest.mark.django_db


def client_for(server: GatewayServer, **timeouts: float) -> OpenClawClient:
    return OpenClawClient(server.url, server.token, timeouts=timeouts)


# -- replies ----------------------------------------------------------------------------


def test_a_channel_reply_is_a_send_to_the_sessions_delivery_target(gateway) -> None:
    gateway.customer_writes(KEY, "안녕하세요", name="김민준")
    result = OpenClawClient().send_message(
        KEY,
        "안녕하세요, 상담원입니다.",
        attachments=["https://files.example.com/a.pdf"],
        idempotency_key="inbox-msg-1",
        label="alice",
    )
    assert result["via"] == "send"
    [sent] = gateway.received
    assert result["messageId"] == sent.message_id
    assert (sent.kind, sent.session_key, sent.channel) == ("send", KEY, "telegram")
    assert sent.idempotency_key == "inbox-msg-1"
    assert sent.text == "안녕하세요, 상담원입니다."
    assert sent.attachments == ["https://files.example.com/a.pdf"]
    # Mirrored into the transcript under our key, as the real gateway does.
    mirror = gateway.transcript(KEY)[-1]["message"]
    assert mirror["model"] == "delivery-mirror"
    assert mirror["idempotencyKey"] == "inbox-msg-1"


def test_a_repeated_idempotency_key_is_delivered_once(gateway) -> None:
    client = OpenClawClient()
    first = client.send_message(KEY, "hello", idempotency_key="inbox-msg-2")
    again = client.send_message(KEY, "hello", idempotency_key="inbox-msg-2")
    assert again == first
    assert len(gateway.received) == 1 and gateway.attempts == 2
    assert gateway.delivered.count((KEY, "hello")) == 1


def test_a_webchat_reply_is_injected_with_the_agents_name(gateway) -> None:
    gateway.customer_writes(WEB, "hello?")
    result = OpenClawClient().send_message(
        WEB, "Hi, I'm here", idempotency_key="inbox-msg-3", label="alice"
    )
    assert result["via"] == "inject"
    [sent] = gateway.received
    assert sent.kind == "inject" and sent.text == "Hi, I'm here"
    row = gateway.transcript(WEB)[-1]
    assert row["messageId"] == result["messageId"]
    assert row["message"]["model"] == "gateway-injected"
    assert row["message"]["content"][0]["text"] == "[alice]\n\nHi, I'm here"
    assert (WEB, "[alice]\n\nHi, I'm here") in gateway.delivered


def test_the_delivery_target_is_asked_once_per_session(gateway) -> None:
    client = OpenClawClient()
    for n in range(3):
        client.send_message(KEY, f"reply {n}", idempotency_key=f"k{n}")
    assert client.delivery_target(KEY) == {
        "channel": "telegram",
        "to": "telegram:123456789",
        "accountId": "default",
    }
    assert len(gateway.received) == 3


def test_concurrent_sends_share_the_pool_and_a_racing_retry_is_delivered_once(
    gateway,
) -> None:
    shared = gateway_module.client()
    shared.hello()  # the device identity, read here, inside the test's transaction
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
    # A socket per thread at most, reused: not a handshake per call.
    assert gateway.connections_opened <= len(keys)
    assert gateway.connections_opened <= gateway.attempts


def test_sockets_are_reused_between_calls(gateway) -> None:
    client = OpenClawClient()
    for n in range(5):
        client.send_message(KEY, f"reply {n}", idempotency_key=f"r{n}")
    assert gateway.connections_opened == 1


# -- failures ---------------------------------------------------------------------------


def test_a_busy_gateway_is_transient_with_its_retry_hint(gateway) -> None:
    gateway.fail_next(1, status=503, retry_after=2.5)
    with pytest.raises(GatewayError) as caught:
        OpenClawClient().send_message(KEY, "hi", idempotency_key="k")
    assert not caught.value.permanent
    assert caught.value.retry_after == 2.5
    assert "UNAVAILABLE" in str(caught.value)
    # The refusal left the socket usable: the retry needs no new handshake.
    assert OpenClawClient().send_message(KEY, "hi", idempotency_key="k")["messageId"]


def test_an_invalid_request_is_permanent(gateway) -> None:
    gateway.fail_next(1, status=400)
    with pytest.raises(GatewayError) as caught:
        OpenClawClient().send_message(KEY, "hi", idempotency_key="k")
    assert caught.value.permanent
    assert "INVALID_REQUEST" in str(caught.value)


def test_an_empty_reply_is_refused_by_the_gateway(gateway) -> None:
    with pytest.raises(GatewayError) as caught:
        OpenClawClient().send_message(KEY, "   ", idempotency_key="k")
    assert caught.value.permanent
    assert gateway.received == []


def test_a_wrong_token_is_permanent_and_named(gateway) -> None:
    with pytest.raises(GatewayError) as caught:
        OpenClawClient(gateway.url, "not-the-token").send_message(
            KEY, "hi", idempotency_key="k"
        )
    assert caught.value.permanent
    assert "token mismatch" in str(caught.value)
    assert gateway.received == []


def test_a_gateway_that_is_down_is_transient_and_reachable_again_later(
    gateway,
) -> None:
    client = OpenClawClient()
    client.send_message(KEY, "one", idempotency_key="k1")
    gateway.go_down()
    with pytest.raises(GatewayError) as caught:
        client.send_message(KEY, "two", idempotency_key="k2")
    assert not caught.value.permanent
    gateway.come_up()
    # The pooled socket died with the old process: a fresh one is opened.
    assert client.send_message(KEY, "two", idempotency_key="k2")["via"] == "send"
    assert [s.text for s in gateway.received] == ["one", "two"]


def test_a_slow_answer_times_out_as_transient_and_the_socket_is_dropped(
    gateway,
) -> None:
    client = client_for(gateway, send=0.3)
    client.delivery_target(KEY)
    gateway.slow(1.0)
    with pytest.raises(GatewayError) as caught:
        client.send_message(KEY, "hi", idempotency_key="k")
    assert not caught.value.permanent and "timed out" in str(caught.value)
    gateway.slow(0)
    # The late answer must not be read as the next call's: a new socket.
    assert client.send_message(KEY, "hi", idempotency_key="k2")["via"] == "send"


def test_no_gateway_configured_is_permanent(settings) -> None:
    settings.OPENCLAW_GATEWAY_URL = ""
    with pytest.raises(GatewayError) as caught:
        OpenClawClient().send_message(KEY, "hi", idempotency_key="k")
    assert caught.value.permanent and "OPENCLAW_GATEWAY_URL" in str(caught.value)


def test_nothing_listening_is_transient() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(GatewayError) as caught:
        OpenClawClient(f"ws://127.0.0.1:{port}", "t").describe(KEY)
    assert not caught.value.permanent
    assert "connection refused" in str(caught.value)


# -- sessions, takeover, history, HTTP --------------------------------------------------


def test_send_policy_deny_and_back(gateway) -> None:
    client = OpenClawClient()
    client.set_send_policy(KEY, "deny")
    assert gateway.policy(KEY) == "deny"
    client.set_send_policy(KEY, None)
    assert gateway.policy(KEY) == "allow"
    with pytest.raises(ValueError):
        client.set_send_policy(KEY, "pause")


def test_the_plugin_is_found_in_hello_and_takes_the_owner(settings) -> None:
    with GatewayServer(token="t", plugin=True) as server:
        client = OpenClawClient(server.url, "t")
        assert client.has_plugin()
        client.set_human_owner(KEY, "alice")
        assert server.owners == {KEY: "alice"}
        client.set_human_owner(KEY, None)
        assert server.owners == {}
    with GatewayServer(token="t") as server:
        assert not OpenClawClient(server.url, "t").has_plugin()


def test_history_tail_then_delta_then_reset(gateway) -> None:
    gateway.customer_writes(KEY, "one")
    client = OpenClawClient()
    tail = client.history(KEY)
    assert [m["content"] for m in tail["messages"]][0] == "one"
    gateway.customer_writes(KEY, "two")
    delta = client.history(KEY, cursor=tail["deltaCursor"])
    assert delta["kind"] == "delta"
    assert [m["message"]["content"] for m in delta["messages"]][0] == "two"
    client.reset_session(KEY)
    assert client.history(KEY, cursor=delta["deltaCursor"])["kind"] == "reset"
    assert gateway.resets == [KEY]


def test_browser_tool_and_health_over_http(gateway) -> None:
    client = OpenClawClient()
    # The page-reading actions are monitors/tests/test_gateway_browser.py's.
    with pytest.raises(GatewayError) as refused:
        client.invoke_browser(KEY, {"action": "fly"})
    assert refused.value.status == 400 and refused.value.permanent
    assert gateway.browser_calls == [{"action": "fly"}]
    assert client.health() == {"ok": True, "status": "live"}
    assert client.ready() == {"ready": True}


# -- the handshake ------------------------------------------------------------------------


def test_the_device_signature_covers_the_exact_v3_string() -> None:
    device = protocol.DeviceIdentity.generate()
    challenge = {"nonce": "n-1", "ts": 1796456108270}
    params = protocol.connect_params(challenge, token="tok", device=device)
    expected = (
        f"v3|{device.id}|gateway-client|backend|operator|"
        "operator.read,operator.write,operator.admin|1796456108270|tok|n-1|linux|"
    )
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    signature = params["device"]["signature"]
    raw = __import__("base64").urlsafe_b64decode(
        signature + "=" * (-len(signature) % 4)
    )
    Ed25519PublicKey.from_public_bytes(device.public_key_raw).verify(
        raw, expected.encode()
    )
    assert params["device"]["signedAt"] == 1796456108270
    assert params["device"]["id"] == device.id
    assert params["auth"] == {"token": "tok"}
    assert "signature" not in repr(device) and device.seed_b64 not in repr(device)


def test_the_device_key_round_trips_and_derives_the_gateways_id() -> None:
    device = protocol.DeviceIdentity.generate()
    again = protocol.DeviceIdentity.from_seed(device.seed_b64)
    assert (
        again.id
        == device.id
        == __import__("hashlib").sha256(device.public_key_raw).hexdigest()
    )


def test_connect_without_a_device_is_the_loopback_backend_path() -> None:
    params = protocol.connect_params({"nonce": "n", "ts": 1}, token="tok")
    assert "device" not in params
    assert params["client"] == {
        "id": "gateway-client",
        "version": protocol.CLIENT_VERSION,
        "platform": "linux",
        "mode": "backend",
    }
    assert params["minProtocol"] == params["maxProtocol"] == 4


def test_a_signed_device_is_paired_and_its_token_is_kept(gateway) -> None:
    from inbox.models import GatewayLink

    OpenClawClient().describe(KEY)  # the database's device identity
    link = GatewayLink.objects.get()
    assert link.identity().id in gateway.devices
    assert gateway.devices[link.identity().id]
    # The device token alone (no shared token) is accepted next time.
    device = link.identity()
    with_device_token = OpenClawClient(
        gateway.url,
        gateway.devices[device.id],
        device=lambda url: (device, ""),
    )
    assert with_device_token.describe(KEY)["key"] == KEY


def test_a_forged_device_signature_is_refused(gateway) -> None:
    real = protocol.DeviceIdentity.generate()
    other = protocol.DeviceIdentity.generate()

    class Forged(protocol.DeviceIdentity):
        def sign(self, payload: str) -> str:
            return other.sign(payload)

    client = OpenClawClient(
        gateway.url, gateway.token, device=lambda url: (Forged(real.private_key), "")
    )
    with pytest.raises(GatewayError) as caught:
        client.describe(KEY)
    assert caught.value.permanent and "signature" in str(caught.value)


# -- frames observed on the real gateway ---------------------------------------------------


def load(name: str) -> dict:
    return json.loads((FRAMES / f"{name}.json").read_text())


def test_a_telegram_customer_frame_reads_as_a_customer_row() -> None:
    row = protocol.transcript_message(load("telegram_user_session_message")["payload"])
    assert row is not None and row.is_customer
    assert row.session_key == "agent:main:telegram:direct:888247"
    assert (row.sender_id, row.sender_name) == ("888247", "Carol")
    assert row.text == "hi, my parcel never arrived"
    assert row.seq == 1 and row.channel == "telegram"
    assert row.message_id == "859b786a-cd26-4e64-9eb5-ee70733e7b4f"


def test_a_bot_frame_carries_model_and_tokens() -> None:
    row = protocol.transcript_message(load("telegram_bot_session_message")["payload"])
    assert row is not None and row.role == "assistant" and not row.is_our_echo
    assert (row.model, row.tokens) == ("stub-model", 15)
    assert row.text == "bot: hi, my parcel never arrived"
    assert row.generation == "ce0a13c2-36a7-4bf8-9782-896e77d86ee6"


def test_a_denied_bot_frame_knows_its_send_policy() -> None:
    row = protocol.transcript_message(load("denied_bot_session_message")["payload"])
    assert row is not None and row.send_policy == "deny"


def test_our_echoes_are_recognised() -> None:
    mirror = protocol.transcript_message(load("send_mirror_session_message")["payload"])
    inject = protocol.transcript_message(load("chat_inject_session_message")["payload"])
    assert mirror.is_our_echo and mirror.idempotency_key == "human-e38723-1"
    assert inject.is_our_echo and inject.text.startswith("[Alice]\n\n")


def test_a_history_delta_row_and_a_tail_row_read_alike() -> None:
    delta = load("chat_history_delta")["payload"]
    rows = [protocol.transcript_message(m) for m in delta["messages"]]
    assert rows[0].text == "offline one" and rows[0].seq == 9
    tail = load("chat_history_tail_first_message")
    row = protocol.transcript_message(
        tail["messages[0]"], session_key=tail["sessionKey"]
    )
    assert row.session_key == tail["sessionKey"] and row.seq == 1
    assert row.sender_name == "Carol"


def test_an_error_response_keeps_code_and_retry_hints() -> None:
    error = protocol.RpcError.from_error(
        "send",
        {
            "code": "UNAVAILABLE",
            "message": "busy",
            "retryable": True,
            "retryAfterMs": 1500,
        },
    )
    assert error.retryable and error.retry_after == 1.5
    denied = load("webchat_chat_send_denied")
    with pytest.raises(protocol.RpcError) as caught:
        protocol.result("chat.send", denied)
    assert caught.value.code == "INVALID_REQUEST" and not caught.value.retryable


def test_hello_ok_gives_methods_and_tick_interval() -> None:
    hello = protocol.Hello.parse(load("hello_ok")["payload"])
    assert hello.server_version == "2026.9.6"
    assert {"send", "sessions.subscribe", "chat.history"} <= hello.methods
    assert hello.tick_interval == 30.0
    assert not hello.has_plugin


def test_frames_that_are_not_the_protocol_are_refused() -> None:
    for text in ("not json", "[]", '{"type": "other"}'):
        with pytest.raises(protocol.ProtocolError):
            protocol.parse_frame(text)
