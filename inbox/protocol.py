"""The OpenClaw gateway's WebSocket RPC, as data: frames, the handshake, the device
signature, and the transcript rows it streams. No I/O here: ``inbox/gateway.py``
(sync calls), ``inbox/connector.py`` (the live feed) and the simulator share it.

Facts come from the real gateway (``openclaw@2026.9.6``, protocol 4); the
documented subset is in ``docs/gateway-api.md``.

Frames are JSON text:

* request  ``{"type": "req", "id", "method", "params"}``
* response ``{"type": "res", "id", "ok", "payload" | "error"}``, the error being
  ``{"code", "message", "details"?, "retryable"?, "retryAfterMs"?}``
* event    ``{"type": "event", "event", "payload", "seq"?}``
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

PROTOCOL_VERSION = 4
# On direct loopback with the shared token this id and mode keep the operator
# scopes without a device; any other id connects with no scopes at all.
CLIENT_ID = "gateway-client"
CLIENT_MODE = "backend"
CLIENT_VERSION = "0.1.0"
CLIENT_PLATFORM = "linux"
ROLE = "operator"
# chat.inject needs admin; send and sessions.patch need write.
SCOPES = ("operator.read", "operator.write", "operator.admin")
# A client closes a connection that stays silent this many tick intervals.
TICK_MISSES = 2
DEFAULT_TICK_INTERVAL_MS = 30_000
# Before hello-ok the gateway refuses frames over 64 KiB.
MAX_PREAUTH_BYTES = 64 * 1024

# The rows that are our own replies coming back into the transcript.
MIRROR_MODEL = "delivery-mirror"  # a ``send`` delivered on a channel
INJECTED_MODEL = "gateway-injected"  # a ``chat.inject`` (webchat)
# Channels the gateway keeps to itself: ``send`` refuses them, so a human reply
# goes in with ``chat.inject``.
INTERNAL_CHANNELS = frozenset({"webchat", "internal", ""})
# The methods the inbox's gateway plugin adds (openclaw-plugin/): with them a
# takeover stops the agent before it calls its model.
PLUGIN_METHODS = frozenset({"inbox.takeover.set", "inbox.takeover.sync"})
# A newer plugin also keeps the agent from answering an admin's ops commands.
COMMANDS_METHOD = "inbox.commands.sync"
# Errors worth retrying: the gateway is busy or a backend is down.
TRANSIENT_CODES = frozenset({"UNAVAILABLE", "AGENT_TIMEOUT"})


class ProtocolError(Exception):
    """A frame we cannot read: not JSON, not an object, or not a known type."""


class RpcError(Exception):
    """An ``ok: false`` response, with the gateway's code and retry hints."""

    def __init__(
        self,
        method: str,
        code: str,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{method}: {code}: {message}")
        self.method = method
        self.code = code
        self.message = message
        self.details = details or {}
        self.retry_after = retry_after
        self.retryable = code in TRANSIENT_CODES if retryable is None else retryable

    @classmethod
    def from_error(cls, method: str, error: Any) -> RpcError:
        if not isinstance(error, dict):
            return cls(method, "UNKNOWN", str(error)[:200])
        retry_ms = error.get("retryAfterMs")
        details = error.get("details")
        return cls(
            method,
            str(error.get("code") or "UNKNOWN"),
            str(error.get("message") or "")[:500],
            retryable=error.get("retryable")
            if isinstance(error.get("retryable"), bool)
            else None,
            retry_after=retry_ms / 1000
            if isinstance(retry_ms, (int, float)) and retry_ms >= 0
            else None,
            details=details if isinstance(details, dict) else None,
        )

    @property
    def detail_code(self) -> str:
        return str(self.details.get("code") or "")


# --- frames -----------------------------------------------------------------------


def request(method: str, params: dict[str, Any] | None = None) -> tuple[str, str]:
    """A request frame and its id."""
    request_id = str(uuid.uuid4())
    frame = {"type": "req", "id": request_id, "method": method, "params": params or {}}
    return request_id, json.dumps(frame, ensure_ascii=False)


def parse_frame(text: str | bytes) -> dict[str, Any]:
    try:
        frame = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from exc
    if not isinstance(frame, dict) or frame.get("type") not in ("req", "res", "event"):
        raise ProtocolError("frame is not a req, res or event object")
    return frame


def result(method: str, frame: dict[str, Any]) -> dict[str, Any]:
    """The payload of a response frame, or ``RpcError``."""
    if frame.get("ok") is not True:
        raise RpcError.from_error(method, frame.get("error"))
    payload = frame.get("payload")
    return payload if isinstance(payload, dict) else {}


def http_base(url: str) -> str:
    """The gateway's HTTP root (``/healthz``, ``/tools/invoke``) on its one port."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", "")).rstrip("/")


def ws_url(url: str) -> str:
    """The gateway's WebSocket URL; an ``http(s)://`` setting means the same port."""
    if not url:
        return ""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path or "/", "", ""))


def is_ws_url(url: str) -> bool:
    return urlsplit(url).scheme in ("ws", "wss")


# --- handshake --------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class DeviceIdentity:
    """An Ed25519 key that identifies this inbox to the gateway (pairing).

    ``id`` is the SHA-256 of the raw public key, as the gateway derives it.
    The private key is stored in the database (``GatewayLink``), never logged.
    """

    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> DeviceIdentity:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed_b64: str) -> DeviceIdentity:
        seed = base64.urlsafe_b64decode(seed_b64 + "=" * (-len(seed_b64) % 4))
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def seed_b64(self) -> str:
        raw = self.private_key.private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        return _b64url(raw)

    @property
    def public_key_raw(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw
        )

    @property
    def id(self) -> str:
        return hashlib.sha256(self.public_key_raw).hexdigest()

    def __repr__(self) -> str:  # never the key itself
        return f"DeviceIdentity(id={self.id[:12]}…)"

    def sign(self, payload: str) -> str:
        return _b64url(self.private_key.sign(payload.encode()))


def signature_payload(
    *,
    device_id: str,
    token: str,
    nonce: str,
    signed_at: int,
    client_id: str = CLIENT_ID,
    client_mode: str = CLIENT_MODE,
    role: str = ROLE,
    scopes: tuple[str, ...] = SCOPES,
    platform: str = CLIENT_PLATFORM,
    device_family: str = "",
) -> str:
    """The exact string a device signs (version 3 of the gateway's scheme)."""
    return "|".join(
        [
            "v3",
            device_id,
            client_id,
            client_mode,
            role,
            ",".join(scopes),
            str(signed_at),
            token,
            nonce,
            platform.lower(),
            device_family,
        ]
    )


def connect_params(
    challenge: dict[str, Any],
    *,
    token: str,
    device: DeviceIdentity | None = None,
) -> dict[str, Any]:
    """``connect`` params answering ``challenge`` (the ``connect.challenge`` payload).

    Without ``device`` this is the loopback backend path (shared token only).
    With it, the challenge is signed, which is what a remote gateway needs to
    pair this inbox; ``token`` is the shared token or the device token.
    """
    params: dict[str, Any] = {
        "minProtocol": PROTOCOL_VERSION,
        "maxProtocol": PROTOCOL_VERSION,
        "client": {
            "id": CLIENT_ID,
            "version": CLIENT_VERSION,
            "platform": CLIENT_PLATFORM,
            "mode": CLIENT_MODE,
        },
        "role": ROLE,
        "scopes": list(SCOPES),
        "caps": [],
        "auth": {"token": token} if token else {},
    }
    if device is not None:
        nonce = str(challenge.get("nonce") or "")
        signed_at = int(challenge.get("ts") or 0)
        params["device"] = {
            "id": device.id,
            "publicKey": _b64url(device.public_key_raw),
            "signature": device.sign(
                signature_payload(
                    device_id=device.id, token=token, nonce=nonce, signed_at=signed_at
                )
            ),
            "signedAt": signed_at,
            "nonce": nonce,
        }
    return params


@dataclass(frozen=True)
class Hello:
    """What ``hello-ok`` told us: version, methods, tick interval, device token."""

    server_version: str
    methods: frozenset[str]
    tick_interval: float
    device_token: str = ""

    @property
    def has_plugin(self) -> bool:
        """Whether the gateway runs the inbox plugin (it lists its methods)."""
        return PLUGIN_METHODS <= self.methods

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Hello:
        features = payload.get("features") or {}
        policy = payload.get("policy") or {}
        auth = payload.get("auth") or {}
        methods = features.get("methods") if isinstance(features, dict) else None
        tick = policy.get("tickIntervalMs") if isinstance(policy, dict) else None
        return cls(
            server_version=str((payload.get("server") or {}).get("version") or ""),
            methods=frozenset(m for m in methods or () if isinstance(m, str)),
            tick_interval=(tick if isinstance(tick, (int, float)) and tick > 0
                           else DEFAULT_TICK_INTERVAL_MS) / 1000,
            device_token=str(auth.get("deviceToken") or "")
            if isinstance(auth, dict)
            else "",
        )  # fmt: skip


# --- transcript rows --------------------------------------------------------------


@dataclass
class TranscriptMessage:
    """One row of a session's transcript, from a live ``session.message`` or from
    ``chat.history``: the fields the inbox stores, read defensively."""

    session_key: str
    message_id: str
    seq: int | None
    role: str
    text: str
    timestamp: datetime | None = None
    sender_id: str = ""
    sender_name: str = ""
    channel: str = ""
    model: str = ""
    provider: str = ""
    tokens: int | None = None
    idempotency_key: str = ""
    send_policy: str = ""
    generation: str = ""  # the gateway's sessionId: a reset starts a new one
    attachments: list[dict[str, str]] = field(default_factory=list)
    recorded_at: datetime | None = None

    @property
    def is_customer(self) -> bool:
        return self.role == "user"

    @property
    def is_our_echo(self) -> bool:
        """A reply of ours written back into the transcript by the gateway."""
        return self.role == "assistant" and self.model in (MIRROR_MODEL, INJECTED_MODEL)


def millis(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def content_text(content: Any) -> tuple[str, list[dict[str, str]]]:
    """Text and image links of a message's ``content`` (a string or a part list)."""
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[dict[str, str]] = []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") in ("image", "image_url"):
            url = part.get("url") or (part.get("image_url") or {}).get("url")
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                images.append({"url": url, "type": "image", "name": ""})
    return "\n".join(texts), images


def transcript_message(
    payload: dict[str, Any], *, session_key: str = ""
) -> TranscriptMessage | None:
    """Read a ``session.message`` payload, or a bare ``chat.history`` row of
    ``session_key``. ``None`` for anything without an id or a role."""
    if not isinstance(payload, dict):
        return None
    message = payload.get("message") if "message" in payload else payload
    if not isinstance(message, dict):
        return None
    meta = message.get("__openclaw")
    meta = meta if isinstance(meta, dict) else {}
    session = payload.get("session")
    session = session if isinstance(session, dict) else {}
    key = payload.get("sessionKey") or session.get("key") or session_key
    message_id = payload.get("messageId") or meta.get("id")
    role = message.get("role")
    if not (
        isinstance(key, str) and key and isinstance(message_id, str) and message_id
    ):
        return None
    if not isinstance(role, str):
        return None
    seq = payload.get("messageSeq", meta.get("seq"))
    text, attachments = content_text(message.get("content"))
    usage = message.get("usage")
    tokens = usage.get("totalTokens") if isinstance(usage, dict) else None
    transport = meta.get("transport")
    transport = transport if isinstance(transport, dict) else {}
    return TranscriptMessage(
        session_key=key,
        message_id=message_id,
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        role=role,
        text=text,
        timestamp=millis(message.get("timestamp")),
        sender_id=str(meta.get("senderId") or ""),
        sender_name=str(meta.get("senderName") or ""),
        channel=str(session.get("channel") or transport.get("channel") or ""),
        model=str(message.get("model") or ""),
        provider=str(message.get("provider") or ""),
        tokens=tokens if isinstance(tokens, int) and tokens >= 0 else None,
        idempotency_key=str(
            message.get("idempotencyKey") or meta.get("idempotencyKey") or ""
        ),
        send_policy=str(session.get("sendPolicy") or ""),
        generation=str(session.get("sessionId") or ""),
        attachments=attachments,
        recorded_at=millis(meta.get("recordTimestampMs")),
    )


def channel_of(session_key: str) -> str:
    """``agent:<agent>:<channel>:…`` → channel; webchat keys carry none."""
    parts = session_key.split(":")
    if len(parts) >= 4 and parts[0] == "agent":
        return parts[2]
    return "webchat"


def media_urls(attachments: Iterable[str | Mapping[str, Any]]) -> list[str]:
    """The URLs of a reply's files (a stored attachment is ``{"url", …}``)."""
    urls = [a if isinstance(a, str) else str(a.get("url") or "") for a in attachments]
    return [url for url in urls if url]


def inject_message(text: str, urls: Iterable[str]) -> str:
    """The ``message`` of a ``chat.inject`` for a reply with ``urls``.

    ``chat.inject`` carries text only, so each file goes on a line of its own
    after the text; the gateway writes it back verbatim after ``[label]\\n\\n``,
    and that echo is matched to the reply by this same text.
    """
    return "\n".join(part for part in (text, *urls) if part)
