"""Canned responses: the composer's ``/`` picker, and who may edit them."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from core.testing import create_user, message_event, post_webhook
from inbox.models import CannedResponse, Conversation

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}


@pytest.fixture
def conversation() -> Conversation:
    post_webhook(message_event(text="배송이 늦어요", channel="whatsapp"))
    return Conversation.objects.get()


@pytest.fixture
def agent() -> Any:
    user = create_user(username="minji", role="agent")
    user.first_name, user.last_name = "Minji", "Park"
    user.save()
    return user


def _picker(agent: Any, conversation: Conversation, query: str) -> str:
    client = Client()
    client.force_login(agent)
    response = client.get(
        f"/inbox/c/{conversation.pk}/canned/", {"q": query}, headers=HX
    )
    assert response.status_code == 200
    return response.content.decode()


def test_the_picker_filters_by_shortcut_or_title_and_fills_placeholders(
    agent: Any, conversation: Conversation
) -> None:
    # The installation's own (a migration adds five) are there too.
    CannedResponse.objects.create(
        shortcut="zz-ship",
        title="Delayed parcel",
        text="Hi {customer_name}, {agent_name} here on {platform}: it ships today.",
    )
    CannedResponse.objects.create(
        shortcut="zz-money", title="Money back policy", text="3–5 days"
    )
    html = _picker(agent, conversation, "/zz-s")
    assert "/zz-ship" in html and "/zz-money" not in html
    assert "Hi 김민준, Minji Park here on WhatsApp: it ships today." in html
    by_title = _picker(agent, conversation, "money back")
    assert "/zz-money" in by_title and "/zz-ship" not in by_title
    both = _picker(agent, conversation, "zz-")
    assert both.index("/zz-money") < both.index("/zz-ship")  # by shortcut
    assert "No canned response matches “qqq”" in _picker(agent, conversation, "qqq")


def test_a_placeholder_cannot_reach_into_python_objects(
    agent: Any, conversation: Conversation
) -> None:
    CannedResponse.objects.create(
        shortcut="probe",
        title="Probe",
        text="{0.__class__} {customer_name.__class__} {unknown} {customer_name}",
    )
    html = _picker(agent, conversation, "probe")
    assert "{0.__class__} {customer_name.__class__} {unknown} 김민준" in html
    assert "class 'str'" not in html


def test_canned_text_is_escaped_in_the_picker(
    agent: Any, conversation: Conversation
) -> None:
    CannedResponse.objects.create(
        shortcut="xss", title="<b>bold</b>", text='<img src=x onerror="alert(1)">'
    )
    html = _picker(agent, conversation, "xss")
    assert "<img src=x" not in html and "<b>bold</b>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert 'data-text="&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"' in html


def test_only_agents_open_the_picker(conversation: Conversation) -> None:
    anonymous = Client().get(f"/inbox/c/{conversation.pk}/canned/")
    assert anonymous.status_code == 302
    nobody = Client()
    nobody.force_login(create_user(role=None))
    assert nobody.get(f"/inbox/c/{conversation.pk}/canned/").status_code == 403


def test_leads_edit_canned_responses_in_the_admin_and_agents_cannot() -> None:
    lead, agent = create_user(role="lead"), create_user(role="agent")
    lead.is_staff = agent.is_staff = True
    lead.save()
    agent.save()
    as_lead, as_agent = Client(), Client()
    as_lead.force_login(lead)
    as_agent.force_login(agent)
    form = {"shortcut": "zz-hi", "title": "Hi", "text": "Hi {customer_name}"}
    assert as_agent.post("/admin/inbox/cannedresponse/add/", form).status_code == 403
    response = as_lead.post("/admin/inbox/cannedresponse/add/", form)
    assert response.status_code == 302, response.content[:500]
    saved = CannedResponse.objects.get(shortcut="zz-hi")
    assert saved.created_by == lead
