"""A stand-in OpenClaw gateway speaking the real one's WebSocket RPC (protocol 4).

The demo and most tests run on it with Python alone; the tests marked
``gateway`` run the same flows against the real gateway (``inbox/devgateway``).
It implements the subset the inbox uses, with the frames observed on
``openclaw@2026.9.6`` (``docs/gateway-api.md``):

* the handshake: ``connect.challenge`` → ``connect`` (shared token, or a signed
  device that is paired on first sight and given a device token) → ``hello-ok``;
* ``sessions.subscribe`` → ``session.message`` for every transcript row of
  every session, and ``sessions.changed``; ``tick`` events;
* ``chat.history`` (the tail with a ``deltaCursor``; a cursor gives
  ``kind: delta`` with exactly the rows after it, or ``kind: reset``),
  ``sessions.list``, ``sessions.describe``, ``sessions.patch`` (sendPolicy),
  ``sessions.reset``, ``sessions.abort`` (a takeover stops the turn in progress);
* ``send`` (a channel reply, idempotent by key, mirrored into the transcript as
  ``delivery-mirror``) and ``chat.inject`` (``gateway-injected``);
* with ``plugin=True``, the inbox plugin's ``inbox.takeover.*`` methods: a
  human-owned session records the customer but never runs the agent; its
  ``inbox.commands.*``: an allowlisted sender's direct "/..." message is
  recorded and the agent does not answer it (the inbox does);
* on the same port, HTTP ``/healthz``, ``/readyz`` and ``POST /tools/invoke``
  with the browser tool (``open``, ``text``, ``close``; it really fetches the
  page: ``docs/gateway-browser.md``).

The agent is a stub, as in the real-gateway harness: it answers ``bot: <text>``
(or one of ``bot_texts``) and every "model call" is counted per session. A
session whose sendPolicy is ``deny`` behaves as the real one does: on a channel
the agent still runs and its reply is written but not delivered; on webchat the
customer's message is refused. Customers are driven from Python
(``customer_writes``); what reached them is in ``delivered``.

It listens on 127.0.0.1 only. Failure controls (``fail_next``, ``slow``,
``go_down``/``come_up``, ``drop_connections``, ``mute``) serve the tests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import random
import re
import secrets
import socket
import socketserver
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from html import escape as html_escape
from http.server import BaseHTTPRequestHandler
from typing import Any

from bs4 import BeautifulSoup
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from soupsieve import SelectorSyntaxError
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.server import ServerProtocol
from websockets.sync.server import Server as WebSocketServer
from websockets.sync.server import ServerConnection

from inbox import protocol

_log = logging.getLogger(__name__)
HOST = "127.0.0.1"  # loopback only: this is a test double, not a service
MAX_HTTP_BODY = 1_048_576
SERVER_VERSION = "2026.9.6-sim"
STATUS_CODES = {  # fail_next(status=…) in HTTP terms, as the old tests speak
    400: ("INVALID_REQUEST", False),
    401: ("INVALID_REQUEST", False),
    403: ("FORBIDDEN", False),
    404: ("INVALID_REQUEST", False),
    408: ("UNAVAILABLE", True),
    429: ("UNAVAILABLE", True),
}
PLUGIN_METHODS = (
    "inbox.takeover.set", "inbox.takeover.sync", "inbox.takeover.list",
    "inbox.commands.sync", "inbox.commands.list",
)  # fmt: skip
CORE_METHODS = (
    "sessions.subscribe", "sessions.list", "sessions.describe", "sessions.patch",
    "sessions.reset", "sessions.abort", "chat.history", "send", "health",
)  # fmt: skip


class _Refusal(Exception):
    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.error = {"code": code, "message": message, **extra}


@dataclass
class GatewaySend:
    """One human reply the gateway accepted (``send`` or ``chat.inject``)."""

    session_key: str
    text: str
    idempotency_key: str | None
    message_id: str
    received_at: float
    kind: str = "send"  # or "inject"
    channel: str = ""
    attachments: list[str] = field(default_factory=list)


@dataclass
class _Session:
    key: str
    channel: str
    peer: str
    name: str = ""
    generation: str = field(default_factory=lambda: str(uuid.uuid4()))
    rows: list[dict[str, Any]] = field(default_factory=list)
    send_policy: str | None = None
    updated_at: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def is_webchat(self) -> bool:
        return self.channel in protocol.INTERNAL_CHANNELS

    def summary(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "key": self.key,
            "sessionId": self.generation,
            "chatType": "direct",
            "status": "done",
            "hasActiveRun": False,
            "updatedAt": self.updated_at,
        }
        if not self.is_webchat:
            row["channel"] = self.channel
        if self.send_policy:
            row["sendPolicy"] = self.send_policy
        return row

    def delivery_context(self) -> dict[str, str] | None:
        if self.is_webchat:
            return None
        return {
            "channel": self.channel,
            "to": f"{self.channel}:{self.peer}",
            "accountId": "default",
        }


def _assistant(
    text: str,
    *,
    api: str,
    provider: str,
    model: str,
    tokens: tuple[int, int] = (0, 0),
    **extra: str,
) -> dict[str, Any]:
    """An assistant transcript row as the gateway writes it (the bot's reply,
    or one of ours echoed back: ``delivery-mirror``, ``gateway-injected``)."""
    prompt, completion = tokens
    return {
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "api": api,
        "provider": provider,
        "model": model,
        "usage": {
            "input": prompt,
            "output": completion,
            "totalTokens": prompt + completion,
        },
        "stopReason": "stop",
        **extra,
    }


def _cursor(session: _Session) -> str:
    raw = json.dumps(
        {"generation": session.generation, "lastSeq": len(session.rows), "version": 1}
    ).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _read_cursor(cursor: str) -> tuple[str, int] | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return str(data["generation"]), int(data["lastSeq"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None


def session_key_for(channel: str, peer: str) -> str:
    """The key of a DM under the real gateway's ``dmScope: per-channel-peer``."""
    if channel in protocol.INTERNAL_CHANNELS:
        return f"agent:main:web-{peer}"
    return f"agent:main:{channel}:direct:{peer}"


class GatewayServer:
    """The simulated gateway. One lock guards all state; events go out under it,
    so every subscriber sees each session's rows in seq order."""

    def __init__(
        self,
        *,
        port: int = 0,
        token: str = "",
        plugin: bool = False,
        enforcing: bool = True,
        tick_interval: float = 30.0,
        bot_texts: list[str] | None = None,
        quiet: bool = True,
    ) -> None:
        self.port = port
        self.token = token
        self.plugin = plugin
        # False: the plugin is loaded but the gateway withholds its hook
        # (no allowConversationAccess): it cannot stop the agent.
        self.enforcing = enforcing
        self.tick_interval = tick_interval
        self.bot_texts = bot_texts
        self.quiet = quiet
        self.received: list[GatewaySend] = []
        self.attempts = 0  # every send/inject request that reached a handler
        self.model_calls: list[tuple[str, str]] = []  # (session key, customer text)
        # The browser tool (``POST /tools/invoke``): every call's args, in order.
        self.browser = SimulatedBrowser()
        self.browser_calls: list[dict[str, Any]] = []
        self.delivered: list[tuple[str, str]] = []  # what reached customers
        self.refused: list[tuple[str, str]] = []  # customer messages refused
        self.resets: list[str] = []
        self.aborts: list[str] = []  # sessions.abort calls, by session key
        self.owners: dict[str, str] = {}  # the plugin's human-owned sessions
        # The plugin's ops-command senders: (channel, sender id).
        self.command_senders: set[tuple[str, str]] = set()
        self.devices: dict[str, str] = {}  # paired device id -> device token
        self.connections_opened = 0
        self._sessions: dict[str, _Session] = {}
        self._results: dict[str, dict[str, Any]] = {}  # send idempotency
        self._subscribers: list[ServerConnection] = []
        self._connections: set[socket.socket] = set()
        self._event_seq = 0
        self._failures: list[dict[str, Any]] = []
        self._delay = 0.0
        self._muted: dict[str, int] = {}
        # Set: our replies' echoes (the transcript rows that confirm delivery)
        # wait for it before they are pushed, as a slow channel would.
        self.echo_gate: threading.Event | None = None
        # Set: no ticks go out (a gateway whose socket went silent).
        self.ticks_paused = False
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # -- lifecycle ------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("GatewayServer has no port until started")
        return f"ws://{HOST}:{self.port}"

    @property
    def http_url(self) -> str:
        return protocol.http_base(self.url)

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> GatewayServer:
        with self._lock:
            if self._server is not None:
                return self
            server = _Server((HOST, self.port), self)
            self.port = server.server_address[1]  # port 0 -> the one we got, kept
            self._server = server
            self._stopping.clear()
            serve = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"gateway-sim-{self.port}",
                daemon=True,
            )
            ticks = threading.Thread(
                target=self._tick_loop,
                name=f"gateway-sim-ticks-{self.port}",
                daemon=True,
            )
            self._threads = [serve, ticks]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection (a gateway that went away)."""
        with self._lock:
            server, self._server = self._server, None
            threads, self._threads = self._threads, []
        self._stopping.set()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self.drop_connections()
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    go_down = stop
    come_up = start

    # -- controls -------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: float | None = None,
        *,
        code: str | None = None,
    ) -> None:
        """Refuse the next ``n`` replies (``send``/``chat.inject``).

        ``status`` says it the HTTP way (5xx, 408, 429 → retryable
        ``UNAVAILABLE``; other 4xx → a permanent refusal); ``code`` overrides.
        """
        name, retryable = STATUS_CODES.get(status, ("UNAVAILABLE", status >= 500))
        error: dict[str, Any] = {
            "code": code or name,
            "message": "simulated failure",
            "retryable": retryable,
        }
        if retry_after is not None:
            error["retryAfterMs"] = int(retry_after * 1000)
        with self._lock:
            self._failures = [dict(error) for _ in range(n)]

    def slow(self, seconds: float) -> None:
        """Delay the answer to every reply (``send``, ``chat.inject``) by
        ``seconds`` (0 restores); the reply itself is delivered at once."""
        with self._lock:
            self._delay = max(0.0, seconds)

    def drop_connections(self) -> None:
        """Cut every open socket at once, as a network failure would."""
        with self._lock:
            connections, self._connections = self._connections, set()
            self._subscribers = []
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer

    def mute(self, session_key: str, rows: int = 1) -> None:
        """Record the next ``rows`` of a session without pushing them live (a gap)."""
        with self._lock:
            self._muted[session_key] = rows

    def policy(self, session_key: str) -> str:
        with self._lock:
            session = self._sessions.get(session_key)
            return (session.send_policy if session else None) or "allow"

    def transcript(self, session_key: str) -> list[dict[str, Any]]:
        with self._lock:
            session = self._sessions.get(session_key)
            return list(session.rows) if session else []

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    # -- customers and the agent -----------------------------------------------------

    def customer_writes(
        self,
        session_key: str,
        text: str,
        *,
        name: str = "Customer",
        sender_id: str = "",
        channel: str | None = None,
        bot: bool = True,
    ) -> dict[str, Any] | None:
        """A customer's message arrives; the agent answers unless stopped.

        Returns the transcript row, or ``None`` when the gateway refused it
        (webchat under ``sendPolicy: deny``). ``bot=False``: no agent run
        (the demo answers on its own schedule with ``bot_replies``).
        """
        with self._lock:
            session = self._session(session_key, channel=channel, name=name)
            if session.is_webchat and session.send_policy == "deny":
                self.refused.append((session_key, text))
                return None
            meta: dict[str, Any] = {"senderIsOwner": False}
            if not session.is_webchat:
                peer = sender_id or session.peer
                meta |= {
                    "senderId": peer,
                    "senderName": name,
                    "senderIdentity": {
                        "type": "observation",
                        "id": peer,
                        "pluginId": session.channel,
                        "accountId": "default",
                        "senderKind": "human",
                    },
                    "transport": {
                        "channel": session.channel,
                        "messageId": str(len(session.rows) + 1000),
                    },
                }
            row = self._append(
                session,
                {
                    "role": "user",
                    "content": text,
                    "idempotencyKey": f"channel-user:v1:{uuid.uuid4().hex}",
                },
                meta,
            )
            if bot and not self._held(session_key):
                if not self._ops_command(session, meta.get("senderId"), text):
                    self.bot_replies(session_key, customer_text=text)
            return row

    def _ops_command(self, session: _Session, sender_id: Any, text: str) -> bool:
        """The plugin claims an allowlisted sender's direct command. Needs the lock."""
        return (
            self.enforcing
            and (session.channel, str(sender_id)) in self.command_senders
            and re.match(r"/[A-Za-z]", text.strip()) is not None
            and not any(f":{k}:" in session.key for k in ("group", "channel"))
        )

    def bot_replies(
        self, session_key: str, *, customer_text: str = "", text: str | None = None
    ) -> dict[str, Any] | None:
        """One agent run: a "model call", then its reply in the transcript.

        Under ``sendPolicy: deny`` the reply is written but not delivered, as
        the real gateway does. In a human-owned session (the plugin) the agent
        does not run at all: ``None``.
        """
        with self._lock:
            session = self._session(session_key)
            if self._held(session_key):
                return None
            self.model_calls.append((session_key, customer_text))
            if text is None:
                text = (
                    self.bot_texts[len(self.model_calls) % len(self.bot_texts)]
                    if self.bot_texts
                    else f"bot: {customer_text}"
                )
            row = self._append(
                session,
                _assistant(
                    text,
                    api="openai-completions",
                    provider="stub",
                    model="stub-model",
                    tokens=(10, 5),
                ),
                {"runId": str(uuid.uuid4())},
            )
            # The plugin cancels what the agent sends in an owned session.
            if session.send_policy != "deny" and session_key not in self.owners:
                self.delivered.append((session_key, text))
            return row

    def _held(self, session_key: str) -> bool:
        """The plugin claims this session's turns: no agent run. Needs the lock."""
        return self.enforcing and session_key in self.owners

    def _session(
        self, key: str, *, channel: str | None = None, name: str = ""
    ) -> _Session:
        session = self._sessions.get(key)
        if session is None:
            parts = key.split(":")
            found = protocol.channel_of(key)
            session = _Session(
                key=key,
                channel=channel or found,
                peer=parts[-1] if len(parts) >= 5 else key.rsplit("-", 1)[-1],
                name=name,
            )
            self._sessions[key] = session
        return session

    def _append(
        self, session: _Session, message: dict[str, Any], meta: dict[str, Any]
    ) -> dict[str, Any]:
        """Write one transcript row and push it to subscribers. Needs the lock."""
        now = int(time.time() * 1000)
        seq = len(session.rows) + 1
        message_id = str(uuid.uuid4())
        message = {
            **message,
            "timestamp": now,
            "__openclaw": {
                **meta,
                "id": message_id,
                "recordTimestampMs": now,
                "seq": seq,
            },
        }
        session.updated_at = now
        payload = {
            "sessionKey": session.key,
            "agentId": "main",
            "message": message,
            "messageId": message_id,
            "messageSeq": seq,
            "session": session.summary(),
        }
        session.rows.append(payload)
        muted = self._muted.get(session.key, 0)
        if muted:
            self._muted[session.key] = muted - 1
        else:
            self._broadcast("session.message", payload)
        return payload

    def _append_echo(
        self, session: _Session, message: dict[str, Any], meta: dict[str, Any]
    ) -> dict[str, Any]:
        """``_append`` for our replies' echoes, held back by ``echo_gate``."""
        gate = self.echo_gate
        if gate is None or gate.is_set():
            return self._append(session, message, meta)
        self._muted[session.key] = self._muted.get(session.key, 0) + 1
        row = self._append(session, message, meta)

        def push() -> None:
            gate.wait(timeout=60)
            with self._lock:
                if self._server is not None:  # stopped meanwhile: push nothing
                    self._broadcast("session.message", row)

        threading.Thread(target=push, daemon=True).start()
        return row

    # -- events ---------------------------------------------------------------------

    def _broadcast(self, event: str, payload: dict[str, Any]) -> None:
        """Send an event to every subscriber. Needs the lock (keeps the order)."""
        self._event_seq += 1
        frame = json.dumps(
            {
                "type": "event",
                "event": event,
                "payload": payload,
                "seq": self._event_seq,
            },
            ensure_ascii=False,
        )
        for connection in list(self._subscribers):
            try:
                connection.send(frame)
            except (ConnectionClosed, OSError):
                self._subscribers.remove(connection)

    def _tick_loop(self) -> None:
        while not self._stopping.wait(self.tick_interval):
            if self.ticks_paused:
                continue
            with self._lock:
                self._broadcast("tick", {"ts": int(time.time() * 1000)})

    # -- the RPC connection ------------------------------------------------------------

    def _serve_websocket(self, sock: socket.socket) -> None:
        server = self._server
        if server is None:
            return
        connection = ServerConnection(
            sock, ServerProtocol(logger=_log), server.websockets, ping_interval=None
        )
        try:
            connection.handshake(timeout=5)
        except (InvalidHandshake, TimeoutError, OSError, ConnectionClosed):
            return
        with self._lock:
            self.connections_opened += 1
        try:
            nonce = str(uuid.uuid4())
            ts = int(time.time() * 1000)
            connection.send(
                json.dumps(
                    {
                        "type": "event",
                        "event": "connect.challenge",
                        "payload": {"nonce": nonce, "ts": ts, "capabilities": []},
                    }
                )
            )
            if not self._accept(connection, nonce, ts):
                return
            for text in connection:
                self._answer(connection, text)
        except (ConnectionClosed, OSError):
            pass
        finally:
            with self._lock:
                if connection in self._subscribers:
                    self._subscribers.remove(connection)
            connection.close()

    def _accept(self, connection: ServerConnection, nonce: str, ts: int) -> bool:
        """The handshake: the first frame must be a valid ``connect``."""
        try:
            frame = protocol.parse_frame(connection.recv(timeout=10))
        except (protocol.ProtocolError, TimeoutError):
            return False
        if frame.get("type") != "req" or frame.get("method") != "connect":
            connection.close(1008, "first frame must be connect")
            return False
        params = frame.get("params") or {}
        try:
            device_token = self._authenticate(params, nonce, ts)
        except _Refusal as refusal:
            self._reply(connection, frame, error=refusal.error)
            connection.close(1008, "unauthorized")
            return False
        methods = list(CORE_METHODS) + (list(PLUGIN_METHODS) if self.plugin else [])
        auth: dict[str, Any] = {
            "method": "token",
            "role": "operator",
            "scopes": list(protocol.SCOPES),
        }
        if device_token:
            auth["deviceToken"] = device_token
        self._reply(
            connection,
            frame,
            payload={
                "type": "hello-ok",
                "protocol": protocol.PROTOCOL_VERSION,
                "server": {"version": SERVER_VERSION},
                "features": {
                    "methods": methods,
                    "events": ["session.message", "sessions.changed", "tick"],
                },
                "auth": auth,
                "policy": {
                    "maxPayload": 26214400,
                    "tickIntervalMs": int(self.tick_interval * 1000),
                },
            },
        )
        return True

    def _authenticate(self, params: dict[str, Any], nonce: str, ts: int) -> str:
        """Check the token (shared or a device's); pair a signed device."""
        if params.get("minProtocol") != protocol.PROTOCOL_VERSION:
            raise _Refusal("INVALID_REQUEST", "protocol mismatch")
        token = str((params.get("auth") or {}).get("token") or "")
        device = params.get("device")
        known = set(self.devices.values())
        if self.token and not (
            hmac.compare_digest(token.encode(), self.token.encode()) or token in known
        ):
            raise _Refusal(
                "INVALID_REQUEST",
                "unauthorized: gateway token mismatch",
                details={"code": "AUTH_TOKEN_MISMATCH"},
            )
        if not isinstance(device, dict):
            return ""
        try:
            public = base64.urlsafe_b64decode(
                str(device["publicKey"]) + "=" * (-len(str(device["publicKey"])) % 4)
            )
            device_id = hashlib.sha256(public).hexdigest()
            if device_id != device.get("id") or device.get("nonce") != nonce:
                raise ValueError("device id or nonce mismatch")
            client = params.get("client") or {}
            payload = protocol.signature_payload(
                device_id=device_id,
                token=token,
                nonce=nonce,
                signed_at=int(device.get("signedAt") or 0),
                client_id=str(client.get("id") or ""),
                client_mode=str(client.get("mode") or ""),
                scopes=tuple(params.get("scopes") or ()),
                platform=str(client.get("platform") or ""),
            )
            signature = base64.urlsafe_b64decode(
                str(device["signature"]) + "=" * (-len(str(device["signature"])) % 4)
            )
            Ed25519PublicKey.from_public_bytes(public).verify(
                signature, payload.encode()
            )
        except (KeyError, ValueError, TypeError, binascii.Error, InvalidSignature):
            raise _Refusal(
                "INVALID_REQUEST",
                "device signature invalid",
                details={"code": "DEVICE_AUTH_INVALID"},
            ) from None
        with self._lock:  # loopback: paired on first sight, as the real one does
            return self.devices.setdefault(device_id, secrets.token_urlsafe(24))

    def _answer(self, connection: ServerConnection, text: Any) -> None:
        try:
            frame = protocol.parse_frame(text)
        except protocol.ProtocolError:
            return
        if frame.get("type") != "req":
            return
        method = str(frame.get("method") or "")
        params = frame.get("params")
        params = params if isinstance(params, dict) else {}
        try:
            handler = getattr(self, "_rpc_" + method.replace(".", "_"), None)
            if handler is None or (method in PLUGIN_METHODS and not self.plugin):
                raise _Refusal("INVALID_REQUEST", f"unknown method: {method}")
            payload = handler(connection, params)
        except _Refusal as refusal:
            self._delayed(method)
            self._reply(connection, frame, error=refusal.error)
            return
        self._delayed(method)
        self._reply(connection, frame, payload=payload)

    def _delayed(self, method: str) -> None:
        if method not in ("send", "chat.inject"):
            return
        with self._lock:
            delay = self._delay
        if delay:
            time.sleep(delay)

    def _reply(
        self,
        connection: ServerConnection,
        frame: dict[str, Any],
        *,
        payload: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        answer: dict[str, Any] = {"type": "res", "id": frame.get("id")}
        if error is not None:
            answer |= {"ok": False, "error": error}
        else:
            answer |= {"ok": True, "payload": payload or {}}
        try:
            connection.send(json.dumps(answer, ensure_ascii=False))
        except (ConnectionClosed, OSError):
            pass  # the client went away; its call fails on its side

    # -- methods ---------------------------------------------------------------------

    def _known(self, key: Any) -> _Session:
        """The session ``key`` names. Needs the lock.

        A key shaped like the gateway's own (``agent:…``) is taken as known
        even if no customer wrote in this process: the tests make most
        conversations by webhook, and the real gateway knows every session
        that ever wrote.
        """
        if not isinstance(key, str) or not key.startswith("agent:"):
            raise _Refusal("INVALID_REQUEST", f"unknown session: {key}")
        return self._session(key)

    def _rpc_health(self, connection: ServerConnection, params: dict) -> dict:
        return {"ok": True}

    def _rpc_sessions_subscribe(
        self, connection: ServerConnection, params: dict
    ) -> dict:
        with self._lock:
            if connection not in self._subscribers:
                self._subscribers.append(connection)
        return {"subscribed": True}

    def _rpc_sessions_list(self, connection: ServerConnection, params: dict) -> dict:
        limit = params.get("limit")
        limit = limit if isinstance(limit, int) and limit > 0 else 50
        with self._lock:
            rows = sorted(
                (s.summary() for s in self._sessions.values()),
                key=lambda row: row["updatedAt"],
                reverse=True,
            )
        return {"sessions": rows[:limit], "count": len(rows)}

    def _rpc_sessions_describe(
        self, connection: ServerConnection, params: dict
    ) -> dict:
        with self._lock:
            session = self._known(params.get("key"))
            row = session.summary()
            context = session.delivery_context()
            if context:
                row["deliveryContext"] = context
            return {"session": row}

    def _rpc_sessions_patch(self, connection: ServerConnection, params: dict) -> dict:
        policy = params.get("sendPolicy", "")
        if policy not in ("allow", "deny", None):
            raise _Refusal("INVALID_REQUEST", "sendPolicy must be allow, deny or null")
        with self._lock:
            session = self._known(params.get("key"))
            session.send_policy = policy
            self._broadcast(
                "sessions.changed",
                {
                    "sessionKey": session.key,
                    "reason": "patch",
                    "session": session.summary(),
                },
            )
            return {"ok": True, "key": session.key, "entry": session.summary()}

    def _rpc_sessions_reset(self, connection: ServerConnection, params: dict) -> dict:
        with self._lock:
            session = self._known(params.get("key"))
            session.generation = str(uuid.uuid4())
            session.rows = []
            self.resets.append(session.key)
            return {"ok": True, "key": session.key}

    def _rpc_sessions_abort(self, connection: ServerConnection, params: dict) -> dict:
        """The stub agent's turns end as they start: none is ever running, so
        this answers as the real gateway does for an idle session."""
        with self._lock:
            session = self._known(params.get("key"))
            self.aborts.append(session.key)
            return {"ok": True, "abortedRunId": None, "status": "aborted"}

    def _rpc_chat_history(self, connection: ServerConnection, params: dict) -> dict:
        with self._lock:
            session = self._known(params.get("sessionKey"))
            cursor = params.get("cursor")
            if cursor is not None:
                position = _read_cursor(str(cursor))
                if position is None or position[0] != session.generation:
                    return {"kind": "reset", "sessionKey": session.key}
                return {
                    "kind": "delta",
                    "messages": session.rows[position[1] :],
                    "deltaCursor": _cursor(session),
                }
            limit = params.get("limit")
            limit = limit if isinstance(limit, int) and limit > 0 else 200
            return {
                "sessionKey": session.key,
                "sessionId": session.generation,
                "messages": [row["message"] for row in session.rows[-limit:]],
                "deltaCursor": _cursor(session),
                "hasMore": len(session.rows) > limit,
                "totalMessages": len(session.rows),
            }

    def _take_failure(self) -> None:
        with self._lock:
            self.attempts += 1
            if self._failures:
                error = self._failures.pop(0)
                raise _Refusal(**error)

    def _rpc_send(self, connection: ServerConnection, params: dict) -> dict:
        self._take_failure()
        key = params.get("idempotencyKey")
        text = params.get("message")
        if not isinstance(key, str) or not key:
            raise _Refusal("INVALID_REQUEST", "idempotencyKey is required")
        media = params.get("mediaUrls") or []
        if not (isinstance(text, str) and text.strip()) and not media:
            raise _Refusal("INVALID_REQUEST", "message or media is required")
        channel = str(params.get("channel") or "")
        if channel in protocol.INTERNAL_CHANNELS:
            raise _Refusal(
                "INVALID_REQUEST", f"unsupported channel: {channel} (internal-only)"
            )
        with self._lock:
            earlier = self._results.get(key)
            if earlier is not None:
                return earlier  # a retry: the same answer, nothing delivered again
            if params.get("sessionKey") is None:
                # Outside any session (the admin group's digest, a monitor's
                # alert): the real gateway sends to the target as given.
                return self._send_to_target(channel, params.get("to"), text, key)
            session = self._known(params.get("sessionKey"))
            if params.get("to") != f"{session.channel}:{session.peer}":
                raise _Refusal("INVALID_REQUEST", "unknown target")
            number = str(len(self.received) + 1000)
            self.received.append(
                GatewaySend(
                    session.key, text or "", key, number, time.time(),
                    channel=channel, attachments=list(media),
                )
            )  # fmt: skip
            self.delivered.append((session.key, text or ""))
            self._append_echo(
                session,
                _assistant(
                    text or "",
                    api="openclaw-transcript",
                    provider="openclaw",
                    model=protocol.MIRROR_MODEL,
                    idempotencyKey=key,
                ),
                {"idempotencyKey": key},
            )
            result = {"runId": key, "messageId": number, "channel": channel}
            self._results[key] = result
        _log_send(f"{session.channel}:{session.peer}", str(text or ""), media)
        return result

    def _send_to_target(self, channel: str, to: Any, text: Any, key: str) -> dict:
        """A ``send`` with no session: recorded, nothing mirrored. Needs the lock."""
        if not channel or not isinstance(to, str) or not to:
            raise _Refusal("INVALID_REQUEST", "channel and to are required")
        number = str(len(self.received) + 1000)
        self.received.append(
            GatewaySend("", str(text or ""), key, number, time.time(), channel=channel)
        )
        self.delivered.append((to, str(text or "")))
        result = {"runId": key, "messageId": number, "channel": channel}
        self._results[key] = result
        target = to if to.startswith(f"{channel}:") else f"{channel}:{to}"
        _log_send(target, str(text or ""), [])
        return result

    def _rpc_chat_inject(self, connection: ServerConnection, params: dict) -> dict:
        self._take_failure()
        text = params.get("message")
        if not isinstance(text, str) or not text:
            raise _Refusal("INVALID_REQUEST", "message is required")
        label = params.get("label")
        body = f"[{label}]\n\n{text}" if label else text
        with self._lock:
            session = self._known(params.get("sessionKey"))
            row = self._append_echo(
                session,
                _assistant(
                    body,
                    api="openai-responses",
                    provider="openclaw",
                    model=protocol.INJECTED_MODEL,
                ),
                {},
            )
            self.received.append(
                GatewaySend(
                    session.key, text, None, row["messageId"], time.time(),
                    kind="inject", channel=session.channel,
                )
            )  # fmt: skip
            if session.is_webchat:
                self.delivered.append((session.key, body))
        # Length only, never the text: it is a customer's conversation.
        _log.info("chat.inject into %s, %d chars", session.key, len(text))
        return {"ok": True, "messageId": row["messageId"]}

    def _rpc_inbox_takeover_set(
        self, connection: ServerConnection, params: dict
    ) -> dict:
        key, owner = params.get("sessionKey"), params.get("owner")
        if not isinstance(key, str) or not key:
            raise _Refusal("INVALID_REQUEST", "sessionKey is required")
        if owner is not None and not isinstance(owner, str):
            raise _Refusal("INVALID_REQUEST", "owner must be a string or null")
        with self._lock:
            if owner:
                self.owners[key] = owner
            else:
                self.owners.pop(key, None)
        return {
            "ok": True,
            "sessionKey": key,
            "owner": owner or None,
            "enforcing": self.enforcing,
        }

    def _rpc_inbox_takeover_sync(
        self, connection: ServerConnection, params: dict
    ) -> dict:
        rows = params.get("sessions")
        if not isinstance(rows, list):
            raise _Refusal("INVALID_REQUEST", "sessions must be a list")
        owners = {
            row["sessionKey"]: row["owner"]
            for row in rows
            if isinstance(row, dict)
            and isinstance(row.get("sessionKey"), str)
            and isinstance(row.get("owner"), str)
            and row["owner"]
        }
        with self._lock:
            self.owners = owners
        return {"ok": True, "total": len(owners), "enforcing": self.enforcing}

    def _rpc_inbox_takeover_list(
        self, connection: ServerConnection, params: dict
    ) -> dict:
        with self._lock:
            return {
                "sessions": [
                    {"sessionKey": k, "owner": v}
                    for k, v in sorted(self.owners.items())
                ]
            }

    def _rpc_inbox_commands_sync(
        self, connection: ServerConnection, params: dict
    ) -> dict:
        rows = params.get("senders")
        if not isinstance(rows, list) or not all(
            isinstance(row, dict)
            and isinstance(row.get("channel"), str)
            and isinstance(row.get("senderId"), str)
            for row in rows
        ):
            raise _Refusal("INVALID_REQUEST", "senders must be [{channel, senderId}]")
        with self._lock:
            self.command_senders = {
                (row["channel"].lower(), row["senderId"]) for row in rows
            }
            total = len(self.command_senders)
        return {"total": total, "enforcing": self.enforcing}

    def _rpc_inbox_commands_list(
        self, connection: ServerConnection, params: dict
    ) -> dict:
        with self._lock:
            return {
                "senders": [
                    {"channel": c, "senderId": s}
                    for c, s in sorted(self.command_senders)
                ]
            }

    # -- HTTP --------------------------------------------------------------------------

    def answer_http(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        if method == "GET" and path in ("/healthz", "/health"):
            return 200, {"ok": True, "status": "live"}
        if method == "GET" and path == "/readyz":
            return 200, {"ready": True}
        if path != "/tools/invoke":
            return 404, {"ok": False, "error": {"type": "not_found", "message": path}}
        if method != "POST":
            return 405, {"ok": False, "error": {"type": "method_not_allowed"}}
        if self.token and not hmac.compare_digest(
            (headers.get("Authorization") or "").encode(),
            f"Bearer {self.token}".encode(),
        ):
            return 401, {"ok": False, "error": {"type": "unauthorized"}}
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, {"ok": False, "error": {"type": "invalid_request"}}
        if not isinstance(request, dict) or request.get("tool") != "browser":
            return 404, {"ok": False, "error": {"type": "not_found", "message": "tool"}}
        args = request.get("args")
        args = args if isinstance(args, dict) else {}
        with self._lock:
            self.browser_calls.append(dict(args))
        return self.browser.invoke(args)


# -- the browser tool -------------------------------------------------------------
# The real tool (openclaw's browser plugin) drives Chromium; this one fetches
# the page with urllib and reads its text with BeautifulSoup (CSS selectors by
# soupsieve). Same actions, same answer shapes, same untrusted-content wrapper
# around page text (docs/gateway-browser.md).

EXTERNAL_START = "EXTERNAL_UNTRUSTED_CONTENT"
EXTERNAL_END = "END_EXTERNAL_UNTRUSTED_CONTENT"
EXTERNAL_WARNING = (
    "SECURITY NOTICE: The following content is from an EXTERNAL, UNTRUSTED "
    "source (e.g., email, webhook)."
)
BROWSER_MAX_PAGE_BYTES = 2 * 1024 * 1024
BROWSER_FETCH_TIMEOUT = 10.0
BROWSER_DEFAULT_MAX_CHARS = 40_000
# Not rendered by a browser: innerText leaves them out.
_INVISIBLE_TAGS = ("script", "style", "noscript", "template", "head", "svg")


def _log_send(target: str, text: str, media: list[Any]) -> None:
    """One line per accepted ``send``: where and how long, never the text
    (replies and the digest carry customers' words)."""
    extra = f", {len(media)} attachments" if media else ""
    _log.info("send to %s, %d chars%s", target, len(text), extra)


def wrap_external(text: str, *, warning: bool = True) -> str:
    """Page text as the real gateway hands it over: fenced and labelled."""
    marker = secrets.token_hex(8)
    parts = [EXTERNAL_WARNING + "\n"] if warning else []
    parts += [
        f'<<<{EXTERNAL_START} id="{marker}">>>',
        "Source: Browser",
        "---",
        text,
        f'<<<{EXTERNAL_END} id="{marker}">>>',
    ]
    return "\n".join(parts)


def visible_text(html: str, selector: str = "") -> str | None:
    """The text a browser shows in the first match of ``selector`` (else
    article, main or body, as the real tool picks); ``None`` when nothing
    matches. Raises ``ValueError`` for a selector that does not parse."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(_INVISIBLE_TAGS):
        tag.decompose()
    try:
        if selector:
            node = soup.select_one(selector)
        else:
            node = soup.select_one("article") or soup.select_one("main") or soup.body
            node = node or soup
    except SelectorSyntaxError as exc:
        raise ValueError(f"invalid selector {selector!r}: {exc}") from exc
    if node is None:
        return None
    lines = (" ".join(line.split()) for line in node.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


def network_error_page(url: str, error: OSError) -> bytes:
    """Chromium's page for a site that cannot be reached, as its ``text`` reads
    (observed on the real gateway: "127.0.0.1 refused to connect." and the
    error code on a line of its own)."""
    host = urllib.parse.urlsplit(url).hostname or url
    if isinstance(error, ConnectionRefusedError):
        line, code = f"{host} refused to connect.", "ERR_CONNECTION_REFUSED"
    elif isinstance(error, TimeoutError):
        line, code = f"{host} took too long to respond.", "ERR_CONNECTION_TIMED_OUT"
    elif isinstance(error, ConnectionResetError):
        line, code = "The connection was reset.", "ERR_CONNECTION_RESET"
    else:
        line, code = f"{host} unexpectedly closed the connection.", "ERR_FAILED"
    page = (
        "<html><body><h1>This site can’t be reached</h1>"
        f"<p>{html_escape(line)}</p><p>Try:</p><ul><li>Checking the connection</li>"
        "<li>Checking the proxy and the firewall</li></ul>"
        f"<div>{code}</div><button>Reload</button><button>Details</button>"
        "</body></html>"
    )
    return page.encode()


class SimulatedBrowser:
    """Tabs that hold a fetched page; ``invoke`` answers one tool call."""

    def __init__(self) -> None:
        self._tabs: dict[str, tuple[str, str]] = {}  # targetId -> (url, html)
        self._lock = threading.Lock()

    @property
    def open_tabs(self) -> int:
        with self._lock:
            return len(self._tabs)

    def invoke(self, args: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        action = args.get("action")
        try:
            if action == "open":
                return 200, self._open(
                    str(args.get("targetUrl") or args.get("url") or "")
                )
            if action == "text":
                return 200, self._text(args)
            if action == "close":
                return 200, self._close(str(args.get("targetId") or ""))
        except _ToolInputError as exc:
            return 400, {
                "ok": False,
                "error": {"type": "tool_error", "message": str(exc)},
            }
        except _ToolFailure as exc:
            _log.info("simulated browser tool failed: %s", exc)
            # The real gateway logs the reason and says only this.
            return 500, {
                "ok": False,
                "error": {"type": "tool_error", "message": "tool execution failed"},
            }
        return 400, {
            "ok": False,
            "error": {"type": "tool_error", "message": f"Unknown action: {action}"},
        }

    def _open(self, url: str) -> dict[str, Any]:
        if not url:
            raise _ToolInputError("targetUrl required")
        if not url.startswith(("http://", "https://")):
            raise _ToolInputError(f"Invalid URL: {url}")
        # No proxy from the environment: tests talk to 127.0.0.1 only.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=BROWSER_FETCH_TIMEOUT) as response:
                raw = response.read(BROWSER_MAX_PAGE_BYTES)
                charset = response.headers.get_content_charset() or "utf-8"
                final_url = response.geturl()
        except urllib.error.HTTPError as exc:
            # A browser shows the error page: its text is the page's text.
            raw, charset, final_url = exc.read(BROWSER_MAX_PAGE_BYTES), "utf-8", url
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(reason, socket.gaierror) or not isinstance(reason, OSError):
                # The real gateway resolves the name itself first (its SSRF
                # policy): an unknown name fails the call, reason only logged.
                raise _ToolFailure(f"navigation to {url} failed: {exc}") from exc
            # A page that does not load is no failure to Chromium: the tab
            # shows its network error page, which ``text`` then reads.
            raw, charset, final_url = network_error_page(url, reason), "utf-8", url
        except ValueError as exc:
            raise _ToolFailure(f"navigation to {url} failed: {exc}") from exc
        html = raw.decode(charset, errors="replace")
        target = secrets.token_hex(16).upper()
        with self._lock:
            self._tabs[target] = (final_url, html)
        payload = {"targetId": target, "title": "", "url": final_url, "type": "page"}
        return {
            "ok": True,
            "result": {
                "content": [
                    {
                        "type": "text",
                        "text": wrap_external(
                            json.dumps(payload, indent=2), warning=False
                        ),
                    }
                ],
                "details": payload,
            },
        }

    def _text(self, args: dict[str, Any]) -> dict[str, Any]:
        target = str(args.get("targetId") or "")
        with self._lock:
            tab = self._tabs.get(target)
        if tab is None:
            raise _ToolFailure(f"tab not found: {target}")
        url, html = tab
        raw_max = args.get("maxChars", BROWSER_DEFAULT_MAX_CHARS)
        if not isinstance(raw_max, int) or isinstance(raw_max, bool) or raw_max <= 0:
            raise _ToolInputError("maxChars must be a positive integer.")
        try:
            text = visible_text(html, str(args.get("selector") or ""))
        except ValueError as exc:
            raise _ToolFailure(str(exc)) from exc
        if text is None:
            # The real tool waits for the element until its timeout, then fails.
            raise _ToolFailure(f"no element matches {args.get('selector')!r}")
        truncated = len(text) > raw_max
        wrapped = wrap_external(text[:raw_max])
        if truncated:
            wrapped = (
                "Page text was truncated. Retry with a narrower selector.\n" + wrapped
            )
        return {
            "ok": True,
            "result": {
                "content": [{"type": "text", "text": wrapped}],
                "details": {
                    "ok": True,
                    "targetId": target,
                    "url": url,
                    "truncated": truncated,
                    "externalContent": {
                        "untrusted": True,
                        "source": "browser",
                        "kind": "text",
                        "wrapped": True,
                    },
                },
            },
        }

    def _close(self, target: str) -> dict[str, Any]:
        with self._lock:
            self._tabs.pop(target, None)
        payload = {"ok": True, "targetId": target}
        return {
            "ok": True,
            "result": {
                "content": [{"type": "text", "text": json.dumps(payload, indent=2)}],
                "details": payload,
            },
        }


class _ToolInputError(Exception):
    """Bad arguments: the real gateway answers 400 with the reason."""


class _ToolFailure(Exception):
    """The tool ran and failed: the real gateway answers 500, reason logged."""


class _Server(socketserver.ThreadingTCPServer):
    """One port for both, as the real gateway: WebSocket upgrades go to the RPC,
    everything else to a small HTTP handler."""

    daemon_threads = True
    allow_reuse_address = True  # rebind the same port right after go_down()

    def __init__(self, address: tuple[str, int], gateway: GatewayServer) -> None:
        self.gateway = gateway
        super().__init__(address, _HTTPHandler)
        # websockets' server object, for the connections it hands us (it only
        # tells them whether the server is closing); socketserver accepts.
        self.websockets = WebSocketServer(self.socket, lambda *args: None)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        sock: socket.socket = request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.gateway._lock:
            self.gateway._connections.add(sock)
        try:
            if _is_upgrade(sock):
                self.gateway._serve_websocket(sock)
            else:
                self.finish_request(request, client_address)
        except OSError:
            pass
        finally:
            with self.gateway._lock:
                self.gateway._connections.discard(sock)
            self.shutdown_request(request)


def _is_upgrade(sock: socket.socket) -> bool:
    """Peek at the request head, leaving it unread, for ``Upgrade: websocket``."""
    sock.settimeout(5)
    head = b""
    for _ in range(50):
        head = sock.recv(8192, socket.MSG_PEEK)
        if not head or b"\r\n\r\n" in head or len(head) >= 8192:
            break
        time.sleep(0.01)
    sock.settimeout(None)
    return b"upgrade: websocket" in head.lower()


class _HTTPHandler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_HTTP_BODY:
            self._write(413, {"ok": False, "error": {"type": "too_large"}})
            return
        body = self.rfile.read(length) if length > 0 else b""
        status, payload = self.server.gateway.answer_http(
            self.command, self.path.split("?", 1)[0], self.headers, body
        )
        self._write(status, payload)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _write(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class DemoTraffic:
    """Customers writing to a simulated gateway, for ``manage.py serve --demo``.

    Korean and English customers on several platforms write at about ``rate``
    messages a second; the bot answers each a moment later (unless the inbox
    took the session over). Bounded: it stops after ``duration`` seconds.
    """

    def __init__(
        self, gateway: GatewayServer, *, rate: float = 0.5, seed: int | None = None
    ) -> None:
        from inbox.simulator import BOT_TEXTS, CUSTOMER_TEXTS, CUSTOMERS

        self.gateway = gateway
        self.rate = rate
        self.rng = random.Random(seed)
        self.texts = CUSTOMER_TEXTS
        self.bot_texts = BOT_TEXTS
        self.customers = [
            (
                session_key_for(channel, str(self.rng.randrange(10**8, 10**9))),
                channel,
                name,
            )
            for channel, name in CUSTOMERS
        ]
        self._stop = threading.Event()

    def run(self, duration: float = 8 * 3600) -> None:
        deadline = time.monotonic() + duration
        while not self._stop.is_set() and time.monotonic() < deadline:
            key, channel, name = self.rng.choice(self.customers)
            text = self.rng.choice(self.texts)
            self.gateway.customer_writes(
                key, text, name=name, channel=channel, bot=False
            )
            answer = self.rng.choice(self.bot_texts)
            timer = threading.Timer(
                self.rng.uniform(0.8, 2.5),
                self.gateway.bot_replies,
                (key,),
                {"customer_text": text, "text": answer},
            )
            timer.daemon = True
            timer.start()
            self._stop.wait(self.rng.expovariate(self.rate) if self.rate > 0 else 1)

    def stop(self) -> None:
        self._stop.set()
