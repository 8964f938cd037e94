"""A lead looks at the webhook log in Chromium: filters it, opens a delivery
(personal data masked: she has no view_personal_data), replays it and reads
"duplicate"; then replays a selection from the list."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
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
    screenshots: Path,
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

    # Replay it: stored once stays stored once, and the audit says so at once.
    expect(page.locator(".replays tbody")).to_contain_text("Not replayed yet.")
    page.click("#replay-one")
    result = page.locator("#replay-results .replay-result")
    expect(result).to_contain_text("duplicate")
    expect(page.locator(".replays tbody tr.delivery")).to_have_count(1)
    expect(page.locator(".replays tbody")).to_contain_text("lena")
    expect(page.locator(".replays tbody")).not_to_contain_text("Not replayed yet.")

    # A selection from the list: each with its outcome; the list shows the
    # replays as new rows, every box cleared. Nothing ticked: nothing to send.
    page.goto(f"{tab.server.url}/system/deliveries/")
    expect(rows).to_have_count(3)  # the two, and the replay above
    button = page.locator("#replay-selected")
    expect(button).to_be_disabled()
    expect(page.locator("#replay-hint")).to_have_text("Tick at least one delivery.")
    page.check("#delivery-rows input[name=delivery] >> nth=0")
    expect(button).to_be_enabled()
    page.check("#delivery-rows input[name=delivery] >> nth=1")
    button.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#replay-results .replay-result")).to_have_count(2)
    expect(page.locator("#replay-results .outcome-duplicate")).to_have_count(2)
    expect(rows).to_have_count(5)
    expect(page.locator("#delivery-rows input[name=delivery]:checked")).to_have_count(0)
    expect(button).to_be_disabled()
    page.screenshot(path=screenshots / "deliveries-after-replay.png", full_page=True)
    # The customer's markup is text on every page.
    # (The replays are rows of their own: the original is the stored one.)
    page.goto(f"{tab.server.url}/system/deliveries/?outcome=stored&q={second}")
    expect(rows).to_have_count(1)
    rows.first.locator("a.open").click()
    expect(page.locator("#delivery-body")).to_contain_text("<b>not bold</b>")
    assert page.locator("#delivery-body b").count() == 0
    # A phone's width: each delivery is a card, every field in view.
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/system/deliveries/", page.url.removeprefix(tab.server.url)):
        page.goto(f"{tab.server.url}{path}")
        wider = page.evaluate(
            "Math.max(...Array.from(document.querySelectorAll('main *'),"
            " e => Math.ceil(e.getBoundingClientRect().right))) - window.innerWidth"
        )
        assert wider <= 0, f"{path} is {wider}px wider than a phone"
    page.goto(f"{tab.server.url}/system/deliveries/")
    card = rows.first
    box = card.bounding_box()
    assert box is not None and box["height"] < 320, box
    for label in ("Signature", "Session", "Status"):
        expect(card.locator(f"td[data-label={label}]")).to_be_visible()
    tab.assert_healthy_but_reloaded()
    assert tab.api(f"/api/conversations/{first}/messages/")["results"][0]["id"]
    assert len(tab.api(f"/api/conversations/{first}/messages/")["results"]) == 1


@pytest.fixture
def ada(transactional_db: None) -> Any:
    return create_user(role="admin", username="ada")


def test_an_admin_replays_an_unsigned_body_only_after_confirming_the_risk(
    lena: Any,
    ada: Any,
    open_inbox: Callable[[Any], Any],
    daphne_server: Any,
    screenshots: Path,
) -> None:
    import requests

    from core.testing import WEBHOOK_URL, encode, message_event

    session = session_key()
    body = encode(message_event(session_id=session, text="let me in"))
    answer = requests.post(
        f"{daphne_server.url}{WEBHOOK_URL}",
        data=body,
        headers={"Content-Type": "application/json", "X-OpenClaw-Signature": "0" * 64},
        timeout=30,
    )
    assert answer.status_code == 401
    # (Sequences start at 1: the forged post is delivery #1.)
    tab = open_inbox(lena)
    tab.log_in()
    tab.page.goto(f"{tab.server.url}/system/deliveries/1/")
    expect(tab.page.locator("#replay-refusal")).to_contain_text("only an admin")
    expect(tab.page.locator("#replay-one")).to_have_count(0)

    tab = open_inbox(ada)
    page = tab.page
    tab.log_in()
    page.goto(f"{tab.server.url}/system/deliveries/1/")
    warning = page.locator("#unsigned-warning")
    expect(warning).to_contain_text(
        "This body was not signed by the gateway: storing it trusts its sender."
    )
    page.click("#replay-one")  # not confirmed: the browser keeps the form
    expect(page.locator("#replay-results .replay-result")).to_have_count(0)
    page.get_by_label("I trust its sender: store this body").check()
    page.click("#replay-one")
    expect(page.locator("#replay-results .outcome-stored")).to_be_visible()
    expect(page.locator(".replays tbody")).to_contain_text("trusted the unsigned body")
    page.screenshot(path=screenshots / "delivery-unsigned-replayed.png", full_page=True)
    assert tab.api(f"/api/conversations/{session}/messages/")["results"][0]["text"] == (
        "let me in"
    )
    assert tab.errors == [] and tab.htmx_errors == [] and tab.csp_violations == []
