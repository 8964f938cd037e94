"""The webhook deliveries page (/system/deliveries/): the list and its filters,
one delivery's body (masked unless permitted, escaped always), replay (one, a
selection; stored once stays stored once), its audit, and retention."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from prometheus_client import REGISTRY

from core.testing import create_user, encode, message_event, post_webhook, session_key
from inbox.models import Conversation, Message, WebhookDelivery
from inbox.tasks import prune_webhook_deliveries

pytestmark = pytest.mark.django_db

LIST = "/system/deliveries/"
REPLAY = "/system/deliveries/replay/"


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def lead() -> Any:
    return create_user(role="lead", username="lena")


@pytest.fixture
def as_lead(lead: Any) -> Client:
    return client_for(lead)


@pytest.fixture
def admin() -> Any:
    return create_user(role="admin", username="ada")


@pytest.fixture
def as_admin(admin: Any) -> Client:
    return client_for(admin)


def granted(user: Any) -> Any:
    user.user_permissions.add(
        Permission.objects.get(
            codename="view_personal_data", content_type__app_label="core"
        )
    )
    return type(user).objects.get(pk=user.pk)  # permissions are cached per object


def text(response: Any) -> str:
    """The page's markup with the session keys' line-break hints taken out."""
    return response.content.decode().replace(":<wbr>", ":")


def rows(response: Any) -> list[int]:
    """The delivery ids the list shows, in order."""
    html = response.content.decode()
    return [
        int(part.split('"', 1)[0])
        for part in html.split('id="delivery-')[1:]
        if part.split('"', 1)[0].isdigit()
    ]


def stored(text: str = "hello", **data: Any) -> WebhookDelivery:
    post_webhook(message_event(text=text, **data))
    return WebhookDelivery.objects.latest("pk")


def rejected_for_signature(payload: Any) -> WebhookDelivery:
    response = post_webhook(payload, signature="0" * 64)
    assert response.status_code == 401
    return WebhookDelivery.objects.latest("pk")


def replay(
    client: Client,
    *deliveries: WebhookDelivery,
    trust_unsigned: str = "",
    page: str = "",
    **headers: str,
) -> Any:
    data: dict[str, Any] = {"delivery": [str(d.pk) for d in deliveries]}
    if trust_unsigned:
        data["trust_unsigned"] = trust_unsigned
    if page:
        data["page"] = page
    return client.post(REPLAY, data, headers=headers)


def trust(client: Client, delivery: WebhookDelivery, **headers: str) -> Any:
    """Replay an unsigned body as its page does: one, the risk confirmed."""
    return replay(client, delivery, trust_unsigned="yes", page="detail", **headers)


# --- who may look ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [LIST, "/system/deliveries/1/"],
)
def test_agents_are_refused(url: str) -> None:
    stored()
    agent = client_for(create_user(role="agent"))
    assert agent.get(url).status_code == 403
    assert replay(agent, WebhookDelivery.objects.get()).status_code == 403
    assert WebhookDelivery.objects.count() == 1


def test_anonymous_visitors_are_sent_to_log_in() -> None:
    response = Client().get(LIST)
    assert response.status_code == 302 and "/login/" in response["Location"]


# --- the list ----------------------------------------------------------------------


def test_the_list_shows_each_delivery_newest_first(as_lead: Client) -> None:
    session = session_key()
    first = stored(session_id=session, message_id="m1")
    second = rejected_for_signature(message_event())
    response = as_lead.get(LIST)
    assert response.status_code == 200
    assert rows(response) == [second.pk, first.pk]
    html = text(response)
    assert "X-OpenClaw-Signature does not match" in html
    assert session in html  # from the conversation
    assert 'name="delivery"' in html


def test_filters_by_outcome_event_scheme_and_dates(as_lead: Client) -> None:
    good = stored()
    bad = rejected_for_signature(message_event())
    old = stored()
    WebhookDelivery.objects.filter(pk=old.pk).update(
        received_at=timezone.now() - timedelta(days=10)
    )
    ignored_body = encode({"event": "typing", "data": {}})
    post_webhook(body=ignored_body)
    ignored = WebhookDelivery.objects.latest("pk")
    assert ignored.outcome == "ignored"

    assert rows(as_lead.get(LIST, {"outcome": "rejected"})) == [bad.pk]
    assert rows(as_lead.get(LIST, {"event": "typing"})) == [ignored.pk]
    assert rows(as_lead.get(LIST, {"scheme": "none"})) == [bad.pk]
    today = timezone.localdate()
    since = (today - timedelta(days=1)).isoformat()
    assert old.pk not in rows(as_lead.get(LIST, {"since": since}))
    until = (today - timedelta(days=5)).isoformat()
    assert rows(as_lead.get(LIST, {"until": until})) == [old.pk]
    assert set(rows(as_lead.get(LIST, {"outcome": "stored"}))) == {good.pk, old.pk}
    # A bad value is dropped, not a server error.
    assert as_lead.get(LIST, {"outcome": "nonsense", "since": "x"}).status_code == 200


def test_search_finds_session_webhook_id_and_text(lead: Any) -> None:
    as_lead = client_for(granted(lead))  # may read bodies, so may search them
    session = session_key()
    by_session = stored(session_id=session)
    stored(text="nothing to see")
    body = encode(message_event(text="the parcel with the blue ribbon"))
    from core.testing import standard_headers

    headers = standard_headers(body)
    post_webhook(body=body, headers=headers)
    by_id = WebhookDelivery.objects.latest("pk")
    rejected = rejected_for_signature(message_event(text="a forged zebra"))

    assert rows(as_lead.get(LIST, {"q": session})) == [by_session.pk]
    assert rows(as_lead.get(LIST, {"q": headers["webhook-id"]})) == [by_id.pk]
    assert rows(as_lead.get(LIST, {"q": "blue ribbon"})) == [by_id.pk]
    assert rows(as_lead.get(LIST, {"q": "does not match"})) == [rejected.pk]
    assert rows(as_lead.get(LIST, {"q": "zebra"})) == [rejected.pk]
    # Text search reads the last days only: an old body is not scanned.
    WebhookDelivery.objects.filter(pk=by_id.pk).update(
        received_at=timezone.now() - timedelta(days=30)
    )
    assert rows(as_lead.get(LIST, {"q": "blue ribbon"})) == []
    assert rows(as_lead.get(LIST, {"q": headers["webhook-id"]})) == [by_id.pk]


def test_the_filter_form_swaps_the_list_region(as_lead: Client) -> None:
    stored()
    response = as_lead.get(
        LIST,
        {"outcome": "stored"},
        headers={"HX-Request": "true", "HX-Target": "delivery-list"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<table" in html and "<html" not in html and "delivery-filters" not in html


def test_pages_follow_on_without_overlap(as_lead: Client) -> None:
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(outcome="stored", status_code=200, event_type="message")
        for _ in range(60)
    )
    first = as_lead.get(LIST)
    first_ids = rows(first)
    assert len(first_ids) == 50
    html = first.content.decode()
    link = html.split('class="more"><a href="?', 1)[1].split('"', 1)[0]
    second_ids = rows(as_lead.get(f"{LIST}?{link.replace('&amp;', '&')}"))
    assert len(second_ids) == 10
    assert not set(first_ids) & set(second_ids)
    assert max(second_ids) < min(first_ids)


def test_the_list_reads_no_row_by_row(as_lead: Client) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as seen:
            assert as_lead.get(LIST).status_code == 200
        return len(seen)

    stored()
    rejected_for_signature(message_event())
    queries()  # the first page of a process fills caches (masking patterns)
    few = queries()
    for _ in range(5):
        stored()
        rejected_for_signature(message_event())
    assert queries() == few
    with CaptureQueriesContext(connection) as seen:
        assert as_lead.get(LIST, {"q": "zzz-nothing"}).status_code == 200
    assert len(seen) == few


def test_a_rejected_delivery_names_the_session_its_body_carries(
    lead: Any, as_lead: Client
) -> None:
    session = session_key(chat="whatsapp", peer="+821098765432")
    rejected_for_signature(message_event(session_id=session, channel="whatsapp"))
    html = text(as_lead.get(LIST))
    assert session not in html and "agent:main:whatsapp:direct:[phone]" in html
    assert session in text(client_for(granted(lead)).get(LIST))


# --- one delivery ------------------------------------------------------------------


PRIVATE = "제 번호는 010-1234-5678, 메일은 minji@example.com 이에요"


def test_the_body_is_masked_for_a_lead_without_the_permission(
    lead: Any, as_lead: Client
) -> None:
    delivery = stored(text=PRIVATE, senderName="김민지")
    html = as_lead.get(f"{LIST}{delivery.pk}/").content.decode()
    assert "010-1234-5678" not in html and "minji@example.com" not in html
    assert "[phone]" in html and "[email]" in html
    assert "김민지" not in html and "[name]" in html
    assert 'id="masked-note"' in html
    # Pretty-printed: one key per line.
    assert "\n  &quot;event&quot;: &quot;message&quot;," in html

    html = client_for(granted(lead)).get(f"{LIST}{delivery.pk}/").content.decode()
    assert "010-1234-5678" in html and "minji@example.com" in html
    assert "김민지" in html
    assert 'id="masked-note"' not in html


def test_the_list_masks_sessions_for_a_lead_without_the_permission(
    lead: Any, as_lead: Client
) -> None:
    session = session_key(chat="whatsapp", peer="+821012345678")
    stored(session_id=session, channel="whatsapp")
    assert session not in text(as_lead.get(LIST))
    assert session in text(client_for(granted(lead)).get(LIST))


def test_an_admin_sees_the_body_as_written() -> None:
    delivery = stored(text=PRIVATE)
    admin = client_for(create_user(role="admin"))
    assert "010-1234-5678" in admin.get(f"{LIST}{delivery.pk}/").content.decode()


def test_markup_in_a_body_stays_text(lead: Any) -> None:
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    rejected = rejected_for_signature(message_event(text=attack))
    kept = stored(text=attack)
    for who in (client_for(lead), client_for(granted(lead))):
        for delivery in (rejected, kept):
            html = who.get(f"{LIST}{delivery.pk}/").content.decode()
            assert "<script>alert" not in html and "<img src=x" not in html
            assert "&lt;script&gt;alert" in html


def test_a_body_that_is_not_json_is_shown_as_text(as_lead: Client) -> None:
    response = post_webhook(body=b"not json 010-1234-5678 <b>")
    assert response.status_code == 400
    delivery = WebhookDelivery.objects.get()
    html = as_lead.get(f"{LIST}{delivery.pk}/").content.decode()
    assert "not json [phone] &lt;b&gt;" in html


# --- replay ------------------------------------------------------------------------


def _deliveries_counted() -> float:
    return sum(
        REGISTRY.get_sample_value(
            "openclaw_webhook_deliveries_total", {"outcome": outcome}
        )
        or 0.0
        for outcome in ("stored", "duplicate", "ignored", "rejected")
    )


def test_replaying_a_stored_delivery_finds_it_stored(
    lead: Any, as_lead: Client
) -> None:
    original = stored(message_id="once")
    assert original.outcome == "stored"
    assert Message.objects.count() == 1
    counted = _deliveries_counted()
    response = replay(as_lead, original)
    assert _deliveries_counted() == counted  # no webhook came in
    assert response.status_code == 200
    attempt = WebhookDelivery.objects.get(replay_of=original)
    assert attempt.outcome == "duplicate"
    assert attempt.replayed_by == lead
    assert attempt.raw_body == ""  # the original keeps the body
    assert Message.objects.count() == 1
    assert "duplicate" in response.content.decode()


def test_a_rejected_malformed_body_stays_rejected_with_its_reason(
    as_lead: Client,
) -> None:
    payload = message_event()
    del payload["data"]["sessionId"]
    response = post_webhook(payload)
    assert response.status_code == 400
    original = WebhookDelivery.objects.get()
    assert original.outcome == "rejected"
    replay(as_lead, original)
    attempt = WebhookDelivery.objects.get(replay_of=original)
    assert attempt.outcome == "rejected"
    assert attempt.status_code == 400
    assert attempt.error == original.error
    assert "sessionId" in attempt.error
    assert not Message.objects.exists()


def test_a_body_refused_for_its_signature_is_stored_once_on_replay(
    as_admin: Client,
) -> None:
    session = session_key()
    original = rejected_for_signature(
        message_event(session_id=session, message_id="late", text="let me in")
    )
    assert not Message.objects.exists()
    trust(as_admin, original)
    first = WebhookDelivery.objects.get(replay_of=original)
    assert first.outcome == "stored"
    assert first.conversation == Conversation.objects.get(session_id=session)
    assert Message.objects.get().text == "let me in"
    trust(as_admin, original)
    assert list(
        WebhookDelivery.objects.filter(replay_of=original)
        .order_by("pk")
        .values_list("outcome", flat=True)
    ) == ["stored", "duplicate"]
    assert Message.objects.count() == 1


def test_a_selection_is_replayed_each_with_its_outcome(as_admin: Client) -> None:
    kept = stored()
    other = stored()
    forged = rejected_for_signature(message_event(text="forged but fine"))
    cut = rejected_for_signature(message_event(text="x" * 3000))
    assert cut.body_truncated
    response = replay(
        as_admin, kept, other, forged, cut, HX_Request="true", trust_unsigned="yes"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html  # the results region (and the list, out of band)
    outcomes = dict(
        WebhookDelivery.objects.filter(replay_of__isnull=False).values_list(
            "replay_of", "outcome"
        )
    )
    # An unsigned body is never stored from a selection, even by an admin
    # saying she trusts it: that is one body's decision, on its own page.
    assert outcomes == {kept.pk: "duplicate", other.pk: "duplicate"}
    assert "Only the start of its body was kept" in html
    assert "replay it from its own page" in html
    assert Message.objects.count() == 2


def test_replay_without_a_choice_is_refused_with_a_reason(as_lead: Client) -> None:
    response = as_lead.post(REPLAY, {})
    assert response.status_code == 400
    assert "Tick at least one delivery." in response.content.decode()
    # htmx swaps the reason into the results region, in place.
    response = as_lead.post(REPLAY, {}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 400 and "<html" not in html
    assert 'id="replay-problem"' in html and "Tick at least one delivery." in html
    response = as_lead.post(REPLAY, {"delivery": "999999"})
    assert response.status_code == 400


def test_a_purged_body_is_not_replayed(as_lead: Client) -> None:
    original = stored()
    WebhookDelivery.objects.filter(pk=original.pk).update(
        raw_body="", body_purged_at=timezone.now()
    )
    html = replay(as_lead, original).content.decode()
    assert "purged by the retention job" in html
    assert not WebhookDelivery.objects.filter(replay_of=original).exists()
    page = as_lead.get(f"{LIST}{original.pk}/").content.decode()
    assert 'id="replay-refusal"' in page and 'id="replay-one"' not in page


def test_a_body_masked_at_rest_is_not_replayed(as_lead: Client, settings: Any) -> None:
    settings.OPENCLAW_MASK_STORED_BODIES = True
    original = stored(text=PRIVATE)
    original.refresh_from_db()
    assert original.body_masked
    assert "010-1234-5678" not in original.raw_body
    assert "[phone]" in json.loads(original.raw_body)["data"]["text"]
    # The message itself is stored as written: agents work the conversation.
    assert Message.objects.get().text == PRIVATE
    html = replay(as_lead, original).content.decode()
    assert "no longer the original" in html
    assert not WebhookDelivery.objects.filter(replay_of=original).exists()


def test_a_replayed_command_is_never_run_again(as_lead: Client) -> None:
    original = stored()
    WebhookDelivery.objects.filter(pk=original.pk).update(
        outcome="ignored", error="ops command"
    )
    html = replay(as_lead, original).content.decode()
    assert "commands are never run again" in html


def test_a_forged_command_replayed_is_stored_as_a_message_and_runs_nothing(
    as_admin: Client, settings: Any
) -> None:
    from operations.models import ChatCommand

    settings.OPS_COMMAND_SENDERS = ["telegram:777001"]
    admin_chat = "agent:main:telegram:direct:777001"
    signed = stored(session_id=admin_chat, senderId="777001", text="/status")
    assert (signed.outcome, signed.error) == ("ignored", "ops command")
    assert ChatCommand.objects.count() == 1
    forged = rejected_for_signature(
        message_event(session_id=admin_chat, senderId="777001", text="/status")
    )
    trust(as_admin, forged)
    attempt = WebhookDelivery.objects.get(replay_of=forged)
    assert attempt.outcome == "stored"  # a customer message, as from anyone
    assert ChatCommand.objects.count() == 1  # nothing ran
    assert Message.objects.get().text == "/status"
    assert "commands are never run again" in replay(as_admin, signed).content.decode()


def test_the_detail_page_shows_who_replayed_what_and_when(
    lead: Any, as_lead: Client
) -> None:
    original = stored()
    replay(as_lead, original)
    attempt = WebhookDelivery.objects.get(replay_of=original)
    html = as_lead.get(f"{LIST}{original.pk}/").content.decode()
    assert f'id="delivery-{attempt.pk}"' in html
    assert "lena" in html and "duplicate" in html
    listing = as_lead.get(LIST).content.decode()
    assert f"replay of #{original.pk} by lena" in listing
    # A replay row is not replayed itself (no checkbox, a refusal).
    assert f'value="{attempt.pk}"' not in listing
    html = replay(as_lead, attempt).content.decode()
    assert "replay the original" in html


def test_the_replay_url_is_named() -> None:
    assert reverse("inbox:delivery-replay") == REPLAY
    assert reverse("inbox:delivery-list") == LIST
    assert reverse("inbox:delivery-detail", args=[3]) == f"{LIST}3/"


# --- retention ---------------------------------------------------------------------


def test_retention_purges_bodies_and_keeps_the_replay_audit(
    as_lead: Client, settings: Any
) -> None:
    settings.OPENCLAW_DELIVERY_RETENTION_DAYS = 30
    plain = stored()
    replayed = stored()
    replay(as_lead, replayed)
    attempt = WebhookDelivery.objects.get(replay_of=replayed)
    recent = stored()
    long_ago = timezone.now() - timedelta(days=31)
    WebhookDelivery.objects.exclude(pk=recent.pk).update(received_at=long_ago)

    prune_webhook_deliveries.fn()

    assert not WebhookDelivery.objects.filter(pk=plain.pk).exists()
    replayed.refresh_from_db()
    assert replayed.raw_body == "" and replayed.body_purged_at is not None
    attempt.refresh_from_db()
    assert attempt.replay_of == replayed and attempt.outcome == "duplicate"
    recent.refresh_from_db()
    assert recent.raw_body and recent.body_purged_at is None
    assert Message.objects.count() == 3  # messages are not the log's to purge
    html = as_lead.get(f"{LIST}{replayed.pk}/").content.decode()
    assert 'id="body-purged"' in html


@pytest.mark.postgres
def test_search_and_replay_on_postgres(admin: Any, as_admin: Client) -> None:
    original = rejected_for_signature(message_event(text="ünïcödé 환불 부탁"))
    assert rows(as_admin.get(LIST, {"q": "환불"})) == [original.pk]
    trust(as_admin, original)
    trust(as_admin, original)
    assert list(
        WebhookDelivery.objects.filter(replay_of=original)
        .order_by("pk")
        .values_list("outcome", flat=True)
    ) == ["stored", "duplicate"]
    assert Message.objects.count() == 1


# --- unsigned bodies: admins only, the risk confirmed --------------------------


def test_a_lead_may_not_replay_a_body_the_gateway_did_not_sign(
    as_lead: Client,
) -> None:
    forged = rejected_for_signature(message_event(text="trust me"))
    assert forged.is_unsigned
    page = as_lead.get(f"{LIST}{forged.pk}/").content.decode()
    assert 'id="replay-refusal"' in page and 'id="replay-one"' not in page
    assert "only an admin may replay it" in page
    html = replay(as_lead, forged, trust_unsigned="yes", page="detail").content
    assert "only an admin may replay it" in html.decode()
    assert not WebhookDelivery.objects.filter(replay_of=forged).exists()
    assert not Message.objects.exists()


def test_an_admin_replays_an_unsigned_body_only_confirming_the_risk(
    admin: Any, as_admin: Client, caplog: Any
) -> None:
    forged = rejected_for_signature(message_event(text="trust me"))
    page = as_admin.get(f"{LIST}{forged.pk}/").content.decode()
    assert 'id="unsigned-warning"' in page
    assert "not signed by the gateway: storing it trusts its sender" in page
    assert 'name="trust_unsigned" value="yes" id="trust-unsigned" required' in page
    # Without the confirmation: refused, nothing stored, nothing recorded.
    html = replay(as_admin, forged, page="detail").content.decode()
    assert "confirming that you trust its sender" in html
    assert not WebhookDelivery.objects.filter(replay_of=forged).exists()
    with caplog.at_level("WARNING", logger="inbox.webhooks"):
        trust(as_admin, forged)
    attempt = WebhookDelivery.objects.get(replay_of=forged)
    assert (attempt.outcome, attempt.replayed_by) == ("stored", admin)
    assert Message.objects.get().text == "trust me"
    assert f"delivery {forged.pk}: unsigned body replayed by user {admin.pk}" in (
        caplog.text
    )
    # The audit says whose trust stored it.
    page = as_admin.get(f"{LIST}{forged.pk}/").content.decode()
    assert "trusted the unsigned body" in page and "ada" in page


def test_a_signed_delivery_needs_no_confirmation(as_lead: Client) -> None:
    original = stored()
    page = as_lead.get(f"{LIST}{original.pk}/").content.decode()
    assert 'id="replay-one"' in page and 'id="unsigned-warning"' not in page


# --- search without view_personal_data -------------------------------------------


def test_without_the_permission_search_never_reads_bodies(lead: Any) -> None:
    from core.testing import standard_headers

    body = encode(
        message_event(text="mail kim.minsu@example.com or call 010-1234-5678")
    )
    headers = standard_headers(body)
    post_webhook(body=body, headers=headers)
    delivery = WebhookDelivery.objects.get()
    session = delivery.conversation.session_id
    malformed = message_event()
    del malformed["data"]["sessionId"]
    post_webhook(malformed)
    refused = WebhookDelivery.objects.latest("pk")

    masked = client_for(lead)
    for probe in ("kim.minsu", "010-1234-5678", "example.com"):
        assert rows(masked.get(LIST, {"q": probe})) == [], probe
    # What the masked list shows (or names) is still found.
    assert rows(masked.get(LIST, {"q": headers["webhook-id"]})) == [delivery.pk]
    assert rows(masked.get(LIST, {"q": session})) == [delivery.pk]
    assert rows(masked.get(LIST, {"q": "message"})) == [refused.pk, delivery.pk]
    assert rows(masked.get(LIST, {"q": "sessionId"})) == [refused.pk]
    assert "Session, webhook id, event or reason" in masked.get(LIST).content.decode()

    allowed = client_for(granted(lead))
    assert rows(allowed.get(LIST, {"q": "kim.minsu"})) == [delivery.pk]
    assert rows(allowed.get(LIST, {"q": "010-1234-5678"})) == [delivery.pk]


# --- the columns -----------------------------------------------------------------


def cell(html: str, pk: int, name: str) -> str:
    """The text of one column of one list row."""
    row = html.split(f'id="delivery-{pk}"', 1)[1].split("</tr>", 1)[0]
    part = row.split(f'data-label="{name}"', 1)[1].split(">", 1)[1]
    return part.split("</td>", 1)[0]


def test_a_signed_but_malformed_post_names_its_scheme_and_event(
    as_lead: Client,
) -> None:
    payload = message_event()
    del payload["data"]["sessionId"]
    assert post_webhook(payload).status_code == 400
    refused = WebhookDelivery.objects.get()
    assert (refused.signature_scheme, refused.event_type) == (
        "openclaw-hmac",
        "message",
    )
    html = as_lead.get(LIST).content.decode()
    assert cell(html, refused.pk, "Signature") == "X-OpenClaw-Signature"
    assert cell(html, refused.pk, "Event") == "message"


def test_an_unsigned_body_shows_the_event_it_names_and_replays_show_replay(
    as_admin: Client,
) -> None:
    forged = rejected_for_signature(message_event())
    assert forged.event_type == ""  # never read: refused before
    trust(as_admin, forged)
    attempt = WebhookDelivery.objects.get(replay_of=forged)
    kept = stored()
    replay(as_admin, kept)
    again = WebhookDelivery.objects.get(replay_of=kept)
    html = as_admin.get(LIST).content.decode()
    assert 'class="from-body"' in cell(html, forged.pk, "Event")
    assert ">message</span>" in cell(html, forged.pk, "Event")
    assert cell(html, forged.pk, "Signature") == "none / invalid"
    assert cell(html, attempt.pk, "Signature").startswith("replay ")
    assert "of an unsigned body" in cell(html, attempt.pk, "Signature")
    assert cell(html, again.pk, "Signature") == "replay"


def test_a_session_breaks_only_between_its_parts(as_admin: Client) -> None:
    original = stored(session_id="agent:main:telegram:direct:999001")
    html = as_admin.get(LIST).content.decode()
    assert cell(html, original.pk, "Session") == (
        "agent:<wbr>main:<wbr>telegram:<wbr>direct:<wbr>999001"
    )


def test_an_ops_command_is_a_neutral_note_not_an_error(
    as_lead: Client, settings: Any
) -> None:
    settings.OPS_COMMAND_SENDERS = ["telegram:777001"]
    command = stored(
        session_id="agent:main:telegram:direct:777001", senderId="777001", text="/help"
    )
    assert command.error == "ops command"
    html = as_lead.get(LIST).content.decode()
    row = html.split(f'id="delivery-{command.pk}"', 1)[1].split("</tr>", 1)[0]
    assert 'class="reason note"' in row
    assert cell(html, command.pk, "Reason") == "taken as an ops command"


# --- what a replay swaps in ------------------------------------------------------


def test_a_replay_from_its_page_answers_with_the_audit_updated(
    as_lead: Client,
) -> None:
    original = stored()
    response = replay(as_lead, original, page="detail", HX_Request="true")
    html = response.content.decode()
    attempt = WebhookDelivery.objects.get(replay_of=original)
    assert html.lstrip().startswith('<section class="delivery-replay"')
    assert "recorded as #" in html and "duplicate" in html
    assert f'id="delivery-{attempt.pk}"' in html  # the audit row, in the same swap
    assert "Not replayed yet." not in html


def test_a_replay_from_the_list_refreshes_the_list_with_its_filters(
    as_lead: Client,
) -> None:
    kept = stored()
    other = rejected_for_signature(message_event())
    response = replay(
        as_lead,
        kept,
        HX_Request="true",
        HX_Current_URL=f"http://testserver{LIST}?outcome=duplicate",
    )
    html = response.content.decode()
    attempt = WebhookDelivery.objects.get(replay_of=kept)
    oob = html.split('<div id="delivery-list"', 1)[1]
    assert oob.startswith(' class="table-scroll" hx-swap-oob="innerHTML">')
    # The new row, as the page's filter (duplicates) shows the list now.
    assert f'id="delivery-{attempt.pk}"' in oob
    assert f'id="delivery-{kept.pk}"' not in oob
    assert f'id="delivery-{other.pk}"' not in oob
    assert "checked" not in oob
