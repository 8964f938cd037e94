"""Calls to the OpenClaw gateway: the one module that sends it requests.

The real gateway is driven over its WebSocket RPC on one port (18789 by
default); its HTTP side on the same port serves ``/healthz``, ``/readyz`` and
``POST /tools/invoke``. Every call returns the response's payload or raises
``GatewayError``, which knows whether a retry can help (``permanent``). The
calls are described in ``docs/gateway-api.md``; the frames in
``inbox/protocol.py``.

Dramatiq's threads share one client. It keeps a few authenticated sockets
open and lends each to one call at a time, so a reply costs one round trip,
not a handshake. The live feed is ``inbox/connector.py``'s, not this.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests
from django.conf import settings
from websockets.exceptions import InvalidHandshake, WebSocketException
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect

from core.calls import CallError, find_in_chain, parse_retry_after
from inbox import protocol
from inbox.models import GatewayLink

log = logging.getLogger(__name__)

# Seconds per kind of call. A send waits on one platform API; the browser
# tool drives a real page.
CONNECT_TIMEOUT = 5.0
SEND_TIMEOUT = 10.0
SESSION_TIMEOUT = 5.0
HISTORY_TIMEOUT = 15.0
BROWSER_TIMEOUT = 60.0
HEALTH_TIMEOUT = 3.0
TIMEOUTS: Mapping[str, float] = {
    "connect": CONNECT_TIMEOUT,
    "send": SEND_TIMEOUT,
    "session": SESSION_TIMEOUT,
    "history": HISTORY_TIMEOUT,
    "browser": BROWSER_TIMEOUT,
    "health": HEALTH_TIMEOUT,
}
# Sockets kept open for the worker's threads; more are opened under load and
# closed again once idle ones exceed this.
POOL_SIZE = 8
# Delivery targets remembered per session (they never change for a key).
TARGET_CACHE_SIZE = 10_000
TRANSIENT_STATUSES = frozenset({408, 429})
_MAX_FRAME = 26 * 1024 * 1024  # the gateway's own maxPayload


# The browser tool runs in a session's context; page reads use their own.
BROWSER_SESSION_KEY = "agent:main:inbox-monitors"
# The gateway fences page text as untrusted content (a warning, a start marker
# with a random id, "Source: Browser", "---", the text, the end marker).
_EXTERNAL_TEXT = re.compile(
    r'<<<EXTERNAL_UNTRUSTED_CONTENT id="(?P<id>[^"]*)">>>\n'
    r"(?:[^\n]*\n)*?---\n(?P<text>.*)\n"
    r'<<<END_EXTERNAL_UNTRUSTED_CONTENT id="(?P=id)">>>',
    re.DOTALL,
)


def unwrap_external(text: str) -> str:
    """The page text inside the gateway's untrusted-content fence (all of
    ``text`` if it has none)."""
    match = _EXTERNAL_TEXT.search(text)
    return match.group("text") if match else text


class GatewayError(CallError):
    """A failed gateway call. ``permanent`` ones fail the same way when retried."""


def _error_from_rpc(exc: protocol.RpcError) -> GatewayError:
    # The gateway says whether a retry can help; a missing scope, a closed
    # schema or an unknown session never heals by itself.
    return GatewayError(
        f"gateway refused {exc.method}: {exc.code}: {exc.message}",
        permanent=not exc.retryable,
        retry_after=exc.retry_after,
    )


class _Socket:
    """One authenticated RPC connection. Used by one thread at a time."""

    def __init__(self, connection: ClientConnection, hello: protocol.Hello) -> None:
        self.connection = connection
        self.hello = hello

    def call(self, method: str, params: dict[str, Any], timeout: float) -> dict:
        request_id, frame = protocol.request(method, params)
        self.connection.send(frame)
        while True:
            reply = protocol.parse_frame(self.connection.recv(timeout=timeout))
            # Events (ticks, health) also reach an operator socket: skip them.
            if reply.get("type") == "res" and reply.get("id") == request_id:
                return protocol.result(method, reply)

    def close(self) -> None:
        self.connection.close()


DeviceSource = Callable[[str], tuple[protocol.DeviceIdentity | None, str]]


def stored_device(url: str) -> tuple[protocol.DeviceIdentity | None, str]:
    """The inbox's device identity and device token for ``url``, from the database."""
    link = GatewayLink.for_url(url)
    return link.identity(), link.device_token


def handshake(
    connection: ClientConnection,
    *,
    token: str,
    device: protocol.DeviceIdentity | None,
    timeout: float,
) -> protocol.Hello:
    """Answer the gateway's challenge; ``Hello`` on success, ``RpcError`` if refused."""
    challenge = protocol.parse_frame(connection.recv(timeout=timeout))
    if challenge.get("event") != "connect.challenge":
        raise protocol.ProtocolError("the gateway did not open with connect.challenge")
    params = protocol.connect_params(
        challenge.get("payload") or {}, token=token, device=device
    )
    request_id, frame = protocol.request("connect", params)
    connection.send(frame)
    while True:
        reply = protocol.parse_frame(connection.recv(timeout=timeout))
        if reply.get("type") == "res" and reply.get("id") == request_id:
            return protocol.Hello.parse(protocol.result("connect", reply))


class OpenClawClient:
    """One gateway: a small pool of RPC sockets and a ``requests`` session.

    URL and token default to ``settings.OPENCLAW_GATEWAY_URL`` and
    ``OPENCLAW_GATEWAY_TOKEN``, read when a socket opens so
    ``override_settings`` applies. ``device``: where the device identity comes
    from (the database by default; ``None`` connects with the token alone, as
    a loopback backend client may).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeouts: Mapping[str, float] | None = None,
        device: DeviceSource | None = stored_device,
    ) -> None:
        unknown = set(timeouts or {}) - set(TIMEOUTS)
        if unknown:
            raise ValueError(f"unknown timeout kinds: {sorted(unknown)}")
        self._url = url
        self._token = token
        self._device = device
        self.timeouts = {**TIMEOUTS, **(timeouts or {})}
        self._idle: list[_Socket] = []
        self._lock = threading.Lock()
        self._targets: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._devices: dict[str, tuple[protocol.DeviceIdentity | None, str]] = {}
        self.http = requests.Session()
        self.http.headers.update(
            {"Accept": "application/json", "User-Agent": "openclaw-inbox"}
        )
        self.last_hello: protocol.Hello | None = None

    @property
    def url(self) -> str:
        url = self._url if self._url is not None else settings.OPENCLAW_GATEWAY_URL
        return protocol.ws_url(url)

    @property
    def token(self) -> str:
        token = self._token
        return token if token is not None else settings.OPENCLAW_GATEWAY_TOKEN

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()
        self.http.close()

    # -- the calls ----------------------------------------------------------------

    def send_message(
        self,
        session_key: str,
        text: str,
        *,
        idempotency_key: str,
        attachments: Iterable[str | Mapping[str, Any]] = (),
        label: str = "",
    ) -> dict[str, Any]:
        """Deliver a human reply; ``{"messageId", "via"}`` (``send`` or ``inject``).

        On a channel this is ``send`` to the session's delivery target, keyed
        by ``idempotency_key`` (our message id): a retry delivers nothing twice,
        and the gateway mirrors it into the transcript with that key. Webchat
        sessions cannot be sent to; ``chat.inject`` writes the reply into the
        transcript (labelled with the agent's name), which webchat clients show;
        it takes no media, so a reply's files go in as URLs after its text.
        """
        if not idempotency_key:
            raise ValueError("idempotency_key is required")
        urls = protocol.media_urls(attachments)
        target = self.delivery_target(session_key)
        if target.get("channel", "") not in protocol.INTERNAL_CHANNELS:
            params: dict[str, Any] = {
                "channel": target["channel"],
                "to": target["to"],
                "message": text,
                "sessionKey": session_key,
                "idempotencyKey": idempotency_key,
            }
            if target.get("accountId"):
                params["accountId"] = target["accountId"]
            if urls:
                params["mediaUrls"] = urls
            result = self.call("send", params, kind="send")
            return {"messageId": str(result.get("messageId") or ""), "via": "send"}
        params = {
            "sessionKey": session_key,
            "message": protocol.inject_message(text, urls),
        }
        if label:
            params["label"] = label[:100]
        result = self.call("chat.inject", params, kind="send")
        return {"messageId": str(result.get("messageId") or ""), "via": "inject"}

    def send_to(
        self,
        channel: str,
        to: str,
        text: str,
        *,
        idempotency_key: str,
        account_id: str = "",
    ) -> dict[str, Any]:
        """Send ``text`` to a target of our own (the admin group of the daily
        digest), outside any customer's session; ``{"messageId"}``.

        The gateway's ``send`` with ``{channel, to, message, idempotencyKey}``:
        a retry with the same key delivers nothing twice.
        """
        if not idempotency_key:
            raise ValueError("idempotency_key is required")
        params: dict[str, Any] = {
            "channel": channel,
            "to": to,
            "message": text,
            "idempotencyKey": idempotency_key,
        }
        if account_id:
            params["accountId"] = account_id
        result = self.call("send", params, kind="send")
        return {"messageId": str(result.get("messageId") or "")}

    def delivery_target(self, session_key: str) -> dict[str, str]:
        """``{channel, to, accountId}`` of a session, from ``sessions.describe``.

        Remembered per key: a session's target is fixed by its key. A session
        with none (webchat) gets ``{"channel": "webchat"}``.
        """
        with self._lock:
            target = self._targets.get(session_key)
            if target is not None:
                self._targets.move_to_end(session_key)
                return target
        session = self.describe(session_key)
        context = session.get("deliveryContext")
        context = context if isinstance(context, dict) else {}
        channel = str(context.get("channel") or session.get("channel") or "")
        to = str(context.get("to") or "")
        if not to:
            channel = "webchat" if channel in protocol.INTERNAL_CHANNELS else channel
        target = {
            "channel": channel if to else "webchat",
            "to": to,
            "accountId": str(context.get("accountId") or ""),
        }
        with self._lock:
            self._targets[session_key] = target
            while len(self._targets) > TARGET_CACHE_SIZE:
                self._targets.popitem(last=False)
        return target

    def describe(self, session_key: str) -> dict[str, Any]:
        result = self.call("sessions.describe", {"key": session_key}, kind="session")
        session = result.get("session")
        return session if isinstance(session, dict) else {}

    def set_send_policy(self, session_key: str, policy: str | None) -> dict[str, Any]:
        """``"deny"``: the agent's replies are kept out of the channel (it still
        runs); ``None`` restores the gateway's default."""
        if policy not in ("deny", None):
            raise ValueError(f"policy must be 'deny' or None, not {policy!r}")
        return self.call(
            "sessions.patch", {"key": session_key, "sendPolicy": policy}, kind="session"
        )

    def set_human_owner(self, session_key: str, owner: str | None) -> dict[str, Any]:
        """Tell the inbox plugin that a human owns (or released) the session."""
        return self.call(
            "inbox.takeover.set",
            {"sessionKey": session_key, "owner": owner},
            kind="session",
        )

    def stop_agent_turn(self, session_key: str) -> bool:
        """Abort the agent's turn in progress in the session, if one runs.

        A takeover holds the bot for the turns to come (the plugin, or
        ``sendPolicy: deny``), but a turn already running would go on, and the
        gateway steers the customer's next messages into it (its default
        queue mode): the model would answer them. Queued messages are kept
        (no ``clearQueued``); they start a new turn, which the takeover holds.
        ``False`` when the gateway has no ``sessions.abort``.
        """
        if "sessions.abort" not in self.hello().methods:
            return False
        self.call("sessions.abort", {"key": session_key}, kind="session")
        return True

    def has_plugin(self) -> bool:
        """Whether the gateway runs the inbox plugin (``hello-ok`` lists it)."""
        return self.hello().has_plugin

    def reset_session(self, session_key: str) -> dict[str, Any]:
        return self.call("sessions.reset", {"key": session_key}, kind="session")

    def history(
        self, session_key: str, *, cursor: str = "", limit: int = 200
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"sessionKey": session_key}
        if cursor:
            params["cursor"] = cursor
        else:
            params["limit"] = limit
        return self.call("chat.history", params, kind="history")

    def hello(self) -> protocol.Hello:
        """What the gateway said at the last handshake (opening a socket if none)."""
        if self.last_hello is None:
            sock = self._checkout()
            self._checkin(sock)
        assert self.last_hello is not None
        return self.last_hello

    def invoke_browser(
        self, session_key: str, args: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The gateway's ``POST /tools/invoke`` with the browser tool."""
        answer = self._http(
            "POST",
            "/tools/invoke",
            "browser",
            body={"tool": "browser", "args": dict(args), "sessionKey": session_key},
        )
        result = answer.get("result")
        return result if isinstance(result, dict) else {"value": result}

    def read_page(
        self,
        url: str,
        *,
        selector: str = "",
        max_chars: int = 40_000,
        session_key: str = BROWSER_SESSION_KEY,
    ) -> dict[str, Any]:
        """The visible text of ``url`` (of the first ``selector`` match if given).

        Three browser-tool calls: ``open`` a tab, ``text`` it, ``close`` it
        (closed even when reading failed). Returns ``{"text", "url",
        "truncated"}``; the text is taken out of the gateway's
        untrusted-content fence. The caller checks the URL first (SSRF).
        """
        opened = self.invoke_browser(session_key, {"action": "open", "targetUrl": url})
        details = opened.get("details")
        target = str(details.get("targetId") or "") if isinstance(details, dict) else ""
        if not target:
            raise GatewayError("the browser tool opened no tab", permanent=False)
        try:
            args: dict[str, Any] = {
                "action": "text",
                "targetId": target,
                "maxChars": max_chars,
            }
            if selector:
                args["selector"] = selector
            read = self.invoke_browser(session_key, args)
        finally:
            try:
                self.invoke_browser(
                    session_key, {"action": "close", "targetId": target}
                )
            except GatewayError as exc:  # the tab is the gateway's to reap now
                log.warning("closing browser tab %s failed: %s", target, exc)
        details = read.get("details")
        details = details if isinstance(details, dict) else {}
        content = read.get("content")
        texts = [
            str(part.get("text") or "")
            for part in (content if isinstance(content, list) else [])
            if isinstance(part, dict) and part.get("type") == "text"
        ]
        return {
            "text": unwrap_external("\n".join(texts)),
            "url": str(details.get("url") or url),
            "truncated": bool(details.get("truncated")),
        }

    def health(self) -> dict[str, Any]:
        return self._http("GET", "/healthz", "health")

    def ready(self) -> dict[str, Any]:
        return self._http("GET", "/readyz", "health")

    # -- RPC transport -------------------------------------------------------------

    def call(
        self, method: str, params: dict[str, Any], *, kind: str = "session"
    ) -> dict[str, Any]:
        """One RPC on a pooled socket; ``GatewayError`` on any failure."""
        sock = self._checkout()
        try:
            payload = sock.call(method, params, self.timeouts[kind])
        except protocol.RpcError as exc:
            self._checkin(sock)  # a refusal leaves the socket usable
            raise _error_from_rpc(exc) from exc
        except TimeoutError as exc:
            sock.close()  # a late answer would be read as the next call's
            raise GatewayError(
                f"gateway timed out after {self.timeouts[kind]:g} s on {method}",
                permanent=False,
            ) from exc
        except (OSError, WebSocketException, protocol.ProtocolError) as exc:
            sock.close()
            raise GatewayError(
                f"gateway connection lost during {method}: {exc}", permanent=False
            ) from exc
        self._checkin(sock)
        return payload

    def _checkout(self) -> _Socket:
        while True:
            with self._lock:
                sock = self._idle.pop() if self._idle else None
            if sock is None:
                return self._open()
            if sock.connection.protocol.state is State.OPEN:
                return sock
            sock.close()  # the gateway closed it while idle (a restart, say)

    def _checkin(self, sock: _Socket) -> None:
        with self._lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append(sock)
                return
        sock.close()

    def _open(self) -> _Socket:
        url, token = self.url, self.token
        if not protocol.is_ws_url(url):
            raise GatewayError(
                "no gateway is configured (OPENCLAW_GATEWAY_URL)", permanent=True
            )
        timeout = self.timeouts["connect"]
        device, device_token = self._device_for(url)
        try:
            connection = connect(
                url,
                open_timeout=timeout,
                max_size=_MAX_FRAME,
                compression=None,  # the gateway never negotiates it
                user_agent_header="openclaw-inbox",
                legacy=True,  # a pooled socket outlives any one ``with`` block
            )
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise GatewayError(
                f"gateway unreachable: {_unreachable_reason(exc)}", permanent=False
            ) from exc
        except (ValueError, WebSocketException) as exc:  # a bad URL
            raise GatewayError(f"gateway URL {url!r}: {exc}", permanent=True) from exc
        try:
            hello = handshake(
                connection,
                token=token or device_token,
                device=device,
                timeout=timeout,
            )
        except protocol.RpcError as exc:
            connection.close()
            # A wrong token or an unpaired device: retrying will not help until
            # an operator acts, but a gateway restarting says UNAVAILABLE.
            raise _error_from_rpc(exc) from exc
        except (OSError, TimeoutError, WebSocketException, protocol.ProtocolError) as e:
            connection.close()
            raise GatewayError(f"gateway handshake failed: {e}", permanent=False) from e
        self.last_hello = hello
        return _Socket(connection, hello)

    def _device_for(self, url: str) -> tuple[protocol.DeviceIdentity | None, str]:
        """The device identity, read from its source once per URL."""
        if self._device is None:
            return None, ""
        with self._lock:
            known = self._devices.get(url)
        if known is None:
            known = self._device(url)
            with self._lock:
                self._devices[url] = known
        return known

    # -- HTTP transport ------------------------------------------------------------

    def _http(
        self,
        method: str,
        path: str,
        kind: str,
        *,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        timeout = self.timeouts[kind]
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self.http.request(
                method,
                protocol.http_base(self.url) + path,
                json=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,  # a redirect would turn a POST into a GET
            )
        except requests.Timeout as exc:
            raise GatewayError(
                f"gateway timed out after {timeout:g} s", permanent=False
            ) from exc
        except requests.ConnectionError as exc:
            raise GatewayError(
                f"gateway unreachable: {_unreachable_reason(exc)}", permanent=False
            ) from exc
        except requests.RequestException as exc:
            raise GatewayError(
                f"gateway request failed: {exc}", permanent=False
            ) from exc
        return _http_result(response)


def _http_result(response: requests.Response) -> dict[str, Any]:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if 200 <= status < 300:
        if not isinstance(body, dict):
            raise GatewayError(
                f"gateway answered {status} with a body that is not a JSON object",
                permanent=True,
                status=status,
            )
        return body
    error = body.get("error") if isinstance(body, dict) else None
    detail = (
        str(error.get("message") or error.get("type") or "")
        if isinstance(error, dict)
        else str(error or response.text.strip()[:200] or response.reason)
    )
    transient = status >= 500 or status in TRANSIENT_STATUSES
    raise GatewayError(
        f"gateway answered {status}: {detail}",
        permanent=not transient,
        status=status,
        retry_after=parse_retry_after(response.headers.get("Retry-After"))
        if transient
        else None,
    )


def _unreachable_reason(exc: BaseException) -> str:
    """A short reason from the exception chain the libraries wrap errors in."""
    if find_in_chain(exc, ConnectionRefusedError):
        return "connection refused"
    if find_in_chain(exc, ConnectionResetError):
        return "connection reset"
    if find_in_chain(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


_shared: OpenClawClient | None = None
_shared_lock = threading.Lock()


def client() -> OpenClawClient:
    """The process's shared client (one socket pool), created on first use."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:  # another thread may have won the race
                _shared = OpenClawClient()
    return _shared


def reset_client() -> None:
    """Forget the shared client (tests and a changed setting open a new one)."""
    global _shared
    with _shared_lock:
        shared, _shared = _shared, None
    if shared is not None:
        shared.close()
