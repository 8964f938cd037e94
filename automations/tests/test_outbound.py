"""automations.outbound: the SSRF guard, IP pinning, redirects and error classes.

Network rule: traffic goes to 127.0.0.1 only. Tests of refused destinations
patch every way to open a connection so that reaching connect at all fails;
tests against the loopback servers allow connect to 127.0.0.1 and fail on
anything else. Names are answered by a fake resolver (numeric lookups only
otherwise), so no DNS query leaves either.
"""

import base64
import datetime
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3.util.connection
from django.core.exceptions import ImproperlyConfigured

from automations import outbound
from automations.outbound import (
    BlockedDestination,
    OutboundError,
    check_destination,
    post_json,
    signed_headers,
)
from inbox.models import WebhookDelivery
from inbox.webhooks import SignatureError, sign_standard, verify_signature

SECRET = "whsec_" + base64.b64encode(b"automation-test-key-0123").decode()
BODY = json.dumps({"event": "conversation.escalated", "conversation": 42}).encode()
PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700:4700::1111"
REAL_CONNECT = socket.socket.connect
REAL_GETADDRINFO = socket.getaddrinfo


# -- guards --------------------------------------------------------------------


def _refuse(*args, **kwargs):
    raise AssertionError("connect reached")


@pytest.fixture
def no_connect(monkeypatch):
    """Any attempt to open a connection fails the test."""
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", _refuse)


@pytest.fixture
def loopback_only(monkeypatch):
    """Connect works for 127.0.0.1 only; returns the addresses connected to."""
    connects: list[tuple[str, int]] = []

    def connect(sock, address):
        connects.append(address[:2])
        if address[0] != "127.0.0.1":
            raise AssertionError(f"connect reached {address[0]}")
        return REAL_CONNECT(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", _refuse)
    return connects


def _addrinfo(ip: str, port: int) -> tuple:
    if ":" in ip:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))


@pytest.fixture
def dns(monkeypatch):
    """Answer the names in the returned dict; resolve nothing else but IP literals."""
    names: dict[str, list[str]] = {
        "evil.example": ["127.0.0.1"],
        "both.example": [PUBLIC_V4, "10.0.0.5"],
        "public.example": [PUBLIC_V4, PUBLIC_V6],
    }

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host in names:
            return [_addrinfo(ip, port) for ip in names[host]]
        # AI_NUMERICHOST: literals (even 2130706433) resolve, no query is sent.
        return REAL_GETADDRINFO(
            host, port, family, type, proto, flags | socket.AI_NUMERICHOST
        )

    monkeypatch.setattr(outbound.socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.fixture
def allow_loopback(settings):
    settings.AUTOMATIONS_WEBHOOK_ALLOWLIST = ["127.0.0.1/32"]


# -- a loopback receiver -------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: object  # email.message.Message: case-insensitive, as requests' are
    body: bytes


@dataclass
class Receiver:
    url: str
    port: int
    seen: list[Received] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    """Routes: /ok, /status/<n>, /redirect/<n>?to=<url>, /loop, /sleep, /big."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.receiver.seen.append(
            Received("POST", self.path, self.headers, body)
        )
        parts = urlsplit(self.path)
        segments = parts.path.strip("/").split("/")
        if segments[0] == "status":
            status = int(segments[1])
            extra = {"Retry-After": "7"} if status == 429 else {}
            return self._answer(status, b"receiver says no", extra)
        if segments[0] == "redirect":
            to = parse_qs(parts.query)["to"][0]
            return self._answer(int(segments[1]), b"", {"Location": to})
        if segments[0] == "loop":
            return self._answer(307, b"", {"Location": "/loop"})
        if segments[0] == "sleep":
            time.sleep(1.5)
        if segments[0] == "big":
            return self._answer(200, b"x" * 200_000)
        return self._answer(200, json.dumps({"received": len(body)}).encode())

    def _answer(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:  # the client gave up (the timeout test)
            pass

    def log_message(self, *args) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up or refused our certificate


@contextmanager
def _serve(tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"):
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    scheme = "https" if tls else "http"
    server.receiver = Receiver(f"{scheme}://{host}:{port}", port)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server.receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver():
    with _serve() as r:
        yield r


# -- refused before any packet -------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/hook", "10.0.0.1: a private address"),
        ("http://172.16.0.1/", "a private address"),
        ("http://192.168.1.1/", "a private address"),
        ("http://[fc00::1]/", "a private address"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://127.0.0.1:8080/", "127.0.0.1: a loopback address"),
        ("http://[::1]/", "a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "an IPv6 form of 127.0.0.1, a loopback"),
        ("http://[::ffff:a9fe:a9fe]/", "an IPv6 form of 169.254.169.254"),
        ("http://[64:ff9b::7f00:1]/", "an IPv6 form of 127.0.0.1, a loopback"),
        ("http://[::127.0.0.1]/", "an IPv6 form of 127.0.0.1, a loopback"),
        ("http://0.0.0.0/", "the unspecified address"),
        ("http://[::]/", "the unspecified address"),
        ("http://0/", "resolves to 0.0.0.0, the unspecified address"),
        ("http://2130706433/", "resolves to 127.0.0.1, a loopback"),
        ("http://100.64.0.1/", "a shared address"),
        ("http://[fe80::1]/", "a link-local address"),
        ("http://224.0.0.1/", "a multicast address"),
        ("http://[ff02::1]/", "a multicast address"),
        ("http://240.0.0.1/", "a reserved address"),
        (
            "http://evil.example/hook",
            "evil.example: it resolves to 127.0.0.1, a loopback",
        ),
        (
            "https://evil.example/hook",
            "evil.example: it resolves to 127.0.0.1, a loopback",
        ),
        (
            "http://both.example/hook",
            "both.example: it resolves to 10.0.0.5, a private",
        ),
    ],
)
def test_refused_destination_never_reaches_connect(no_connect, dns, url, reason):
    with pytest.raises(BlockedDestination) as caught:
        post_json(url, BODY, signed_headers(SECRET, BODY))
    assert caught.value.permanent is True
    assert caught.value.status is None
    assert reason in caught.value.message


def test_check_destination_names_host_and_reason(no_connect, dns):
    with pytest.raises(BlockedDestination) as caught:
        check_destination("evil.example", 443)
    assert str(caught.value) == (
        "refused evil.example: it resolves to 127.0.0.1, a loopback address"
    )


def test_public_addresses_pass_and_all_records_are_returned(no_connect, dns):
    assert check_destination("public.example", 443) == [PUBLIC_V4, PUBLIC_V6]
    # The IPv6 spellings of a public IPv4 address are that address.
    assert check_destination(f"::ffff:{PUBLIC_V4}", 80) == [f"::ffff:{PUBLIC_V4}"]
    assert check_destination("64:ff9b::5db8:d70e", 80) == ["64:ff9b::5db8:d70e"]


def test_allowlist_admits_listed_addresses_only(no_connect, dns, settings):
    settings.AUTOMATIONS_WEBHOOK_ALLOWLIST = ["127.0.0.1/32", "10.20.0.0/16"]
    assert check_destination("evil.example", 80) == ["127.0.0.1"]
    assert check_destination("10.20.3.4", 80) == ["10.20.3.4"]
    assert check_destination("::ffff:127.0.0.1", 80) == ["::ffff:127.0.0.1"]
    for refused in ("127.0.0.2", "10.21.0.1", "169.254.169.254", "::1"):
        with pytest.raises(BlockedDestination):
            check_destination(refused, 80)
    # Read at call time: withdrawing the entry refuses again.
    settings.AUTOMATIONS_WEBHOOK_ALLOWLIST = []
    with pytest.raises(BlockedDestination):
        check_destination("evil.example", 80)


def test_bad_allowlist_override_is_a_configuration_error(no_connect, dns, settings):
    settings.AUTOMATIONS_WEBHOOK_ALLOWLIST = ["intranet"]
    with pytest.raises(ImproperlyConfigured, match="intranet"):
        check_destination("evil.example", 80)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("127.0.0.1/32, 10.0.0.0/8,::1", True), ("127.0.0.1/32,intranet", False)],
)
def test_settings_check_the_allowlist_at_start(value, ok):
    env = {**os.environ, "AUTOMATIONS_WEBHOOK_ALLOWLIST": value}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import core.settings as s; print(s.AUTOMATIONS_WEBHOOK_ALLOWLIST)",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if ok:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "['127.0.0.1/32', '10.0.0.0/8', '::1']"
    else:
        assert result.returncode != 0
        assert "ImproperlyConfigured" in result.stderr
        assert "AUTOMATIONS_WEBHOOK_ALLOWLIST: 'intranet' is not an IP" in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "http://user:pass@example.com/",
        "http://user@example.com/",
        "http://example.com\\@127.0.0.1/",
        "http://example.com:0/",
        "http://example.com:99999/",
        "http://example.com:8o/",
        "http:///hook",
        "http://exa mple.com/",
        "http://example.com/\r\nX-Injected: 1",
    ],
)
def test_refused_urls_fail_before_resolving(
    no_connect, monkeypatch, allow_loopback, url
):
    monkeypatch.setattr(outbound.socket, "getaddrinfo", _refuse)
    with pytest.raises(OutboundError) as caught:
        post_json(url, BODY, {})
    assert caught.value.permanent is True


def test_header_injection_is_refused(no_connect, dns, allow_loopback):
    with pytest.raises(OutboundError, match="X-Note") as caught:
        post_json("http://127.0.0.1:9/", BODY, {"X-Note": "a\r\nHost: 10.0.0.1"})
    assert caught.value.permanent is True
    with pytest.raises(OutboundError, match="is set by the client"):
        post_json("http://127.0.0.1:9/", BODY, {"Host": "internal.example"})


# -- allowlisted loopback, for real ---------------------------------------------


def test_allowlisted_loopback_receives_a_verifiable_signed_post(
    allow_loopback, loopback_only, receiver
):
    response = post_json(
        receiver.url + "/ok", BODY, signed_headers(SECRET, BODY, msg_id="msg_1")
    )

    assert response.status == 200
    assert json.loads(response.text) == {"received": len(BODY)}
    assert response.headers["content-type"] == "application/json"
    assert response.url == receiver.url + "/ok"
    assert response.truncated is False
    assert response.elapsed_ms >= 0
    assert loopback_only == [("127.0.0.1", receiver.port)]
    [got] = receiver.seen
    assert (got.method, got.path, got.body) == ("POST", "/ok", BODY)
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"] == "OpenClawInbox-Automations/1"
    assert got.headers["webhook-id"] == "msg_1"
    assert verify_signature(got.headers, got.body, [SECRET]) == (
        WebhookDelivery.Scheme.STANDARD
    )
    with pytest.raises(SignatureError):
        verify_signature(
            got.headers, got.body, ["whsec_" + base64.b64encode(b"other").decode()]
        )


def test_signed_headers_follow_standard_webhooks():
    before = int(time.time())
    headers = signed_headers(SECRET, BODY)
    stamp = int(headers["webhook-timestamp"])
    assert before <= stamp <= time.time()
    assert headers["webhook-id"].startswith("msg_")
    assert headers["webhook-id"] != signed_headers(SECRET, BODY)["webhook-id"]
    assert headers["webhook-signature"] == sign_standard(
        headers["webhook-id"], stamp, BODY, SECRET
    )
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "OpenClawInbox-Automations/1"


def test_proxy_settings_in_the_environment_are_ignored(
    allow_loopback, loopback_only, receiver, monkeypatch
):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://10.0.0.1:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert post_json(receiver.url + "/ok", BODY, {}).status == 200
    assert loopback_only == [("127.0.0.1", receiver.port)]


# -- redirects -------------------------------------------------------------------


@pytest.mark.parametrize("code", [307, 308])
@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://10.0.0.1/", "a private address"),
        ("http://loopback2.example:{port}/ok", "resolves to 127.0.0.2, a loopback"),
    ],
)
def test_redirect_to_a_refused_address_is_refused(
    allow_loopback, loopback_only, receiver, dns, code, target, reason
):
    # Only the receiver's 127.0.0.1 is allowlisted, not the rest of 127/8.
    dns["loopback2.example"] = ["127.0.0.2"]
    target = target.format(port=receiver.port)
    with pytest.raises(BlockedDestination) as caught:
        post_json(f"{receiver.url}/redirect/{code}?to={target}", BODY, {})
    assert reason in caught.value.message
    assert len(receiver.seen) == 1  # the first hop really happened
    assert loopback_only == [("127.0.0.1", receiver.port)]


@pytest.mark.parametrize("code", [307, 308])
def test_307_and_308_are_followed_with_method_and_body(
    allow_loopback, loopback_only, receiver, code
):
    response = post_json(f"{receiver.url}/redirect/{code}?to=/ok", BODY, {})
    assert response.status == 200
    assert response.url == receiver.url + "/ok"
    assert [(r.method, r.body) for r in receiver.seen] == [("POST", BODY)] * 2
    assert receiver.seen[1].path == "/ok"


@pytest.mark.parametrize("code", [301, 302, 303])
def test_redirects_that_would_turn_into_get_are_permanent_errors(
    allow_loopback, loopback_only, receiver, code
):
    with pytest.raises(OutboundError) as caught:
        post_json(f"{receiver.url}/redirect/{code}?to=/moved", BODY, {})
    assert caught.value.permanent is True
    assert caught.value.status == code
    assert "/moved" in caught.value.message
    assert len(receiver.seen) == 1


def test_redirect_loop_is_cut(allow_loopback, loopback_only, receiver):
    with pytest.raises(OutboundError, match="more than 2 redirects") as caught:
        post_json(receiver.url + "/loop", BODY, {}, max_redirects=2)
    assert caught.value.permanent is True
    assert len(receiver.seen) == 3


def test_credentials_are_not_forwarded_to_another_origin(allow_loopback, loopback_only):
    with _serve() as first, _serve() as second:
        post_json(
            f"{first.url}/redirect/307?to={second.url}/ok",
            BODY,
            {"Authorization": "Bearer s3cret", "X-Team": "ops"},
        )
    assert first.seen[0].headers["Authorization"] == "Bearer s3cret"
    assert second.seen[0].headers["Authorization"] is None
    assert second.seen[0].headers["X-Team"] == "ops"


# -- DNS rebinding -----------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_connection_uses_the_checked_address_not_a_second_lookup(monkeypatch, scheme):
    lookups: list[str] = []
    connects: list[tuple[str, int]] = []

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        lookups.append(host)
        ip = PUBLIC_V4 if len(lookups) == 1 else "127.0.0.1"
        return [_addrinfo(ip, port)]

    def connect(sock, address):
        connects.append(address[:2])
        raise ConnectionRefusedError("stopped by the test")

    monkeypatch.setattr(outbound.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", _refuse)

    with pytest.raises(OutboundError) as caught:
        post_json(f"{scheme}://rebind.example/hook", BODY, {})

    port = 443 if scheme == "https" else 80
    assert connects == [(PUBLIC_V4, port)]
    assert lookups == ["rebind.example"]
    assert caught.value.permanent is False
    assert "connection refused" in caught.value.message


# -- TLS: pinned IP, hostname still verified -------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A CA and a certificate for hooks.test, in PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)

    def build(subject, issuer, key, signer, *, ca: bool, names=()):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.BasicConstraints(ca=ca, path_length=None), critical=True
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                critical=False,
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("Test CA", "Test CA", ca_key, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build("hooks.test", "Test CA", key, ca_key, ca=False, names=["hooks.test"])
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "cert.pem").write_bytes(cert.public_bytes(pem))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder


@pytest.fixture
def tls_receiver(tls_files, monkeypatch, dns, allow_loopback, loopback_only):
    """hooks.test (and wrong-name.test) resolve to a TLS receiver on 127.0.0.1."""
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "cert.pem", tls_files / "key.pem")
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    # The client trusts the test CA through OpenSSL's default verify paths.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files / "ca.pem"))
    dns["hooks.test"] = ["127.0.0.1"]
    dns["wrong-name.test"] = ["127.0.0.1"]
    with _serve(context, host="hooks.test") as r:
        r.sni = names
        yield r


def test_https_connects_to_the_checked_ip_with_sni_and_verification(
    tls_receiver, loopback_only
):
    response = post_json(tls_receiver.url + "/ok", BODY, {})
    assert response.status == 200
    assert tls_receiver.sni == ["hooks.test"]
    assert loopback_only == [("127.0.0.1", tls_receiver.port)]
    assert tls_receiver.seen[0].headers["Host"] == f"hooks.test:{tls_receiver.port}"


def test_https_certificate_for_another_name_is_refused(tls_receiver):
    with pytest.raises(OutboundError, match="TLS") as caught:
        post_json(f"https://wrong-name.test:{tls_receiver.port}/ok", BODY, {})
    assert caught.value.permanent is True
    assert tls_receiver.seen == []


def test_https_to_http_redirect_is_refused(tls_receiver, receiver):
    with pytest.raises(OutboundError, match="https for http") as caught:
        post_json(f"{tls_receiver.url}/redirect/307?to={receiver.url}/ok", BODY, {})
    assert caught.value.permanent is True
    assert receiver.seen == []


# -- answers and failures --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "permanent", "retry_after"),
    [
        (500, False, None),
        (503, False, None),
        (408, False, None),
        (429, False, 7.0),
        (400, True, None),
        (404, True, None),
        (410, True, None),
    ],
)
def test_error_statuses_are_classified(
    allow_loopback, loopback_only, receiver, status, permanent, retry_after
):
    with pytest.raises(OutboundError) as caught:
        post_json(f"{receiver.url}/status/{status}", BODY, {})
    error = caught.value
    assert type(error) is OutboundError
    assert (error.status, error.permanent, error.retry_after) == (
        status,
        permanent,
        retry_after,
    )
    assert f"answered {status}: receiver says no" in error.message


def test_timeout_is_transient(allow_loopback, loopback_only, receiver):
    started = time.monotonic()
    with pytest.raises(OutboundError, match="timed out") as caught:
        post_json(receiver.url + "/sleep", BODY, {}, timeout=0.3)
    assert caught.value.permanent is False
    assert time.monotonic() - started < 1.2


def test_connection_refused_is_transient(allow_loopback, loopback_only):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OutboundError, match="connection refused") as caught:
        post_json(f"http://127.0.0.1:{port}/", BODY, {})
    assert caught.value.permanent is False


def test_response_body_is_capped(allow_loopback, loopback_only, receiver):
    response = post_json(receiver.url + "/big", BODY, {})
    assert response.status == 200
    assert len(response.text) == outbound.MAX_BODY_BYTES == 65_536
    assert response.truncated is True


# --- checked when a trigger is saved ------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.1.2.3/hook", "10.1.2.3: a private address"),
        ("http://169.254.169.254/latest/meta-data/", "a link-local address"),
        ("http://127.0.0.1:8080/", "a loopback address"),
        ("http://[::ffff:a9fe:a9fe]/", "an IPv6 form of 169.254.169.254"),
        ("http://evil.example/hook", "it resolves to 127.0.0.1, a loopback"),
        ("http://both.example/hook", "it resolves to 10.0.0.5, a private"),
    ],
)
def test_a_trigger_cannot_be_saved_with_a_private_destination(
    no_connect, dns, url, reason
):
    from django.core.exceptions import ValidationError

    from automations.actions import clean_action

    with pytest.raises(ValidationError) as caught:
        clean_action({"type": "call_webhook", "url": url})
    assert reason in " ".join(caught.value.messages)


def test_a_public_destination_is_saved_and_nothing_is_sent(no_connect, dns):
    from automations.actions import clean_action

    config = clean_action({"type": "call_webhook", "url": "https://public.example/h"})
    assert config["url"] == "https://public.example/h"


def test_an_allowlisted_private_destination_may_be_saved(no_connect, dns, settings):
    from automations.actions import clean_action

    settings.AUTOMATIONS_WEBHOOK_ALLOWLIST = ["10.0.0.0/8"]
    config = clean_action({"type": "call_webhook", "url": "http://10.1.2.3/hook"})
    assert config["url"] == "http://10.1.2.3/hook"


@pytest.mark.django_db
def test_the_editor_shows_the_refusal_inside_the_form(no_connect, dns, client):
    from core.testing import create_user

    client.force_login(create_user(role="lead"))
    response = client.post(
        "/automations/new/",
        {
            "name": "Metadata grab",
            "patterns": "refund",
            "match_mode": "any",
            "priority": "100",
            "cooldown_seconds": "0",
            "action": "a1",
            "action-a1-type": "call_webhook",
            "action-a1-url": "http://169.254.169.254/latest/meta-data/",
        },
    )
    assert response.status_code == 400
    assert "a link-local address" in response.content.decode()
    from automations.models import Trigger

    assert not Trigger.objects.exists()
