"""Who may read the API: the pages' role rule, per role, endpoint and credential."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from core.testing import create_user, message_event, post_webhook, session_key

pytestmark = pytest.mark.django_db

SESSION = session_key()
ENDPOINTS = [
    "/api/conversations/",
    f"/api/conversations/{SESSION}/messages/",
    "/api/schema/",
]


@pytest.fixture(autouse=True)
def conversation() -> None:
    post_webhook(message_event(session_id=SESSION, text="secret customer text"))


def as_session(user) -> Client:  # noqa: ANN001
    client = Client()
    client.force_login(user)
    return client


def as_token(user) -> Client:  # noqa: ANN001
    token, _ = Token.objects.get_or_create(user=user)
    return Client(headers={"Authorization": f"Token {token.key}"})


@pytest.mark.parametrize("path", ENDPOINTS)
def test_anonymous_and_bad_tokens_are_401(path: str) -> None:
    assert Client().get(path).status_code in (401, 403)
    assert Client(headers={"Authorization": "Token nope"}).get(path).status_code == 401


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("login", [as_session, as_token], ids=["session", "token"])
def test_a_user_with_no_role_reads_nothing(path: str, login) -> None:  # noqa: ANN001
    response = login(create_user(role=None)).get(path)
    assert response.status_code == 403
    assert b"secret customer text" not in response.content


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("role", ["agent", "lead", "admin"])
@pytest.mark.parametrize("login", [as_session, as_token], ids=["session", "token"])
def test_agents_leads_and_admins_read(path: str, role: str, login) -> None:  # noqa: ANN001
    response = login(create_user(role=role)).get(path)
    assert response.status_code == 200, response.content[:200]
    if "messages" in path:
        assert b"secret customer text" in response.content


def test_a_revoked_token_is_refused_at_once() -> None:
    user = create_user(role="agent")
    client = as_token(user)
    assert client.get(ENDPOINTS[0]).status_code == 200
    Token.objects.filter(user=user).delete()
    assert client.get(ENDPOINTS[0]).status_code == 401


def test_a_token_of_an_account_that_lost_its_role_is_refused() -> None:
    user = create_user(role="agent")
    client = as_token(user)
    assert client.get(ENDPOINTS[0]).status_code == 200
    user.groups.clear()
    assert client.get(ENDPOINTS[0]).status_code == 403
    user.is_active = False
    user.save()
    assert client.get(ENDPOINTS[0]).status_code in (401, 403)


@pytest.mark.parametrize(
    "path",
    [
        # Decodes, but its position is no date: the query would fail.
        "/api/conversations/?cursor=cD05OTk5LTk5LTk5JnI9MA==",
        "/api/conversations/?cursor=cD0yMDI2LTEzLTQ1VDk5Ojk5Ojk5JnI9MQ==",
        f"/api/conversations/{SESSION}/messages/?cursor=cD1hYmM=",
    ],
)
def test_a_tampered_cursor_is_a_client_error(path: str) -> None:
    response = as_session(create_user(role="agent")).get(path)
    assert 400 <= response.status_code < 500
    assert response["Content-Type"].startswith("application/json")


def test_a_session_id_with_nul_is_404() -> None:
    response = as_session(create_user(role="agent")).get(
        "/api/conversations/%00/messages/"
    )
    assert response.status_code == 404
