"""The API docs page (Swagger UI) in Chromium: from our own static files,
under the Content-Security-Policy, listing the API's operations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from core.testing import create_user
from core.tests.browser import BROWSER_TEST, Inbox, expect

pytestmark = BROWSER_TEST


@pytest.fixture
def agent(transactional_db: None) -> Any:
    return create_user(role="agent", username="api-reader")


def test_the_api_docs_load_from_our_own_files_under_the_policy(
    agent: Any, open_inbox: Callable[[Any], Inbox]
) -> None:
    tab = open_inbox(agent)
    tab.log_in()
    requested: list[str] = []
    tab.page.on("request", lambda request: requested.append(request.url))
    tab.page.goto(f"{tab.server.url}/api/docs/")
    expect(tab.page.locator(".swagger-ui .opblock").first).to_be_visible()
    expect(tab.page.locator(".swagger-ui")).to_contain_text("/api/conversations/")
    expect(tab.page.locator(".swagger-ui")).to_contain_text("take-over")
    outside = [url for url in requested if not url.startswith(tab.server.url)]
    assert outside == [], outside
    assert tab.csp_violations == [], tab.csp_violations
    assert tab.errors == []
