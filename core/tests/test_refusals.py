"""A page a role may not open answers 403 with the site around it; htmx and
form posts get the bare reason, shown in place."""

import pytest
from django.test import Client

from core.testing import create_user

pytestmark = pytest.mark.django_db


def test_a_page_load_refused_is_a_page_with_navigation() -> None:
    client = Client()
    client.force_login(create_user(username="alice", role="agent"))

    response = client.get("/reports/")

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "This needs the lead role." in page
    assert 'class="nav"' in page and "Back to the inbox" in page


def test_an_htmx_request_refused_gets_the_bare_reason() -> None:
    client = Client()
    client.force_login(create_user(username="alice", role="agent"))

    response = client.get("/reports/", headers={"HX-Request": "true"})

    assert response.status_code == 403
    assert response.content.decode() == "This needs the lead role."
