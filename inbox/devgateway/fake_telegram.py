"""A fake Telegram Bot API for the gateway's bundled telegram channel.

The gateway's ``channels.telegram.apiRoot`` points here; it then calls
``/bot<token>/<method>`` as on api.telegram.org: ``getMe``, ``getUpdates``
(long poll), ``sendMessage`` and a few housekeeping methods, which all
succeed. Customers exist only as updates this server hands out.

Test endpoints:
``POST /__test/customer {"chat_id": 5551, "name": "Carol", "text": "hi"}``
queues a private message from that customer; ``GET /__test/sent`` lists what
the gateway delivered (chat id, text, method); ``GET /__test/calls`` lists the
Bot API methods called; ``POST /__test/reset`` forgets sent messages and calls.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from inbox.devgateway.local_http import JsonHandler, LocalServer

BOT_TOKEN = "123456789:FAKE-TOKEN-for-local-tests"
BOT_USER = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "ShopBot",
    "username": "shop_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
# Real Telegram holds a poll up to the asked timeout; answering empty sooner is
# allowed and keeps the gateway's shutdown quick.
MAX_POLL_SECONDS = 10.0
# Methods that put a message in a chat: what the customer would see.
DELIVERING_METHODS = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "sendPhoto",
        "sendDocument",
        "sendAudio",
        "sendVoice",
        "sendVideo",
        "sendAnimation",
    }
)
MAX_CALLS_KEPT = 500


@dataclass(frozen=True)
class SentMessage:
    """One message the gateway delivered (or edited) in a chat."""

    chat_id: int | str
    text: str
    method: str
    message_id: int
    at: float  # time.time()
    params: dict[str, Any] = field(default_factory=dict)


class FakeTelegram(LocalServer):
    """The fake Bot API, in-process: ``start()``, ``url``, ``customer()``, ``sent``.

    State is guarded by ``self.lock``, a condition notified on every new
    update (long polls wake) and every delivered message (``wait_for_sent``).
    """

    name = "fake-telegram"

    def __init__(self, *, port: int = 0, bot_token: str = BOT_TOKEN) -> None:
        super().__init__(port=port)
        self.bot_token = bot_token
        self._updates: list[dict[str, Any]] = []
        self._sent: list[SentMessage] = []
        self._calls: list[dict[str, Any]] = []
        self._next_update_id = 100
        self._next_message_id = 1000

    @property
    def api_root(self) -> str:
        """What ``channels.telegram.apiRoot`` takes."""
        return self.url

    @property
    def sent(self) -> list[SentMessage]:
        with self.lock:
            return list(self._sent)

    @property
    def calls(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._calls)

    def sent_to(self, chat_id: int | str) -> list[SentMessage]:
        return [m for m in self.sent if str(m.chat_id) == str(chat_id)]

    def customer(
        self, chat_id: int, text: str, *, name: str = "Carol"
    ) -> dict[str, Any]:
        """Queue a private message from customer ``chat_id``; returns the update."""
        with self.lock:
            self._next_update_id += 1
            message_id = self._new_message_id()
            sender = {"id": chat_id, "is_bot": False, "first_name": name}
            update = {
                "update_id": self._next_update_id,
                "message": {
                    "message_id": message_id,
                    "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private", "first_name": name},
                    "from": {**sender, "language_code": "en"},
                    "text": text,
                },
            }
            self._updates.append(update)
            self.lock.notify_all()
        return update

    def wait_for_sent(
        self, chat_id: int | str, contains: str = "", *, timeout: float = 30.0
    ) -> SentMessage:
        """The first delivered message to ``chat_id`` containing ``contains``."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for message in self._sent:
                    if (
                        str(message.chat_id) == str(chat_id)
                        and contains in message.text
                    ):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"nothing containing {contains!r} sent to chat {chat_id} "
                        f"within {timeout:g} s"
                    )
                self.lock.wait(left)

    def reset(self) -> None:
        """Forget delivered messages and calls (queued updates stay)."""
        with self.lock:
            self._sent.clear()
            self._calls.clear()

    # -- the Bot API (called from handler threads) -------------------------------------

    def _new_message_id(self) -> int:
        self._next_message_id += 1
        return self._next_message_id

    def bot_method(self, method: str, params: dict[str, Any]) -> Any:
        """The ``result`` of one Bot API call."""
        with self.lock:
            self._calls.append({"method": method, "at": time.time()})
            del self._calls[:-MAX_CALLS_KEPT]
        if method == "getMe":
            return BOT_USER
        if method == "getUpdates":
            return self._poll(params)
        if method in DELIVERING_METHODS:
            return self._deliver(method, params)
        if method == "getChat":
            return {"id": _chat_id(params.get("chat_id")), "type": "private"}
        if method in ("getMyCommands", "getChatAdministrators"):
            return []
        if method == "getWebhookInfo":
            return {
                "url": "",
                "has_custom_certificate": False,
                "pending_update_count": 0,
            }
        # setMyCommands, deleteWebhook, sendChatAction, setMessageReaction, …
        return True

    def _poll(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = min(float(params.get("timeout") or 0), MAX_POLL_SECONDS)
        deadline = time.monotonic() + timeout
        with self.lock:
            # As Telegram: asking from an offset confirms every earlier update.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and not self.closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.lock.wait(left)
            return self._updates[:limit]

    def _deliver(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        text = params.get("text", params.get("caption", ""))
        chat_id = _chat_id(params.get("chat_id"))
        with self.lock:
            message_id = int(params.get("message_id") or 0) or self._new_message_id()
            self._sent.append(
                SentMessage(
                    chat_id=chat_id,
                    text=text if isinstance(text, str) else str(text),
                    method=method,
                    message_id=message_id,
                    at=time.time(),
                    params={k: v for k, v in params.items() if k != "text"},
                )
            )
            self.lock.notify_all()
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": BOT_USER,
            "text": text,
        }


class _FakeTelegramHandler(JsonHandler):
    owner: FakeTelegram

    def handle_request(self, method: str, path: str, params: dict[str, Any]) -> None:
        telegram = self.owner
        if path == "/__test/customer" and method == "POST":
            try:
                chat_id = int(params["chat_id"])
                text = str(params["text"])
            except (KeyError, TypeError, ValueError):
                self.send_json(
                    {"ok": False, "description": "needs chat_id (int) and text"},
                    status=400,
                )
                return
            name = str(params.get("name") or params.get("first_name") or "Carol")
            update = telegram.customer(chat_id, text, name=name)
            self.send_json({"ok": True, "result": update})
        elif path == "/__test/sent":
            sent = [asdict(message) for message in telegram.sent]
            self.send_json({"ok": True, "result": sent})
        elif path == "/__test/calls":
            self.send_json({"ok": True, "result": telegram.calls})
        elif path == "/__test/reset" and method == "POST":
            telegram.reset()
            self.send_json({"ok": True})
        else:
            self._bot_api(path, params)

    def _bot_api(self, path: str, params: dict[str, Any]) -> None:
        token, _, bot_method = path.strip("/").partition("/")
        if not token.startswith("bot") or not bot_method or "/" in bot_method:
            self.send_json(
                {"ok": False, "error_code": 404, "description": "Not Found"},
                status=404,
            )
            return
        if token[3:] != self.owner.bot_token:
            self.send_json(
                {"ok": False, "error_code": 401, "description": "Unauthorized"},
                status=401,
            )
            return
        self.send_json(
            {"ok": True, "result": self.owner.bot_method(bot_method, params)}
        )


FakeTelegram.handler_class = _FakeTelegramHandler


def _chat_id(value: Any) -> int | str:
    # The gateway sends chat ids as strings or numbers; Telegram answers numbers.
    text = str(value)
    return int(text) if text.lstrip("-").isdigit() else text
