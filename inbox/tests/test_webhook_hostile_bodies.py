"""Bodies the JSON parser takes but the database or the renderer cannot: never a
500, always a JSON answer, nothing stored half (and the same on PostgreSQL,
whose text and jsonb refuse more than SQLite does)."""

import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.testing import message_event, post_webhook, session_key
from inbox.models import Conversation, Message, WebhookDelivery

pytestmark = pytest.mark.django_db


def answer(response) -> dict:  # noqa: ANN001
    assert response.status_code < 500, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    return response.json()


def test_nan_and_infinity_are_400_naming_them() -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = (
            '{"event": "message", "data": {"sessionId": "agent:main:x:direct:1", '
            f'"messageId": "m", "text": "hi", "tokensUsed": {literal}}}}}'
        ).encode()
        response = post_webhook(body=body)
        assert response.status_code == 400
        assert literal in answer(response)["error"]["reason"]
    assert Message.objects.count() == 0


def test_a_lone_surrogate_is_400_naming_the_field() -> None:
    body = json.dumps(message_event(text="a\ud800b")).encode()  # escaped: valid JSON
    response = post_webhook(body=body)
    assert response.status_code == 400
    error = answer(response)["error"]
    assert error["field"] == "data.text"
    assert "surrogate" in error["reason"]
    assert Message.objects.count() == 0


def test_a_surrogate_in_a_nested_key_is_named_too() -> None:
    event = message_event()
    event["data"]["channelInfo"] = {"x\udfff": 1}
    response = post_webhook(body=json.dumps(event).encode())
    assert response.status_code == 400
    assert answer(response)["error"]["field"].startswith("data.channelInfo")


def test_nul_is_stored_as_the_replacement_character_and_the_log_keeps_it() -> None:
    event = message_event(text="before\x00after")
    event["data"]["channelInfo"] = {"displayName": "na\x00me"}
    response = post_webhook(body=json.dumps(event).encode())
    assert answer(response)["status"] == "stored"
    message = Message.objects.get()
    assert message.text == "before\ufffdafter"
    assert message.conversation.metadata == {"displayName": "na\ufffdme"}
    assert "\\u0000" in WebhookDelivery.objects.get(outcome="stored").raw_body


def test_deep_nesting_is_400_at_any_depth() -> None:
    for depth in (40, 5_000, 200_000):
        event = message_event()
        body = json.dumps(event).encode()[:-1] + (
            b', "extra": ' + b"[" * depth + b"]" * depth + b"}"
        )
        response = post_webhook(body=body)
        assert response.status_code == 400, depth
        assert "nested deeper" in answer(response)["error"]["reason"]
    assert Message.objects.count() == 0


def test_a_compressed_body_is_415_naming_the_encoding() -> None:
    body = gzip.compress(json.dumps(message_event()).encode())
    response = post_webhook(body=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 415
    error = answer(response)["error"]
    assert error["field"] == "Content-Encoding" and "gzip" in error["reason"]
    assert Message.objects.count() == 0


def test_a_raw_nul_byte_is_refused_and_logged_without_it() -> None:
    response = post_webhook(body=b'{"event": "message", "data": {"text": "a\x00"}}')
    assert response.status_code == 400
    assert "\x00" not in WebhookDelivery.objects.get().raw_body


# -- generated -----------------------------------------------------------------------

# Every Unicode category, surrogates included, with the troublemakers often.
TEXT = st.text(
    st.characters(codec=None, exclude_categories=())
    | st.sampled_from(["\x00", "\ud800", "\udfff", "\u2028", "\ufeff"]),
    max_size=40,
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    [
        "text", "senderName", "senderId", "messageId", "channel", "sessionId",
        "channelInfo", "attachments", "timestamp", "tokensUsed", "escalate",
        "direction", "aiModel", "mediaUrl", "status", "error",
    ]
)  # fmt: skip


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    event=st.sampled_from(
        ["message", "message", "message", "media", "status", "error", "x"]
    ),
    text=TEXT.filter(str.strip),
    channel_info=st.dictionaries(TEXT, JSON_VALUES, max_size=4),
    changes=st.dictionaries(FIELDS, JSON_VALUES, max_size=2),
    escaped=st.booleans(),
)
def test_any_generated_body_gets_a_json_answer_and_is_stored_whole_or_not_at_all(
    event: str, text: str, channel_info: dict, changes: dict, escaped: bool
) -> None:
    """Mostly well-formed events carrying generated text and channel info (so
    most reach the database), some with odd values in any field."""
    key = session_key()
    payload = message_event(session_id=key, text=text)
    payload["event"] = event
    payload["data"]["channelInfo"] = channel_info
    payload["data"].update(changes)
    # Escaped, a lone surrogate is valid JSON; raw, it is not UTF-8.
    body = json.dumps(payload, ensure_ascii=escaped, allow_nan=True).encode(
        "utf-8", "surrogatepass"
    )
    response = post_webhook(body=body)
    result = answer(response)
    stored = Conversation.objects.filter(session_id=str(payload["data"]["sessionId"]))
    if response.status_code >= 400:
        assert "error" in result
        assert not Message.objects.filter(conversation__in=stored).exists()
