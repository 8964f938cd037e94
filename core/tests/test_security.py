"""Production mode's HTTP safety: TLS-only cookies and HSTS, the CSP, the
deployment check, and throttled password guessing (django-axes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from core.testing import create_user

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


@pytest.fixture
def https(settings: Any) -> Any:
    """The production defaults (HTTPS on), which the test run turns off."""
    settings.HTTPS = settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    return settings


def test_every_page_carries_a_policy_that_allows_only_our_own_files() -> None:
    user = create_user(role="agent")
    client = Client()
    client.force_login(user)
    for url in ("/inbox/", "/inbox/queue/", "/automations/", "/login/"):
        response = client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        directives = dict(
            (part.split()[0], part.split()[1:]) for part in policy.split("; ")
        )
        assert directives["default-src"] == ["'self'"]
        assert directives["script-src"] == ["'self'"]
        assert directives["style-src"] == ["'self'"]
        assert directives["frame-ancestors"] == ["'none'"]
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
        # Nothing inline that the policy would block, and htmx told not to
        # add its own <style>.
        html = response.content.decode()
        assert "<style" not in html and " style=" not in html
        assert '"includeIndicatorStyles": false' in html
        assert '"attributesToSettle": ["class", "width", "height"]' in html
        for tag in html.split("<script")[1:]:
            assert " src=" in tag.split(">", 1)[0], f"inline script on {url}"


def test_plain_http_is_sent_to_https_but_the_health_check_is_not(https: Any) -> None:
    client = Client()
    response = client.get("/inbox/")
    assert response.status_code == 301
    assert response["Location"].startswith("https://")
    assert client.get("/healthz").status_code == 200


def test_over_https_cookies_are_secure_and_hsts_is_sent(https: Any) -> None:
    create_user(username="alice", password="pw-123456", role="agent")
    client = Client()
    page = client.get("/login/", secure=True)
    assert page.status_code == 200
    hsts = page["Strict-Transport-Security"]
    assert "max-age=31536000" in hsts and "includeSubDomains" in hsts
    assert page.cookies["csrftoken"]["secure"]
    response = client.post(
        "/login/",
        {"username": "alice", "password": "pw-123456"},
        secure=True,
    )
    assert response.status_code == 302
    assert response.cookies["sessionid"]["secure"]
    assert response.cookies["sessionid"]["httponly"]


def test_the_deployment_check_is_clean_with_production_defaults() -> None:
    """``manage.py check --deploy`` as the release would run it: no warnings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HTTPS", "DEBUG", "SECURE_HSTS_SECONDS")
    } | {
        "DATABASE_URL": os.environ.get(
            "DATABASE_URL", "postgres://nobody@127.0.0.1:5432/unused"
        ),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
        "SECRET_KEY": "k" + "3xQ-pL9_vR2zT8mW4nY6bC1dF5gH7jK0sA" * 2,
        "OPENCLAW_WEBHOOK_SECRET": "whsec-check",
        "ALLOWED_HOSTS": "inbox.example.com",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def _login(client: Client, username: str, password: str, address: str) -> Any:
    return client.post(
        "/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def test_password_guessing_locks_the_account_out_even_for_the_right_password(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.AXES_FAILURE_LIMIT = 5
    create_user(username="alice", password="right-password-1", role="agent")
    client = Client()
    for attempt in range(4):
        response = _login(client, "alice", f"guess-{attempt}", "198.51.100.1")
        assert response.status_code == 200  # the form again, with its error
        assert b"do not match" in response.content
    # The fifth wrong one reaches the limit: the answer is the lockout.
    response = _login(client, "alice", "guess-5", "198.51.100.1")
    assert response.status_code == 429
    # Locked: the right password no longer logs in, and the page says why.
    response = _login(client, "alice", "right-password-1", "198.51.100.1")
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert "_auth_user_id" not in client.session
    # From another address too: the account itself is locked.
    response = _login(Client(), "alice", "right-password-1", "203.0.113.50")
    assert response.status_code == 429
    assert any("locking out" in r.getMessage().lower() for r in caplog.records)


def test_one_address_guessing_many_accounts_is_locked_out(settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 5
    create_user(username="bob", password="bobs-password-1", role="agent")
    client = Client()
    for n in range(5):
        _login(client, f"user{n}", "nope", "198.51.100.2")
    response = _login(client, "bob", "bobs-password-1", "198.51.100.2")
    assert response.status_code == 429
    # Bob himself, from his own address, is not locked.
    response = _login(Client(), "bob", "bobs-password-1", "203.0.113.9")
    assert response.status_code == 302


def test_a_success_before_the_limit_starts_the_count_again(settings: Any) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    create_user(username="carol", password="carols-pw-1", role="agent")
    for _ in range(2):
        _login(Client(), "carol", "typo", "198.51.100.3")
    assert _login(Client(), "carol", "carols-pw-1", "198.51.100.3").status_code == 302
    for _ in range(2):
        _login(Client(), "carol", "typo", "198.51.100.3")
    assert _login(Client(), "carol", "carols-pw-1", "198.51.100.3").status_code == 302


def test_the_admin_login_is_the_one_login_page() -> None:
    response = Client().get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/admin/"
