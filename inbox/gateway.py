"""The OpenClaw gateway's HTTP API: the one module that calls it or imports requests.

Every call returns the ``result`` of the gateway's ``{"ok": true, "result": {...}}``
envelope or raises ``GatewayError``, which knows whether a retry can help
(``permanent``). The API is described in ``docs/gateway-api.md``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from core.calls import CallError, find_in_chain, parse_retry_after

# Seconds per kind of call (the seed's figures). A send waits on one platform
# API; a broadcast on several; the browser tool drives a real page.
SEND_TIMEOUT = 10.0
BROADCAST_TIMEOUT = 30.0
SESSION_TIMEOUT = 5.0
BROWSER_TIMEOUT = 60.0
HEALTH_TIMEOUT = 3.0
TIMEOUTS: Mapping[str, float] = {
    "send": SEND_TIMEOUT,
    "broadcast": BROADCAST_TIMEOUT,
    "session": SESSION_TIMEOUT,
    "browser": BROWSER_TIMEOUT,
    "health": HEALTH_TIMEOUT,
}
# Dramatiq worker threads share one client; a pool smaller than their number
# would open and drop a connection per call under load.
POOL_SIZE = 32
SEND_POLICIES = ("allow", "deny")
# Retrying these can succeed: the request timed out or the gateway is busy.
TRANSIENT_STATUSES = frozenset({408, 429})
_CONFIGURATION_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
)


class GatewayError(CallError):
    """A failed gateway call. ``permanent`` ones fail the same way when retried."""


class OpenClawClient:
    """One gateway, one pooled ``requests.Session``.

    URL and token default to ``settings.OPENCLAW_GATEWAY_URL`` and
    ``OPENCLAW_GATEWAY_TOKEN``, read on every call so ``override_settings``
    applies. The session's own state is never changed per call (auth and
    idempotency headers travel with each request), so threads may share it.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeouts: Mapping[str, float] | None = None,
    ) -> None:
        unknown = set(timeouts or {}) - set(TIMEOUTS)
        if unknown:
            raise ValueError(f"unknown timeout kinds: {sorted(unknown)}")
        self._base_url = base_url
        self._token = token
        self.timeouts = {**TIMEOUTS, **(timeouts or {})}
        self.session = requests.Session()
        # No retries inside requests: the caller (an actor) owns retry policy.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update(
            {"Accept": "application/json", "User-Agent": "openclaw-inbox"}
        )

    @property
    def base_url(self) -> str:
        url = self._base_url
        return (url if url is not None else settings.OPENCLAW_GATEWAY_URL).rstrip("/")

    @property
    def token(self) -> str:
        token = self._token
        return token if token is not None else settings.OPENCLAW_GATEWAY_TOKEN

    def close(self) -> None:
        self.session.close()

    # -- the API ------------------------------------------------------------------

    def send_message(
        self,
        session_key: str,
        text: str,
        *,
        attachments: Iterable[str | Mapping[str, Any]] = (),
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Send ``text`` into a session; ``result["messageId"]`` is the gateway's id.

        ``idempotency_key`` (our own message id) makes retries safe: the gateway
        answers a repeated key with the first result and sends nothing again.
        """
        if not idempotency_key:
            raise ValueError("idempotency_key is required")
        return self._call(
            "POST",
            f"/api/sessions/{_quote(session_key)}/messages",
            "send",
            body={"text": text, "attachments": list(attachments)},
            headers={"Idempotency-Key": idempotency_key},
        )

    def broadcast(
        self,
        channel: str,
        recipients: list[str],
        text: str,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call(
            "POST",
            "/api/broadcast",
            "broadcast",
            body={"channel": channel, "recipients": list(recipients), "text": text},
            headers=headers,
        )

    def session_info(self, session_key: str) -> dict[str, Any]:
        return self._call("GET", f"/api/sessions/{_quote(session_key)}", "session")

    def reset_session(self, session_key: str) -> dict[str, Any]:
        return self._call(
            "POST", f"/api/sessions/{_quote(session_key)}/reset", "session", body={}
        )

    def set_send_policy(self, session_key: str, policy: str) -> dict[str, Any]:
        """Pause ("deny") or resume ("allow") the agent's replies in one session.

        Mirrors the real gateway's ``sessions.patch {key, sendPolicy}``.
        """
        if policy not in SEND_POLICIES:
            raise ValueError(f"policy must be one of {SEND_POLICIES}, not {policy!r}")
        return self._call(
            "PATCH",
            f"/api/sessions/{_quote(session_key)}",
            "session",
            body={"sendPolicy": policy},
        )

    def invoke_browser(
        self, session_key: str, args: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The real gateway's ``POST /tools/invoke`` with the browser tool."""
        return self._call(
            "POST",
            "/tools/invoke",
            "browser",
            body={"tool": "browser", "args": dict(args), "sessionKey": session_key},
        )

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health", "health")

    # -- transport ----------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        kind: str,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        timeout = self.timeouts[kind]
        all_headers = dict(headers or {})
        token = self.token
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                json=body,
                headers=all_headers,
                timeout=timeout,
                # A redirect from an API is a misconfiguration, and following
                # one would turn a POST into a GET.
                allow_redirects=False,
            )
        # Timeout first: ConnectTimeout is a ConnectionError as well.
        except requests.Timeout as exc:
            raise GatewayError(
                f"gateway timed out after {timeout:g} s", permanent=False
            ) from exc
        except requests.ConnectionError as exc:
            raise GatewayError(
                f"gateway unreachable: {_unreachable_reason(exc)}", permanent=False
            ) from exc
        except _CONFIGURATION_ERRORS as exc:  # a bad URL: retrying will not fix it
            msg = f"gateway request failed: {exc}"
            raise GatewayError(msg, permanent=True) from exc
        except requests.RequestException as exc:  # a truncated answer, say
            msg = f"gateway request failed: {exc}"
            raise GatewayError(msg, permanent=False) from exc
        return _result(response)


def _result(response: requests.Response) -> dict[str, Any]:
    """Classify an answer, in one place: the decoded result or a GatewayError."""
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
        if body.get("ok") is not True:
            raise GatewayError(
                f"gateway answered {status} but not ok: {_detail(body, response)}",
                permanent=True,
                status=status,
            )
        result = body.get("result", {})
        if not isinstance(result, dict):
            raise GatewayError(
                f"gateway answered {status} with a result that is not an object",
                permanent=True,
                status=status,
            )
        return result
    transient = status >= 500 or status in TRANSIENT_STATUSES
    raise GatewayError(
        f"gateway answered {status}: {_detail(body, response)}",
        permanent=not transient,
        status=status,
        retry_after=parse_retry_after(response.headers.get("Retry-After"))
        if transient
        else None,
    )


def _detail(body: Any, response: requests.Response) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        kind = str(error.get("type") or "")
        if kind and message:
            return f"{kind}: {message}"
        if message or kind:
            return message or kind
    elif isinstance(error, str) and error:
        return error
    text = response.text.strip()
    return text[:200] if text else response.reason or "no detail"


def _unreachable_reason(exc: BaseException) -> str:
    """A short reason from the exception chain requests/urllib3 wrap errors in."""
    if find_in_chain(exc, ConnectionRefusedError):
        return "connection refused"
    if find_in_chain(exc, ConnectionResetError):
        return "connection reset"
    return str(exc) or type(exc).__name__


def _quote(session_key: str) -> str:
    # Keys look like agent:main:telegram:dm:123; quote every reserved character.
    return quote(session_key, safe="")


_shared: OpenClawClient | None = None
_shared_lock = threading.Lock()


def client() -> OpenClawClient:
    """The process's shared client (one connection pool), created on first use."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:  # another thread may have won the race
                _shared = OpenClawClient()
    return _shared
