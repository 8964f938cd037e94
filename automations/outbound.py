"""Calls to URLs chosen by team leads (the "call webhook" action), safe against SSRF.

The one module that sends HTTP to arbitrary destinations. It is built on urllib3
(only ``inbox/gateway.py`` imports requests), which reads nothing from the
environment: no proxy variables, no netrc. Error messages name the host, not
the URL, whose path or query may be a secret (Slack-style hook URLs).

* Every destination, redirects included, is resolved once by
  ``check_destination``: if ANY address is loopback, private, link-local,
  multicast, reserved, unspecified, shared (100.64/10) or otherwise not
  globally reachable, or an IPv6 form embedding such an IPv4 address, the call
  is refused before a socket is opened. ``settings.AUTOMATIONS_WEBHOOK_ALLOWLIST``
  (IPs or CIDR networks) lets listed addresses through.
* The connection is pinned to the checked addresses: ``_new_conn`` connects to
  them and never resolves the name again, so a DNS answer that changes between
  check and connect (rebinding) cannot redirect the socket. TLS still sends
  the hostname as SNI and verifies the certificate against it.
* Redirects: 307 and 308 are followed (same method and body, every hop
  checked); 301, 302 and 303 are refused as permanent errors, because clients
  answer them by turning the POST into a GET and dropping the payload, which is
  never what a webhook means. The message names the new location so the URL
  can be corrected. An https to http redirect is refused as well.

Failures raise ``OutboundError``, which knows whether a retry can help
(``permanent``), as ``inbox.gateway.GatewayError`` does.
"""

from __future__ import annotations

import codecs
import ipaddress
import re
import socket
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationParseError,
    NewConnectionError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.response import BaseHTTPResponse
from urllib3.util import Timeout, parse_url

from core.calls import CallError, find_in_chain, parse_retry_after
from inbox.webhooks import sign_standard

USER_AGENT = "OpenClawInbox-Automations/1"
MAX_BODY_BYTES = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}
# Retrying these can succeed: the request timed out or the receiver is busy.
TRANSIENT_STATUSES = frozenset({408, 429})
FOLLOWED_REDIRECTS = frozenset({307, 308})
REFUSED_REDIRECTS = frozenset({301, 302, 303})
# Set by the client from the URL and body; a caller's value would contradict it.
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection"}
)
# Sent to the next hop only while the origin stays the same (as browsers do).
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_METADATA = ipaddress.ip_address("169.254.169.254")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class OutboundError(CallError):
    """A failed call. ``permanent`` ones fail the same way when retried."""


class BlockedDestination(OutboundError):
    """The URL's host resolves to an address we refuse to connect to."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lowercase names, repeated headers joined by ", "
    text: str  # at most MAX_BODY_BYTES of the body, decoded leniently
    url: str  # after redirects
    elapsed_ms: int
    truncated: bool = False


# --- destinations ---------------------------------------------------------------


def check_destination(host: str, port: int) -> list[str]:
    """Resolve ``host`` and return its addresses if every one may be called.

    Raises ``BlockedDestination`` naming the first refused address: one bad
    record refuses the host, since the connection may use any of them.
    """
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        # "No such name" will not fix itself within a retry; anything else
        # (a resolver timeout, say) may.
        missing = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -2))
        raise OutboundError(
            f"{host} does not resolve: {exc.strerror or exc}", permanent=missing
        ) from exc
    except (UnicodeError, ValueError) as exc:
        raise OutboundError(
            f"{host!r} is not a valid host name", permanent=True
        ) from exc
    allowlist = _allowlist()
    addresses: list[str] = []
    for *_, sockaddr in infos:
        raw = str(sockaddr[0])
        try:
            ip = ipaddress.ip_address(raw)
        except ValueError as exc:
            raise BlockedDestination(f"{host} resolves to {raw!r}, not an IP") from exc
        why = None if _allowed(ip, allowlist) else _why_refused(ip)
        if why is not None:
            resolved = "" if raw == host else f"it resolves to {raw}, "
            raise BlockedDestination(f"refused {host}: {resolved}{why}")
        if raw not in addresses:
            addresses.append(raw)
    if not addresses:
        raise OutboundError(f"{host} resolves to no address", permanent=True)
    return addresses


def check_url(url: str) -> list[str]:
    """Would ``post_json`` call ``url``? Parse and resolve it, connect nowhere.

    For the editor, which checks a webhook action's URL when the trigger is
    saved with the very rules the call will apply (the call checks again:
    DNS answers change). Raises ``OutboundError`` with the reason.
    """
    target = _parse(url)
    return check_destination(target.host, target.port)


def _allowlist() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    # Read per call so override_settings applies; core/settings.py has already
    # refused bad entries at start, this catches overrides.
    networks = []
    for entry in settings.AUTOMATIONS_WEBHOOK_ALLOWLIST:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"AUTOMATIONS_WEBHOOK_ALLOWLIST: {entry!r} is not an IP or network"
            ) from exc
    return networks


def _allowed(
    ip: IPAddress, allowlist: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    candidates = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        embedded, _ = _embedded_ipv4(ip)
        if embedded is not None:
            candidates.append(embedded)
    return any(c in net for c in candidates for net in allowlist)


def _embedded_ipv4(
    ip: ipaddress.IPv6Address,
) -> tuple[ipaddress.IPv4Address | None, bool]:
    """The IPv4 address inside an IPv6 one, and whether traffic goes to it alone.

    Mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) addresses are just
    another spelling of the IPv4 destination; compatible (::a.b.c.d) and 6to4
    (2002:AABB:CCDD::) ones are judged as both.
    """
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, True
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), True
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # not :: or ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), False
    if ip.sixtofour is not None:
        return ip.sixtofour, False
    return None, False


def _why_refused(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be called, as a phrase, or ``None`` if it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded, translated = _embedded_ipv4(ip)
        if embedded is not None:
            why = _why_refused(embedded)
            if why is not None:
                return f"an IPv6 form of {embedded}, {why}"
            if translated:
                return None
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip == _METADATA:
        return "a link-local address (the cloud metadata service)"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _SHARED:
        return "a shared address (100.64.0.0/10, carrier-grade NAT)"
    if any(ip in net for net in _PRIVATE):
        return "a private address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private or not ip.is_global:
        return "a special-purpose address, not globally reachable"
    return None


# --- the call -------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # no brackets, IDNA-encoded, lowercase
    port: int
    request_uri: str
    url: str

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def _parse(url: str, what: str = "URL") -> _Target:
    """A URL we are willing to call, or a permanent ``OutboundError``.

    One parser (urllib3's) decides host, port and path, and the same values are
    checked and used, so no second parser can read the URL differently.
    """
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise OutboundError(
            f"{what} contains spaces or control characters", permanent=True
        )
    try:
        parsed = parse_url(url)
    except LocationParseError as exc:
        raise OutboundError(f"{what} is not a valid URL", permanent=True) from exc
    if parsed.scheme not in ("http", "https"):
        raise OutboundError(
            f"{what} is refused: {parsed.scheme or 'no'} scheme, only http and "
            f"https URLs are called",
            permanent=True,
        )
    if parsed.auth is not None or "@" in _authority(url):
        raise OutboundError(
            f"{what} is refused: user names and passwords in URLs are not sent "
            f"(use a header)",
            permanent=True,
        )
    host = (parsed.host or "").strip("[]")
    if not host:
        raise OutboundError(f"{what} has no host", permanent=True)
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    if parsed.port == 0:
        raise OutboundError(f"{what} has an invalid port (0)", permanent=True)
    return _Target(
        scheme=parsed.scheme,
        host=host,
        port=port,
        request_uri=parsed.request_uri,
        url=parsed._replace(fragment=None).url,
    )


def _authority(url: str) -> str:
    # Deliberately cruder than the parser: any "@" before the path refuses the
    # URL, however a parser would split it (http://a.com\@10.0.0.1/, say).
    rest = url.partition("://")[2]
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def post_json(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float = 10.0,
    max_redirects: int = 3,
) -> Response:
    """POST ``body`` to ``url`` and return the 2xx answer, or raise ``OutboundError``.

    ``timeout`` bounds the whole call, redirects included (checked between
    reads, so a trickling answer can overrun it by at most one read timeout).
    """
    started = time.monotonic()
    deadline = started + timeout
    target = _parse(url)
    send = _headers(headers)
    for _hop in range(max_redirects + 1):
        addresses = check_destination(target.host, target.port)
        status, answer, text, truncated = _send(
            target, addresses, body, send, deadline=deadline, timeout=timeout
        )
        if status in FOLLOWED_REDIRECTS:
            location = answer.get("location", "")
            if not location:
                raise OutboundError(
                    f"{target.host} answered {status} without a Location",
                    permanent=True,
                    status=status,
                )
            following = _parse(urljoin(target.url, location), "redirect target")
            if target.scheme == "https" and following.scheme == "http":
                raise OutboundError(
                    f"{target.host} redirected to {following.host} over http: "
                    f"refusing to leave https for http",
                    permanent=True,
                    status=status,
                )
            if following.origin != target.origin:
                send = {
                    k: v for k, v in send.items() if k.lower() not in CREDENTIAL_HEADERS
                }
            target = following
            continue
        if status in REFUSED_REDIRECTS:
            raise OutboundError(
                f"{target.host} answered {status}, redirecting to "
                f"{answer.get('location') or 'nowhere'}: a webhook must not turn "
                f"into a GET, so update the URL instead",
                permanent=True,
                status=status,
            )
        if 200 <= status < 300:
            return Response(
                status=status,
                headers=answer,
                text=text,
                url=target.url,
                elapsed_ms=round((time.monotonic() - started) * 1000),
                truncated=truncated,
            )
        transient = status >= 500 or status in TRANSIENT_STATUSES
        detail = text.strip()[:200] or "no detail"
        raise OutboundError(
            f"{target.host} answered {status}: {detail}",
            permanent=not transient,
            status=status,
            retry_after=parse_retry_after(answer.get("retry-after"))
            if transient
            else None,
        )
    raise OutboundError(
        f"more than {max_redirects} redirects, the last to {target.host}",
        permanent=True,
    )


def _headers(headers: dict[str, str]) -> dict[str, str]:
    result = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    for name, value in headers.items():
        # http.client would raise ValueError later; say which header instead.
        if not _TOKEN.fullmatch(name) or not _latin1(value) or _CONTROL.search(value):
            raise OutboundError(
                f"header {name!r} has an invalid name or a control character",
                permanent=True,
            )
        if name.lower() in RESERVED_HEADERS:
            raise OutboundError(f"header {name!r} is set by the client", permanent=True)
        # Replace the defaults whatever the caller's capitalisation.
        for default in [k for k in result if k.lower() == name.lower()]:
            del result[default]
        result[name] = value
    return result


def _latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _send(
    target: _Target,
    addresses: list[str],
    body: bytes,
    headers: dict[str, str],
    *,
    deadline: float,
    timeout: float,
) -> tuple[int, dict[str, str], str, bool]:
    """One request to the checked ``addresses``: status, headers, capped text."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise OutboundError(
            f"{target.host} not called: {timeout:g} s spent on redirects",
            permanent=False,
        )
    pool_class = _PinnedHTTPSPool if target.scheme == "https" else _PinnedHTTPPool
    pool = pool_class(
        target.host,
        target.port,
        timeout=Timeout(connect=remaining, read=remaining),
        maxsize=1,
        retries=False,
        pinned_ips=tuple(addresses),
    )
    try:
        response = pool.urlopen(
            "POST",
            target.request_uri,
            body=body,
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            raw, truncated = _read_capped(response, deadline, target.host)
        finally:
            response.close()
    except NewConnectionError as exc:  # first: urllib3 makes it a timeout subclass
        raise OutboundError(
            f"{target.host} unreachable: {_reason(exc)}", permanent=False
        ) from exc
    except Urllib3TimeoutError as exc:
        raise OutboundError(
            f"{target.host} timed out after {timeout:g} s", permanent=False
        ) from exc
    except SSLError as exc:
        # A certificate that does not verify is the receiver's configuration.
        verify = find_in_chain(exc, ssl.SSLCertVerificationError)
        raise OutboundError(
            f"TLS with {target.host} failed: {verify or exc}",
            permanent=verify is not None,
        ) from exc
    except (HTTPError, OSError) as exc:
        raise OutboundError(
            f"calling {target.host} failed: {_reason(exc)}", permanent=False
        ) from exc
    finally:
        pool.close()
    answer = {name.lower(): value for name, value in response.headers.itermerged()}
    text = raw.decode(_charset(answer.get("content-type", "")), errors="replace")
    return response.status, answer, text, truncated


def _read_capped(
    response: BaseHTTPResponse, deadline: float, host: str
) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        chunk = response.read(min(16_384, MAX_BODY_BYTES + 1 - size))
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
        if time.monotonic() > deadline:
            raise OutboundError(f"{host} timed out sending its answer", permanent=False)
    return b"".join(chunks)[:MAX_BODY_BYTES], True


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset":
            charset = value.strip().strip('"')
            try:
                codecs.lookup(charset)
            except LookupError:
                break
            return charset
    return "utf-8"


def _reason(exc: BaseException) -> str:
    if find_in_chain(exc, ConnectionRefusedError):
        return "connection refused"
    if find_in_chain(exc, ConnectionResetError):
        return "connection reset"
    os_error = find_in_chain(exc, OSError)
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror
    return str(exc) or type(exc).__name__


# --- pinned connections ---------------------------------------------------------


def _connect_pinned(conn: HTTPConnection, addresses: tuple[str, ...]) -> socket.socket:
    """Connect to the first checked address that answers; never resolve again.

    Fails closed: without checked addresses there is nothing to connect to.
    """
    if not addresses:
        raise NewConnectionError(conn, "no checked address to connect to")
    error: OSError | None = None
    for address in addresses:
        ip = ipaddress.ip_address(address)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            if conn.timeout is not None:
                sock.settimeout(conn.timeout)
            sock.connect((address, conn.port))
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeoutError(
                conn, f"connection to {conn.host} ({address}) timed out"
            ) from exc
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise NewConnectionError(
        conn, f"failed to connect to {conn.host}: {error}"
    ) from error


class _PinnedHTTPConnection(HTTPConnection):
    def __init__(self, *args: Any, pinned_ips: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.pinned_ips = pinned_ips

    def _new_conn(self) -> socket.socket:
        return _connect_pinned(self, self.pinned_ips)


class _PinnedHTTPSConnection(HTTPSConnection):
    # Only the socket is pinned: HTTPSConnection.connect still passes self.host
    # (the URL's name) as SNI and verifies the certificate against it.
    def __init__(self, *args: Any, pinned_ips: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.pinned_ips = pinned_ips

    def _new_conn(self) -> socket.socket:
        return _connect_pinned(self, self.pinned_ips)


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


# --- signing --------------------------------------------------------------------


def signed_headers(
    secret: str, body: bytes, *, msg_id: str | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, as ``inbox.webhooks`` verifies them.

    A retry should pass the first attempt's ``msg_id`` so the receiver can
    drop the duplicate; the timestamp is always fresh.
    """
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_standard(msg_id, timestamp, body, secret),
    }
