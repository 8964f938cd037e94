"""The read API against its own OpenAPI schema (schemathesis, generated input).

Every operation the schema lists is called with generated parameters (odd
cursors, limits, filters, session ids of any characters) by an agent with a
token: no answer is a 5xx, every answer is JSON that matches the schema, and
every status it gives is one the schema documents.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import positive_data_acceptance

from core.testing import create_user, message_event, post_webhook

# The schema as /api/schema/ serves it (that view needs a role; this needs none).
_document = json.loads(
    json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str)
)
schema = schemathesis.openapi.from_dict(_document)
schema.app = get_wsgi_application()


@pytest.fixture
def agent_token(db: None) -> Iterator[str]:
    for n, text in enumerate(["환불 해주세요", "where is my order?", "<b>hi</b>"]):
        post_webhook(
            message_event(session_id=f"agent:main:telegram:direct:{n}", text=text)
        )
    # As Django's test client does: a request must not close the test's
    # database connection (its transaction holds the rows above).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield Token.objects.create(user=create_user(role="agent")).key
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_read_api_answers_generated_requests_as_its_schema_says(
    case: schemathesis.Case, agent_token: str
) -> None:
    response = case.call_and_validate(
        headers={"Authorization": f"Token {agent_token}"},
        # A cursor is opaque: a schema cannot tell the ones we gave out from
        # other strings, which are (rightly) a 400, not "schema-valid".
        excluded_checks=[positive_data_acceptance],
    )
    assert response.status_code < 500
    headers = {name.lower(): value for name, value in response.headers.items()}
    assert headers["content-type"][0].startswith("application/json"), (
        case.path,
        case.path_parameters,
        response.status_code,
        response.text[:300],
    )
