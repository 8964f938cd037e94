"""Each user makes and revokes their own API token on their profile page."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from core.testing import create_user

pytestmark = pytest.mark.django_db


def _as(user) -> Client:  # noqa: ANN001
    client = Client()
    client.force_login(user)
    return client


def test_an_agent_makes_a_token_sees_it_once_uses_it_and_revokes_it() -> None:
    alice = create_user(role="agent", username="alice")
    client = _as(alice)
    assert "You have no token." in client.get("/profile/").content.decode()

    made = client.post("/profile/", {"action": "create"}, follow=True)
    assert made.redirect_chain == [("/profile/#api-token", 302)]
    key = re.search(
        r'id="token-key" class="token-key">(\w+)<', made.content.decode()
    ).group(1)
    assert Token.objects.get(user=alice).key == key
    again = client.get("/profile/").content.decode()
    assert key not in again and "You have a token, made" in again

    api = Client()
    ok = api.get("/api/conversations/", headers={"Authorization": f"Token {key}"})
    assert ok.status_code == 200

    # Replacing it makes the old key useless; revoking leaves none.
    client.post("/profile/", {"action": "create"})
    assert (
        api.get(
            "/api/conversations/", headers={"Authorization": f"Token {key}"}
        ).status_code
        == 401
    )
    client.post("/profile/", {"action": "revoke"})
    assert not Token.objects.filter(user=alice).exists()


def test_a_user_touches_only_their_own_token() -> None:
    alice = create_user(role="agent", username="alice")
    bob = create_user(role="agent", username="bob")
    bobs = Token.objects.create(user=bob)
    _as(alice).post("/profile/", {"action": "revoke"})
    assert Token.objects.filter(pk=bobs.pk).exists()
    assert bobs.key not in _as(alice).get("/profile/").content.decode()


def test_the_profile_needs_a_login_and_a_known_action() -> None:
    assert Client().get("/profile/").status_code == 302
    client = _as(create_user(role="agent"))
    assert client.post("/profile/", {"action": "steal"}).status_code == 400


def test_reloading_after_making_a_token_makes_no_other() -> None:
    """POST, redirect, GET: the key is shown once, after the redirect, and a
    reload of that page is a GET that neither shows it again nor makes one."""
    alice = create_user(role="agent", username="alice")
    client = _as(alice)
    answer = client.post("/profile/", {"action": "create"})
    assert answer.status_code == 302
    assert answer["Location"] == "/profile/#api-token"
    key = Token.objects.get(user=alice).key
    assert key not in answer.content.decode()

    shown = client.get("/profile/")
    assert f'id="token-key" class="token-key">{key}<' in shown.content.decode()
    assert "no-store" in shown["Cache-Control"]
    reloaded = client.get("/profile/").content.decode()
    assert key not in reloaded and "You have a token, made" in reloaded
    assert Token.objects.filter(user=alice).count() == 1
    assert Token.objects.get(user=alice).key == key


def test_revoking_forgets_a_key_not_yet_shown() -> None:
    alice = create_user(role="agent", username="alice")
    client = _as(alice)
    client.post("/profile/", {"action": "create"})
    key = Token.objects.get(user=alice).key
    assert client.post("/profile/", {"action": "revoke"}).status_code == 302
    page = client.get("/profile/").content.decode()
    assert key not in page and "You have no token." in page
