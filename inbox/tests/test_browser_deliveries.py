"""A lead looks at the webhook log in Chromium: filters it, opens a delivery
(personal data masked: she has no view_personal_data), replays it and reads
"duplicate"; then replays a selection from the list."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from core.testing import create_user, session_key
from core.tests.browser import BROWSER_TEST, expect

pytestmark = BROWSER_TEST


@pytest.fixture
def lena(transactional_db: None) -> Any:
    return create_user(role="lead", username="lena")


def test_a_lead_filters_opens_and_replays_a_delivery(
    lena: Any,
    open_inbox: Callable[[Any], Any],
    post: Callable[..., dict[str, Any]],
) -> None:
    first = session_key()
    second = session_key()
    post(session_id=first, message_id="b-1", text="제 번호는 010-1234-5678 이에요")
    post(session_id=second, message_id="b-2", text="<b>not bold</b>")
    tab = open_inbox(lena)
    page = tab.page
    tab.log_in()
    page.goto(f"{tab.server.url}/system/deliveries/")
    rows = page.locator("#delivery-rows tr.delivery")
    expect(rows).to_have_count(2)

    # Filter: nothing was rejected, both were stored (the list region swaps).
    page.select_option("#id_outcome", "rejected")
    expect(page.locator("#delivery-rows .empty")).to_be_visible()
    expect(page).to_have_url(re.compile(r"outcome=rejected"))
    page.select_option("#id_outcome", "stored")
    expect(rows).to_have_count(2)
    page.fill("#id_q", first)
    page.press("#id_q", "Enter")
    expect(rows).to_have_count(1)

    # Open it: the body is there, pretty-printed, the phone number masked.
    rows.first.locator("a.open").click()
    body = page.locator("#delivery-body")
    expect(body).to_contain_text('"event": "message"')
    expect(body).to_contain_text("제 번호는 [phone] 이에요")
    expect(body).not_to_contain_text("010-1234-5678")
    expect(page.locator("#masked-note")).to_be_visible()

    # Replay it: stored once stays stored once.
    page.click("#replay-one")
    result = page.locator("#replay-results .replay-result")
    expect(result).to_contain_text("duplicate")
    page.reload()
    expect(page.locator(".replays tbody tr.delivery")).to_have_count(1)
    expect(page.locator(".replays tbody")).to_contain_text("lena")

    # A selection from the list: each with its outcome.
    page.goto(f"{tab.server.url}/system/deliveries/?outcome=stored")
    expect(rows).to_have_count(2)
    page.check("#delivery-rows input[name=delivery] >> nth=0")
    page.check("#delivery-rows input[name=delivery] >> nth=1")
    page.click("#replay-selected")
    expect(page.locator("#replay-results .replay-result")).to_have_count(2)
    expect(page.locator("#replay-results .outcome-duplicate")).to_have_count(2)
    # The customer's markup is text on every page.
    # (The replays are rows of their own: the original is the stored one.)
    page.goto(f"{tab.server.url}/system/deliveries/?outcome=stored&q={second}")
    expect(rows).to_have_count(1)
    rows.first.locator("a.open").click()
    expect(page.locator("#delivery-body")).to_contain_text("<b>not bold</b>")
    assert page.locator("#delivery-body b").count() == 0
    # A phone's width: the table scrolls in its own box, the page does not.
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/system/deliveries/", page.url.removeprefix(tab.server.url)):
        page.goto(f"{tab.server.url}{path}")
        wider = page.evaluate(
            "Math.max(...Array.from(document.querySelectorAll('main > *'),"
            " e => e.scrollWidth)) - window.innerWidth"
        )
        assert wider <= 0, f"{path} is {wider}px wider than a phone"
    tab.assert_healthy_but_reloaded()
    assert tab.api(f"/api/conversations/{first}/messages/")["results"][0]["id"]
    assert len(tab.api(f"/api/conversations/{first}/messages/")["results"]) == 1
