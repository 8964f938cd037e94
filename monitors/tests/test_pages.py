"""The monitor pages: roles, the form (SSRF refusal inline), the escaped diff,
the buttons."""

from __future__ import annotations

import socket
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from core.testing import create_monitor, create_user
from monitors.digest import alerts_of
from monitors.models import Alert, Monitor, Snapshot, parse_price

pytestmark = pytest.mark.django_db


def client_for(role: str | None) -> Client:
    client = Client()
    client.force_login(create_user(role=role))
    return client


@pytest.fixture
def lead_client() -> Client:
    return client_for("lead")


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("₩1,250,000", Decimal("1250000")),
        ("$1,299.00", Decimal("1299.00")),
        ("1.299,00 €", Decimal("1299.00")),
        ("12,900원", Decimal("12900")),
        ("Price: 19.99 USD", Decimal("19.99")),
        ("1 299,50 €", Decimal("1299.50")),
        ("CHF 1'299.95", Decimal("1299.95")),
        ("0,5 kg", Decimal("0.5")),
        ("sold out", None),
    ],
)
def test_prices_are_read_as_written(text: str, number: Decimal | None) -> None:
    assert parse_price(text) == number


@pytest.mark.parametrize(
    ("role", "status"), [(None, 403), ("agent", 403), ("lead", 200), ("admin", 200)]
)
def test_only_leads_and_admins_see_monitors(role: str | None, status: int) -> None:
    monitor = create_monitor(url="https://example.com/")
    client = client_for(role)
    for path in ["/monitors/", "/monitors/new/", f"/monitors/{monitor.pk}/"]:
        assert client.get(path).status_code == status, path
    response = client.post(f"/monitors/{monitor.pk}/toggle/")
    assert response.status_code == (302 if status == 200 else 403)


def test_anonymous_is_sent_to_log_in() -> None:
    response = Client().get("/monitors/")
    assert response.status_code == 302 and "/login" in response["Location"]


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/",
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:8000/admin/",
        "ftp://example.com/file",
    ],
)
def test_the_form_refuses_private_addresses_inline(
    lead_client: Client, url: str, monkeypatch: Any
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("connect reached")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    response = lead_client.post(
        "/monitors/new/",
        {"name": "Metadata", "url": url, "interval_minutes": 60, "direction": "below"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="monitor-form"' in html and "<html" not in html  # the region only
    assert 'id="id_url_error"' in html
    assert Monitor.objects.count() == 0


def test_inline_validation_names_the_refusal(lead_client: Client) -> None:
    response = lead_client.post(
        "/monitors/validate/",
        {"url": "http://169.254.169.254/latest/meta-data"},
        headers={"HX-Request": "true", "HX-Trigger-Name": "url"},
    )
    html = response.content.decode()
    assert "cannot be monitored" in html and "169.254.169.254" in html
    response = lead_client.post(
        "/monitors/validate/",
        {"interval_minutes": "1"},
        headers={"HX-Request": "true", "HX-Trigger-Name": "interval_minutes"},
    )
    assert "every 5 minutes" in response.content.decode()


def test_a_lead_creates_a_price_watch(lead_client: Client) -> None:
    data = {
        "name": "Laptop",
        "url": "http://93.184.215.14/laptop",
        "selector": "#price",
        "interval_minutes": 30,
        "is_active": "on",
        "is_price": "on",
        "direction": "below",
    }
    response = lead_client.post("/monitors/new/", data)
    assert "needs a threshold" in response.content.decode()
    response = lead_client.post("/monitors/new/", data | {"selector": "p[[x"})
    assert "Not a CSS selector" in response.content.decode()
    response = lead_client.post(
        "/monitors/new/",
        data | {"threshold": "1200000"},
        headers={"HX-Request": "true"},
    )
    monitor = Monitor.objects.get()
    assert response["HX-Redirect"] == f"/monitors/{monitor.pk}/"
    assert monitor.is_price and monitor.threshold == Decimal("1200000")
    assert monitor.created_by is not None


def test_editing_the_selector_starts_a_new_baseline(lead_client: Client) -> None:
    monitor = create_monitor(url="http://93.184.215.14/", interval_minutes=60)
    monitor.record_text("old text")
    data = {
        "name": monitor.name,
        "url": monitor.url,
        "selector": "h1",
        "interval_minutes": 60,
        "is_active": "on",
        "direction": "below",
    }
    assert lead_client.post(f"/monitors/{monitor.pk}/edit/", data).status_code == 302
    monitor.refresh_from_db()
    assert monitor.last_good() is None
    monitor.record_text("other text")
    assert Alert.objects.count() == 0


def test_the_diff_is_shown_escaped(lead_client: Client) -> None:
    monitor = create_monitor(url="http://93.184.215.14/")
    monitor.record_text("Price 10")
    monitor.record_text('<script>alert("x")</script> <img src=x onerror=alert(1)>')
    html = lead_client.get(f"/monitors/{monitor.pk}/").content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert 'class="remove">-Price 10</span>' in html
    assert Alert.objects.count() == 1


def test_check_now_is_pending_until_the_check_runs(lead_client: Client) -> None:
    monitor = create_monitor(url="http://93.184.215.14/")
    response = lead_client.post(
        f"/monitors/{monitor.pk}/check/",
        headers={"HX-Request": "true", "HX-Target": "monitor-body"},
    )
    html = response.content.decode()
    assert 'id="check-pending"' in html and 'hx-trigger="every 1s"' in html
    monitor.refresh_from_db()
    assert monitor.is_check_pending
    # A check lost with its worker does not keep the page polling for ever.
    Monitor.objects.update(check_requested_at=timezone.now() - timedelta(minutes=6))
    monitor.refresh_from_db()
    assert not monitor.is_check_pending
    monitor.request_check()
    monitor.record_text("now")
    html = lead_client.get(
        f"/monitors/{monitor.pk}/",
        headers={"HX-Request": "true", "HX-Target": "monitor-body"},
    ).content.decode()
    assert 'id="check-pending"' not in html and "every 1s" not in html


def test_pause_resume_and_delete(lead_client: Client) -> None:
    monitor = create_monitor(url="http://93.184.215.14/")
    lead_client.post(f"/monitors/{monitor.pk}/toggle/")
    monitor.refresh_from_db()
    assert not monitor.is_active and monitor.status == "paused"
    assert "paused" in lead_client.get("/monitors/").content.decode()
    lead_client.post(f"/monitors/{monitor.pk}/toggle/")
    monitor.refresh_from_db()
    assert monitor.is_active
    response = lead_client.post(f"/monitors/{monitor.pk}/delete/", follow=True)
    # Back on the list (the deleted monitor's address would be a 404), told so.
    assert response.redirect_chain == [("/monitors/", 302)]
    assert not Monitor.objects.exists()
    html = response.content.decode()
    assert "Monitor “Product page” deleted with its history." in html
    assert "deleted" not in lead_client.get("/monitors/").content.decode()
    assert lead_client.get(f"/monitors/{monitor.pk}/").status_code == 404


def test_delete_from_htmx_redirects_the_whole_page(lead_client: Client) -> None:
    monitor = create_monitor(url="http://93.184.215.14/")
    response = lead_client.post(
        f"/monitors/{monitor.pk}/delete/", headers={"HX-Request": "true"}
    )
    assert response["HX-Redirect"] == "/monitors/"
    assert not Monitor.objects.exists()


def test_the_list_shows_failing_since(lead_client: Client) -> None:
    monitor = create_monitor(url="http://93.184.215.14/", name="Shop <b>")
    monitor.record_failure("gateway unreachable: connection refused")
    html = lead_client.get("/monitors/").content.decode()
    assert "failing since" in html and "Shop &lt;b&gt;" in html
    detail = lead_client.get(f"/monitors/{monitor.pk}/").content.decode()
    assert "gateway unreachable: connection refused" in detail


def test_backoff_is_shown_with_the_failures_in_a_row(
    lead_client: Client, settings: Any
) -> None:
    settings.MONITORS_MAX_BACKOFF_MINUTES = 360
    monitor = create_monitor(url="http://93.184.215.14/", interval_minutes=10)
    detail = f"/monitors/{monitor.pk}/"
    assert "backing off" not in lead_client.get(detail).content.decode()
    monitor.record_failure("x")
    monitor.record_failure("x")
    html = " ".join(lead_client.get(detail).content.decode().split())
    assert monitor.is_backing_off
    assert '<p class="failing-summary" id="failing-summary">Failing since <time' in html
    assert "2 failures in a row, next check at <time" in html
    assert f'datetime="{monitor.next_check_at.isoformat()}"' in html
    assert "(backing off)" in html
    listing = " ".join(lead_client.get("/monitors/").content.decode().split())
    assert "(backing off after 2 failures)" in listing
    # Never past the cap: an interval at the cap cannot back off.
    capped = create_monitor(url="http://93.184.215.14/", interval_minutes=360)
    capped.record_failure("x")
    assert not capped.is_backing_off
    page = lead_client.get(f"/monitors/{capped.pk}/").content.decode()
    assert "1 failure in a row" in " ".join(page.split())
    assert "(backing off)" not in page
    # A good read ends it.
    monitor.record_text("fine")
    assert "failing-summary" not in lead_client.get(detail).content.decode()


def test_price_history_draws_a_sparkline(lead_client: Client) -> None:
    monitor = create_monitor(
        url="http://93.184.215.14/", is_price=True, threshold=Decimal(15)
    )
    for price in ["$20", "$18", "$12"]:
        monitor.record_text(price)
    html = lead_client.get(f"/monitors/{monitor.pk}/").content.decode()
    assert "<polyline points=" in html and 'class="threshold"' in html
    assert Snapshot.objects.filter(number=Decimal(12)).exists()
    # Labelled: lowest, highest, latest, and a title the screen reader says.
    assert 'aria-labelledby="spark-title"' in html
    assert (
        '<title id="spark-title">Last 3 prices, from 12 to 20; the latest is 12</title>'
        in html
    )
    assert '<dd id="spark-low">12</dd>' in html
    assert '<dd id="spark-high">20</dd>' in html
    assert '<dd id="spark-last">12</dd>' in html


def test_the_form_groups_threshold_and_direction_under_price_watch(
    lead_client: Client,
) -> None:
    html = lead_client.get("/monitors/new/").content.decode()
    fieldset = html[html.index('<fieldset class="price-fields"') :]
    fieldset = fieldset[: fieldset.index("</fieldset>")]
    assert 'id="id_threshold"' in fieldset and 'id="id_direction"' in fieldset
    assert 'id="id_is_price"' not in fieldset and 'id="id_name"' not in fieldset
    # Each field once.
    assert html.count('id="id_threshold"') == 1 and html.count('id="id_direction"') == 1


def test_the_digest_lists_the_days_alerts() -> None:
    monitor = create_monitor(url="http://93.184.215.14/", name="Shop")
    monitor.record_text("a")
    monitor.record_text("b")
    assert alerts_of(timezone.localdate()) == ["Shop: the page changed"]
    assert alerts_of(date(2020, 1, 1)) == []
    from reports import digest

    text = digest.build(timezone.localdate(), so_far=True).text
    assert "Website monitors" in text and "Shop: the page changed" in text


@pytest.mark.parametrize("model", ["monitor", "snapshot", "alert"])
def test_the_admin_lists_and_searches_monitors(model: str) -> None:
    monitor = create_monitor(url="http://93.184.215.14/")
    monitor.record_text("a")
    snapshot, alert = monitor.record_text("b")
    assert alert is not None
    pk = {"monitor": monitor.pk, "snapshot": snapshot.pk, "alert": alert.pk}
    client = client_for("admin")
    assert client.get(f"/admin/monitors/{model}/?q=x").status_code == 200
    assert client.get(f"/admin/monitors/{model}/").status_code == 200
    response = client.get(f"/admin/monitors/{model}/{pk[model]}/change/")
    assert response.status_code == 200
