"""A stand-in OpenClaw gateway: signed webhook traffic out, the gateway's API in.

The real gateway needs Node 22; this simulator speaks our documented contracts
for the demo, the tests and the benchmarks.

``Simulator`` posts webhooks (docs/webhook-contract.md): several platforms with
their own message-id styles, Korean and English, bot replies, media, session
resets and ends, gateway errors, bursts, duplicate deliveries and out-of-order
delivery. Every loop is bounded by a count or a duration. It posts only to the
URL it is given (loopback in tests and benches).

``GatewayServer`` serves the gateway's HTTP API (docs/gateway-api.md) on
127.0.0.1, so ``inbox.gateway`` is exercised over real HTTP: idempotent sends,
sendPolicy, failure controls, and "delivered" status webhooks posted back.
"""

from __future__ import annotations

import hmac
import http.client
import json
import random
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from inbox.webhooks import sign_openclaw, sign_standard

CUSTOMERS = [
    ("telegram", "김민준"), ("telegram", "Alice Park"), ("whatsapp", "이서연"),
    ("whatsapp", "Carlos Mendes"), ("slack", "박지훈"), ("slack", "Dana Whitfield"),
    ("discord", "최유나"), ("discord", "neon_fox"), ("webchat", "정하은"),
    ("webchat", "Visitor 4821"), ("signal", "Erik Lund"), ("telegram", "윤도현"),
]  # fmt: skip
CUSTOMER_TEXTS = [
    "안녕하세요, 주문한 상품이 아직 안 왔어요.",
    "배송 언제 와요?",
    "환불 받을 수 있나요?",
    "결제가 두 번 됐어요 ㅠㅠ",
    "비밀번호를 잊어버렸어요",
    "정말 최악이에요, 실망했습니다.",
    "감사합니다! 잘 해결됐어요.",
    "Hi, where is my order #4471?",
    "Can I change my delivery address?",
    "I was charged twice, please help.",
    "How do I reset my password?",
    "This is the worst service, I want a refund.",
    "Thanks, that worked!",
    "Do you ship to Canada?",
    "<img src=x onerror=alert(1)> is this safe?",
]
BOT_TEXTS = [
    "주문 내역을 확인해 볼게요. 잠시만 기다려 주세요.",
    "배송은 보통 2~3일 걸립니다.",
    "불편을 드려 죄송합니다. 상담원을 연결해 드릴까요?",
    "Let me look that up for you.",
    "Your order is on its way and should arrive Friday.",
    "I'm sorry about that. I can connect you with a human agent.",
]
MODELS = ["claude-sonnet-4", "gpt-4.1-mini", "claude-haiku-4"]


@dataclass
class Chat:
    platform: str
    name: str
    peer: str
    next_seq: int = 1

    @property
    def session_id(self) -> str:
        kind = "channel" if self.platform in ("slack", "discord") else "dm"
        return f"agent:main:{self.platform}:{kind}:{self.peer}"

    def new_message_id(self, rng: random.Random) -> str:
        # Each platform's own id style; Telegram numbers messages per chat.
        seq, self.next_seq = self.next_seq, self.next_seq + 1
        if self.platform == "telegram":
            return str(seq)
        if self.platform == "whatsapp":
            return "wamid." + "".join(
                rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=24)
            )
        if self.platform == "slack":
            return f"{time.time():.6f}"
        if self.platform == "discord":
            return str(rng.getrandbits(60))
        return str(uuid.UUID(int=rng.getrandbits(128)))


@dataclass
class Simulator:
    url: str
    secret: str = "dev-webhook-secret"
    seed: int | None = 7
    scheme: str = "mixed"  # "openclaw", "standard" or "mixed"
    duplicate_rate: float = 0.05
    reorder_rate: float = 0.05
    chats: list[Chat] = field(default_factory=list)
    sent: int = 0
    answers: dict[int, int] = field(default_factory=dict)
    # When set, the bot stays quiet in sessions whose sendPolicy is "deny"
    # (an operator took over), as the real gateway's agent does.
    gateway: GatewayServer | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        if not self.chats:
            self.chats = [
                Chat(platform, name, str(self.rng.randrange(10**8, 10**9)))
                for platform, name in CUSTOMERS
            ]
        self._pending: list[bytes] = []
        # Chats whose customer spoke last, oldest first: the bot answers these.
        self._awaiting: dict[str, Chat] = {}

    # -- payloads -------------------------------------------------------------

    def message(
        self, chat: Chat, *, text: str | None = None, outbound: bool = False
    ) -> dict[str, Any]:
        rng = self.rng
        data: dict[str, Any] = {
            "sessionId": chat.session_id,
            "channel": chat.platform,
            "messageId": chat.new_message_id(rng),
            "timestamp": int(time.time() * 1000),
        }
        if outbound:
            data |= {
                "direction": "outbound",
                "text": text or rng.choice(BOT_TEXTS),
                "aiModel": rng.choice(MODELS),
                "tokensUsed": rng.randrange(40, 900),
                "processingTimeMs": rng.randrange(300, 4000),
            }
        else:
            data |= {
                "senderId": chat.peer,
                "senderName": chat.name,
                "text": text or rng.choice(CUSTOMER_TEXTS),
                "channelInfo": {"displayName": chat.name, "chatType": "direct"},
            }
        return {"event": "message", "data": data}

    def media(self, chat: Chat) -> dict[str, Any]:
        return {
            "event": "media",
            "data": {
                "sessionId": chat.session_id,
                "channel": chat.platform,
                "messageId": chat.new_message_id(self.rng),
                "senderId": chat.peer,
                "senderName": chat.name,
                "text": "사진 보내드려요 / photo attached",
                "mediaUrl": f"https://media.example.com/{uuid.UUID(int=self.rng.getrandbits(128))}.jpg",
                "mediaType": "image/jpeg",
            },
        }

    def status(self, chat: Chat, status: str) -> dict[str, Any]:
        return {
            "event": "status",
            "data": {
                "sessionId": chat.session_id,
                "channel": chat.platform,
                "status": status,
                "messageId": f"status-{status}-{chat.new_message_id(self.rng)}",
            },
        }

    def error(self, chat: Chat) -> dict[str, Any]:
        return {
            "event": "error",
            "data": {
                "sessionId": chat.session_id,
                "channel": chat.platform,
                "error": "model provider timed out (retrying)",
                "messageId": f"err-{chat.new_message_id(self.rng)}",
            },
        }

    def next_payload(self) -> dict[str, Any]:
        rng = self.rng
        chat = rng.choice(self.chats)
        roll = rng.random()
        if roll < 0.55:
            self._awaiting[chat.session_id] = chat
            return self.message(chat)
        if roll < 0.88:
            return self._bot_reply(chat)
        if roll < 0.94:
            self._awaiting[chat.session_id] = chat
            return self.media(chat)
        self._awaiting.pop(chat.session_id, None)
        if roll < 0.97:
            return self.status(chat, "reset")
        if roll < 0.985:
            return self.error(chat)
        return self.status(chat, "ended")

    def bot_may_reply(self, chat: Chat) -> bool:
        return self.gateway is None or self.gateway.policy(chat.session_id) != "deny"

    def _bot_reply(self, chat: Chat) -> dict[str, Any]:
        """The bot answers a customer who spoke last, so the thread reads naturally.

        With no such chat whose policy allows it, the customer writes instead.
        """
        waiting = [c for c in self._awaiting.values() if self.bot_may_reply(c)]
        if not waiting:
            self._awaiting[chat.session_id] = chat
            return self.message(chat)
        if chat.session_id not in {c.session_id for c in waiting}:
            chat = self.rng.choice(waiting)
        del self._awaiting[chat.session_id]
        return self.message(chat, outbound=True)

    def bodies(self) -> Iterator[bytes]:
        """An endless stream of bodies with duplicates and reordering mixed in."""
        while True:
            body = json.dumps(self.next_payload(), ensure_ascii=False).encode()
            roll = self.rng.random()
            if roll < self.reorder_rate:
                self._pending.append(body)  # goes out after the next one
                continue
            yield body
            while self._pending:
                yield self._pending.pop()
            if roll > 1 - self.duplicate_rate:
                yield body  # the gateway retried a delivery we already took

    # -- signing and sending -----------------------------------------------------

    def headers(self, body: bytes) -> dict[str, str]:
        scheme = self.scheme
        if scheme == "mixed":
            scheme = self.rng.choice(["openclaw", "standard"])
        headers = {"Content-Type": "application/json"}
        if scheme == "openclaw":
            headers["X-OpenClaw-Signature"] = sign_openclaw(body, self.secret)
        else:
            msg_id = f"msg_{uuid.UUID(int=self.rng.getrandbits(128)).hex}"
            stamp = int(time.time())
            headers |= {
                "webhook-id": msg_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign_standard(msg_id, stamp, body, self.secret),
            }
        return headers

    def signed(self, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """A payload as the gateway would send it: the body and its headers."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        return body, self.headers(body)

    def run(
        self,
        *,
        rate: float = 1.0,
        duration: float | None = 60.0,
        count: int | None = None,
        burst_every: int = 25,
        quiet: bool = False,
    ) -> dict[int, int]:
        """Post at about ``rate`` per second until ``duration`` or ``count`` is reached.

        With neither given it stops after eight hours (a long demo), never never.
        """
        if duration is None and count is None:
            duration = 8 * 3600
        parts = urlsplit(self.url)
        connection = http.client.HTTPConnection(
            parts.hostname, parts.port or 80, timeout=10
        )
        deadline = time.monotonic() + duration if duration is not None else None
        stream = self.bodies()
        try:
            while (count is None or self.sent < count) and (
                deadline is None or time.monotonic() < deadline
            ):
                burst = (
                    5
                    if burst_every and self.sent % burst_every == burst_every - 1
                    else 1
                )
                for _ in range(burst):
                    self._post(connection, parts.path, next(stream), quiet)
                time.sleep(self.rng.expovariate(rate) if rate > 0 else 0)
        finally:
            connection.close()
        return self.answers

    def _post(
        self,
        connection: http.client.HTTPConnection,
        path: str,
        body: bytes,
        quiet: bool,
    ) -> None:
        try:
            connection.request("POST", path, body=body, headers=self.headers(body))
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            status = 0
            if not quiet:
                print(f"simulator: {exc}")
        self.sent += 1
        self.answers[status] = self.answers.get(status, 0) + 1


# -- the gateway's HTTP API ---------------------------------------------------------

GATEWAY_HOST = "127.0.0.1"  # loopback only: this is a test double, not a service
MAX_REQUEST_BYTES = 1_048_576
WEBHOOK_TIMEOUT = 5.0
ERROR_TYPES = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "too_large",
    429: "rate_limited",
}

Answer = tuple[int, dict[str, Any], dict[str, str]]


@dataclass
class GatewaySend:
    """One message the simulated gateway accepted (a send, or one broadcast target)."""

    session_key: str
    text: str
    attachments: list[Any]
    idempotency_key: str | None
    message_id: str
    received_at: float
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = "send"  # or "broadcast"
    channel: str = ""


def _ok(result: dict[str, Any]) -> Answer:
    return 200, {"ok": True, "result": result}, {}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    kind = ERROR_TYPES.get(status, "unavailable" if status >= 500 else "error")
    body = {"ok": False, "error": {"type": kind, "message": message}}
    return status, body, headers or {}


def _platform(session_key: str) -> str:
    # agent:<agent>:<platform>:<kind>:<peer>
    parts = session_key.split(":")
    return parts[2] if len(parts) > 2 and parts[2] else "other"


class GatewayServer:
    """The gateway's HTTP API on 127.0.0.1, with failure controls for tests and demos.

    One lock guards all state: handler threads, the caller's thread and the
    webhook timers all read and write it. ``stop()`` then ``start()`` rebinds
    the same port, so a test can take the gateway down and bring it back.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        token: str = "",
        webhook_url: str | None = None,
        secret: str = "dev-webhook-secret",
        delivery_delay: float = 0.05,
        quiet: bool = False,
    ) -> None:
        self.port = port
        self.token = token
        self.webhook_url = webhook_url
        self.secret = secret
        self.delivery_delay = delivery_delay
        self.quiet = quiet
        self.received: list[GatewaySend] = []
        self.attempts = 0  # every send request that reached the handler
        self.policies: dict[str, str] = {}
        self.resets: list[str] = []
        self.webhooks_posted = 0
        self.connections_opened = 0  # shows whether clients reuse connections
        self._lock = threading.Lock()
        self._results: dict[tuple[str, str], dict[str, Any]] = {}  # idempotency
        self._failures = 0
        self._failure_status = 503
        self._failure_retry_after: str | None = None
        self._delay = 0.0
        self._server: _GatewayHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._timers: set[threading.Thread] = set()

    # -- lifecycle ------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("GatewayServer has no port until started")
        return f"http://{GATEWAY_HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> GatewayServer:
        with self._lock:
            if self._server is not None:
                return self
            server = _GatewayHTTPServer((GATEWAY_HOST, self.port), self)
            self.port = server.server_address[1]  # port 0 -> the one we got, kept
            self._server = server
            # A short poll interval so go_down() returns at once.
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"gateway-simulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, drop open connections and pending webhooks."""
        with self._lock:
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
            timers, self._timers = self._timers, set()
        for timer in timers:
            if isinstance(timer, threading.Timer):
                timer.cancel()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        # Keep-alive connections would otherwise still be served by their
        # handler threads, and a "down" gateway would keep answering.
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- controls -------------------------------------------------------------------

    def fail_next(
        self, n: int = 1, status: int = 503, retry_after: float | str | None = None
    ) -> None:
        """Answer the next ``n`` send requests with ``status`` (and ``Retry-After``)."""
        with self._lock:
            self._failures = n
            self._failure_status = status
            self._failure_retry_after = (
                None
                if retry_after is None
                else retry_after
                if isinstance(retry_after, str)
                else f"{retry_after:g}"
            )

    def slow(self, seconds: float) -> None:
        """Delay every answer by ``seconds`` (0 restores); the work is still done."""
        with self._lock:
            self._delay = max(0.0, seconds)

    def go_down(self) -> None:
        self.stop()

    def come_up(self) -> None:
        self.start()

    def policy(self, session_key: str) -> str:
        with self._lock:
            return self.policies.get(session_key, "allow")

    # -- requests -------------------------------------------------------------------

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
                self.connections_opened += 1
            else:
                self._connections.discard(connection)

    def _answer_delay(self) -> float:
        with self._lock:
            return self._delay

    def dispatch(
        self, method: str, target: str, headers: Message, raw: bytes
    ) -> Answer:
        """Route one request and answer it as the gateway would."""
        key = ""
        match urlsplit(target).path.split("/"):
            case ["", "health"]:
                name, allowed = "health", ("GET",)
            case ["", "api", "broadcast"]:
                name, allowed = "broadcast", ("POST",)
            case ["", "tools", "invoke"]:
                name, allowed = "invoke", ("POST",)
            case ["", "api", "sessions", quoted] if quoted:
                name, allowed, key = "session", ("GET", "PATCH"), unquote(quoted)
            case ["", "api", "sessions", quoted, "messages"] if quoted:
                name, allowed, key = "send", ("POST",), unquote(quoted)
            case ["", "api", "sessions", quoted, "reset"] if quoted:
                name, allowed, key = "reset", ("POST",), unquote(quoted)
            case _:
                return _error(404, f"no route for {method} {target}")
        if method not in allowed:
            return _error(405, f"{method} not allowed", {"Allow": ", ".join(allowed)})
        if name == "send":
            with self._lock:
                self.attempts += 1
        if self.token and not hmac.compare_digest(
            (headers.get("Authorization") or "").encode(),
            f"Bearer {self.token}".encode(),
        ):
            return _error(401, "missing or wrong bearer token")
        try:
            body = json.loads(raw) if raw else {}
        except (ValueError, UnicodeDecodeError):
            return _error(400, "body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object")
        if name == "send":
            failure = self._take_failure()
            if failure is not None:
                return failure
            return self._send(key, body, headers)
        if name == "session":
            if method == "PATCH":
                return self._patch_session(key, body)
            return _ok(self._session_info(key))
        if name == "reset":
            with self._lock:
                self.resets.append(key)
            return _ok({"key": key, "status": "reset"})
        if name == "broadcast":
            return self._broadcast(body, headers)
        if name == "invoke":
            if body.get("tool") != "browser":
                return _error(404, f"tool not available: {body.get('tool')!r}")
            return _ok({"tool": "browser", "echo": body.get("args")})
        return _ok({"status": "ok"})  # health

    def _take_failure(self) -> Answer | None:
        with self._lock:
            if self._failures <= 0:
                return None
            self._failures -= 1
            status, retry_after = self._failure_status, self._failure_retry_after
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return _error(status, "simulated failure", headers)

    def _send(self, key: str, body: dict[str, Any], headers: Message) -> Answer:
        text = body.get("text", "")
        attachments = body.get("attachments", [])
        if not isinstance(text, str) or not isinstance(attachments, list):
            return _error(400, "text must be a string and attachments a list")
        if not text.strip() and not attachments:
            return _error(400, "text or attachments required")
        idempotency_key = headers.get("Idempotency-Key")
        if not idempotency_key:
            return _error(400, "Idempotency-Key header is required")
        with self._lock:
            earlier = self._results.get(("send", idempotency_key))
            if earlier is not None:
                return _ok(earlier)  # a retry: same answer, nothing sent again
            record = GatewaySend(
                session_key=key,
                text=text,
                attachments=attachments,
                idempotency_key=idempotency_key,
                message_id=f"gw-{uuid.uuid4().hex[:20]}",
                received_at=time.time(),
                headers=dict(headers.items()),
                channel=_platform(key),
            )
            result = {
                "messageId": record.message_id,
                "sessionKey": key,
                "status": "sent",
                "timestamp": int(record.received_at * 1000),
            }
            self.received.append(record)
            self._results[("send", idempotency_key)] = result
            self._schedule_delivered(record)
        return _ok(result)

    def _broadcast(self, body: dict[str, Any], headers: Message) -> Answer:
        channel, recipients, text = (
            body.get("channel"),
            body.get("recipients"),
            body.get("text"),
        )
        if not isinstance(channel, str) or not channel:
            return _error(400, "channel is required")
        if not isinstance(recipients, list) or not recipients:
            return _error(400, "recipients must be a non-empty list")
        if not all(isinstance(r, str) and r for r in recipients):
            return _error(400, "recipients must be strings")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "text is required")
        idempotency_key = headers.get("Idempotency-Key")
        with self._lock:
            if idempotency_key:
                earlier = self._results.get(("broadcast", idempotency_key))
                if earlier is not None:
                    return _ok(earlier)
            now = time.time()
            results = []
            for recipient in recipients:
                record = GatewaySend(
                    session_key=recipient,
                    text=text,
                    attachments=[],
                    idempotency_key=idempotency_key,
                    message_id=f"gw-{uuid.uuid4().hex[:20]}",
                    received_at=now,
                    headers=dict(headers.items()),
                    kind="broadcast",
                    channel=channel,
                )
                self.received.append(record)
                results.append(
                    {
                        "recipient": recipient,
                        "messageId": record.message_id,
                        "status": "sent",
                    }
                )
            result = {"channel": channel, "sent": len(results), "results": results}
            if idempotency_key:
                self._results[("broadcast", idempotency_key)] = result
        return _ok(result)

    def _patch_session(self, key: str, body: dict[str, Any]) -> Answer:
        policy = body.get("sendPolicy")
        if policy not in ("allow", "deny"):
            return _error(400, 'sendPolicy must be "allow" or "deny"')
        with self._lock:
            self.policies[key] = policy
        return _ok(self._session_info(key))

    def _session_info(self, key: str) -> dict[str, Any]:
        with self._lock:
            return {
                "key": key,
                "sendPolicy": self.policies.get(key, "allow"),
                "messages": sum(1 for r in self.received if r.session_key == key),
            }

    # -- "delivered" webhooks ---------------------------------------------------------

    def _schedule_delivered(self, record: GatewaySend) -> None:
        """Post a "delivered" status for ``record`` soon. Needs the lock."""
        if not self.webhook_url or self._server is None:
            return
        timer = threading.Timer(self.delivery_delay, self._post_delivered, (record,))
        timer.daemon = True
        self._timers.add(timer)
        timer.start()

    def _post_delivered(self, record: GatewaySend) -> None:
        payload = {
            "event": "status",
            "data": {
                "sessionId": record.session_key,
                "channel": record.channel,
                # The Idempotency-Key is the inbox's own message id: it finds
                # the reply by it.
                "messageId": record.idempotency_key,
                "status": "delivered",
                "timestamp": int(time.time() * 1000),
            },
        }
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "X-OpenClaw-Signature": sign_openclaw(body, self.secret),
        }
        parts = urlsplit(self.webhook_url or "")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection_class = (
            http.client.HTTPSConnection
            if parts.scheme == "https"
            else http.client.HTTPConnection
        )
        connection = connection_class(
            parts.hostname or GATEWAY_HOST, parts.port, timeout=WEBHOOK_TIMEOUT
        )
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status >= 300 and not self.quiet:
                print(f"gateway simulator: webhook answered {response.status}")
        except (OSError, http.client.HTTPException) as exc:
            if not self.quiet:
                print(f"gateway simulator: webhook failed: {exc}")
        finally:
            connection.close()
            with self._lock:
                self.webhooks_posted += 1
                self._timers.discard(threading.current_thread())


class _GatewayHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a slow() answer must not hold up stop()
    allow_reuse_address = True  # rebind the same port right after go_down()

    def __init__(self, address: tuple[str, int], gateway: GatewayServer) -> None:
        self.gateway = gateway
        super().__init__(address, _GatewayHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out, or a connection dropped by stop(), is expected.
        if isinstance(sys.exc_info()[1], OSError) or self.gateway.quiet:
            return
        super().handle_error(request, client_address)


class _GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's pool expects
    # TCP_NODELAY, as Node's HTTP server sets by default since v18 (the real
    # gateway needs 22+). With Nagle on, the body written after the headers
    # waited for the client's delayed ACK: ~40 ms per send on a reused
    # connection, which the real gateway never costs.
    disable_nagle_algorithm = True
    timeout = 30  # an idle keep-alive connection frees its thread eventually
    server: _GatewayHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.gateway._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.gateway._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests and the demo would drown in access logs

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def _handle(self) -> None:
        gateway = self.server.gateway
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            length = -1  # not supported; requests sends a Content-Length
        if length < 0 or length > MAX_REQUEST_BYTES:
            self.close_connection = True  # the unread body would desync the stream
            self._write(*_error(413 if length > 0 else 400, "bad Content-Length"))
            return
        raw = self.rfile.read(length) if length else b""
        answer = gateway.dispatch(self.command, self.path, self.headers, raw)
        delay = gateway._answer_delay()
        if delay:
            time.sleep(delay)
        self._write(*answer)

    def _write(
        self, status: int, payload: dict[str, Any], headers: dict[str, str]
    ) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client gave up (a timeout)
