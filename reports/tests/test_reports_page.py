import csv
import io
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.test import Client

from core.testing import create_user
from reports import rollup
from reports.tests.seed import D1, D2, LATER, seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(settings):  # noqa: ANN001, ANN201
    settings.TIME_ZONE = "Asia/Seoul"
    data = seed()
    rollup.store_day(D1, now=LATER)
    rollup.store_day(D2, now=LATER)
    return data


def client_for(role: str) -> Client:
    client = Client()
    client.force_login(create_user(role=role))
    return client


class _Table(HTMLParser):
    """The cells of ``<table id=report-table>``, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.inside = False
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table" and ("id", "report-table") in attrs:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table_of(html: str) -> list[list[str]]:
    parser = _Table()
    parser.feed(html)
    return parser.rows


def custom(first=D1, last=D2) -> str:  # noqa: ANN001
    return f"/reports/?range=custom&from={first.isoformat()}&to={last.isoformat()}"


def test_leads_and_admins_see_reports_agents_do_not() -> None:
    assert client_for("agent").get("/reports/").status_code == 403
    assert client_for("agent").get("/reports/?format=csv").status_code == 403
    assert client_for("lead").get("/reports/").status_code == 200
    assert client_for("admin").get("/reports/").status_code == 200
    assert Client().get("/reports/").status_code == 302  # to the login page


def test_the_page_shows_the_ranges_numbers_charts_and_freshness(seeded) -> None:  # noqa: ANN001
    response = client_for("lead").get(custom())
    html = response.content.decode()
    assert response.status_code == 200
    rows = table_of(html)
    header, body = rows[0], rows[1:]
    assert header[:4] == ["Day", "Platform", "Conversations opened", "Messages in"]
    d1_whatsapp = next(r for r in body if r[:2] == ["2026-03-10", "WhatsApp"])
    assert d1_whatsapp[7:9] == ["1", "1"]  # escalations, SLA breaches
    assert body[-1][:5] == ["All", "All", "3", "3", "5"]
    # Three charts, each an SVG with a title, bars titled with their numbers.
    assert html.count('role="img"') == 3
    assert "<title>03-10 · WhatsApp: 2</title>" in html
    assert "Messages per day, by platform" in html
    assert re.search(r"Updated \d+ minutes? ago|less than a minute", html)
    assert "refund" in html and "alice" in html and "Refund words" in html
    # Answered: C on D2 by the bot alone, A and B (D2) with a human; B on D1
    # got the bot's answer, then was escalated: waiting for a human.
    assert '<dd id="sum-bot-share">25 %</dd>' in html
    assert '<dd id="sum-waiting">1</dd>' in html


def test_the_csv_has_the_tables_numbers(seeded) -> None:  # noqa: ANN001
    lead = client_for("lead")
    page = table_of(lead.get(custom()).content.decode())
    response = lead.get(custom() + "&format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = response.content.decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(text))) == page


def test_an_htmx_range_change_returns_the_region_only(seeded) -> None:  # noqa: ANN001
    response = client_for("lead").get(
        custom(D2, D2), headers={"HX-Request": "true", "HX-Target": "report-body"}
    )
    html = response.content.decode()
    assert "<html" not in html and 'id="report-table"' in html
    totals = table_of(html)[-1]
    assert totals[:4] == ["All", "All", "1", "1"]  # only C was opened on D2


def test_a_bad_range_is_refused_with_the_reason(seeded) -> None:  # noqa: ANN001
    lead = client_for("lead")
    response = lead.get(custom(D2, D1))
    assert response.status_code == 400
    assert "The end is before the start." in response.content.decode()
    far = D1 + timedelta(days=400)
    assert lead.get(custom(D1, far)).status_code == 400


def test_reasons_are_masked_for_leads_without_the_personal_data_permission(
    settings,  # noqa: ANN001
) -> None:
    from reports.tests.seed import conversation, status, utc

    settings.TIME_ZONE = "Asia/Seoul"
    conv = conversation("telegram", utc(10, 1, 0))
    status(conv, utc(10, 1, 1), "bot", "escalated", "call me at 010-1234-5678")
    rollup.store_day(D1, now=LATER)
    lead_csv = client_for("lead").get(custom(D1, D1) + "&format=csv")
    assert "010-1234-5678" not in lead_csv.content.decode("utf-8-sig")
    assert "[phone]" in lead_csv.content.decode("utf-8-sig")
    admin_csv = client_for("admin").get(custom(D1, D1) + "&format=csv")
    assert "010-1234-5678" in admin_csv.content.decode("utf-8-sig")


def test_a_formula_in_a_reason_is_not_a_formula_in_the_csv(settings) -> None:  # noqa: ANN001
    from reports.tests.seed import conversation, status, utc

    settings.TIME_ZONE = "Asia/Seoul"
    conv = conversation("telegram", utc(10, 1, 0))
    status(conv, utc(10, 1, 1), "bot", "escalated", "=HYPERLINK(1)")
    rollup.store_day(D1, now=LATER)
    text = client_for("admin").get(custom(D1, D1) + "&format=csv").content.decode()
    assert "'=HYPERLINK(1)" in text


@pytest.mark.parametrize("model", ["digest", "dailystat", "rollupday"])
def test_the_admin_lists_the_rollup_and_digests_read_only(seeded, model) -> None:  # noqa: ANN001
    admin = client_for("admin")
    response = admin.get(f"/admin/reports/{model}/")
    assert response.status_code == 200
    assert admin.get(f"/admin/reports/{model}/add/").status_code == 403


def test_customer_text_in_reasons_is_escaped_on_the_page(settings) -> None:  # noqa: ANN001
    from reports.tests.seed import conversation, status, utc

    settings.TIME_ZONE = "Asia/Seoul"
    conv = conversation("telegram", utc(10, 1, 0))
    status(conv, utc(10, 1, 1), "bot", "escalated", '<img src=x onerror="alert(1)">')
    rollup.store_day(D1, now=LATER)
    html = client_for("admin").get(custom(D1, D1)).content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
