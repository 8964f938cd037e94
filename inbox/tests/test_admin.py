import pytest
from django.test import Client

from core.testing import create_user, message_event, post_webhook

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "model", ["conversation", "message", "webhookdelivery", "activity", "readmark"]
)
def test_every_model_has_a_searchable_filterable_admin(model: str) -> None:
    post_webhook(message_event(text="<b>환불</b>"))
    admin = create_user(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    response = client.get(f"/admin/inbox/{model}/?q=x")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="changelist-search"' in html
    if model != "readmark":
        assert 'id="changelist-filter"' in html
    assert "<b>환불</b>" not in html
