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

    made = client.post("/profile/", {"action": "create"}).content.decode()
    key = re.search(r'id="token-key" class="token-key">(\w+)<', made).group(1)
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
