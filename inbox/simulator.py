"""A sender of signed webhooks (docs/webhook-contract.md), for other senders than
the gateway itself, the tests and the benchmarks. The simulated gateway, which
speaks the real gateway's WebSocket RPC, is ``inbox/simulated_gateway.py``.

``Simulator`` posts several platforms with their own message-id styles, Korean
and English, bot replies, media, session resets and ends, gateway errors,
bursts, duplicate deliveries and out-of-order delivery. Every loop is bounded
by a count or a duration. It posts only to the URL it is given (loopback in
tests and benches).
"""

from __future__ import annotations

import http.client
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

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

    def _bot_reply(self, chat: Chat) -> dict[str, Any]:
        """The bot answers a customer who spoke last, so the thread reads naturally.

        With no such chat, the customer writes instead.
        """
        waiting = list(self._awaiting.values())
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
            parts.hostname or "127.0.0.1", parts.port or 80, timeout=10
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
