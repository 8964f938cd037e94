"""Personal data masked: what is caught, what is spared, admin patterns,
hostile input, log lines and who may see it all."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError

from core import masking
from core.masking import MaskingFilter, mask, mask_data, mask_for
from core.models import MaskingPattern
from core.testing import create_user

CAUGHT = [
    # Korean
    ("연락처는 010-1234-5678 입니다", "연락처는 [phone] 입니다"),
    ("01012345678로 연락주세요", "[phone]로 연락주세요"),
    ("010 1234 5678 번호로요", "[phone] 번호로요"),
    ("매장 02-123-4567", "매장 [phone]"),
    ("경기 031-123-4567", "경기 [phone]"),
    ("+82 10-1234-5678 로 부탁", "[phone] 로 부탁"),
    ("+82-10-1234-5678", "[phone]"),
    ("메일 김민지 minji.kim@example.co.kr 로", "메일 김민지 [email] 로"),
    ("주민번호 900101-1234567 입니다", "주민번호 [rrn] 입니다"),
    ("주민번호 0502144123456", "주민번호 [rrn]"),
    ("카드 4111 1111 1111 1111 결제", "카드 [card] 결제"),
    # English
    ("Call me on +14155550123 please", "Call me on [phone] please"),
    ("Office: +44 20 7946 0958.", "Office: [phone]."),
    ("Write to jane.doe+shop@mail.example.com!", "Write to [email]!"),
    ("My card is 4111-1111-1111-1111, exp 12/28", "My card is [card], exp 12/28"),
    ("Amex 3782 822463 10005 thanks", "Amex [card] thanks"),
    ("order 2 then 5555555555554444", "order 2 then [card]"),
]

SPARED = [
    "order #20241205-0042 is on its way",
    "Your order ORD-1234567 shipped",
    "주문번호 20241205-0042 배송 중",
    "Delivery on 2026-12-05 or 2026.12.05 or 12/05/2026",
    "at 14:30:00, 오후 2시 30분",
    "Total ₩1,250,000 or $1,299.00",
    "tracking 9400111899223100012345 and 1Z999AA10123456784",
    "a tracking number 4111 1111 1111 1112 failing Luhn",
    "running v2.10.1 (build 1.2.3.4567)",
    "ip 192.168.0.1",
    "고객센터 1588-1234",
    "not a date 901301-1234567",
]


@pytest.mark.parametrize(("text", "expected"), CAUGHT)
@pytest.mark.django_db
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize("text", SPARED)
@pytest.mark.django_db
def test_numbers_that_are_not_personal_data_are_spared(text: str) -> None:
    assert mask(text) == text


@pytest.mark.django_db
def test_cards_are_masked_only_when_the_luhn_check_passes() -> None:
    assert masking.luhn("4111111111111111")
    assert not masking.luhn("4111111111111112")
    assert mask("4012888888881881") == "[card]"
    assert mask("4012888888881882") == "4012888888881882"


@pytest.mark.django_db
def test_resident_numbers_need_a_real_date_and_a_gender_digit() -> None:
    assert mask("800229-2345678") == "[rrn]"  # 1980 was a leap year
    assert mask("810229-1345678") == "810229-1345678"  # 1981 was not
    assert mask("800230-2345678") == "800230-2345678"  # no 30 February
    assert mask("010229-3345678") == "010229-3345678"  # 2001: no 29 February
    assert mask("000229-3345678") == "[rrn]"  # 2000 was a leap year
    assert mask("900101-5234567") == "900101-5234567"  # 5: not 1–4
    assert mask("900101-1234567") == "[rrn]"


@pytest.mark.django_db
def test_an_admin_pattern_takes_effect_when_added_and_stops_when_removed() -> None:
    text = "member code MBR-20991 asked"
    assert mask(text) == text
    pattern = MaskingPattern.objects.create(
        name="member codes", pattern=r"MBR-[0-9]{5}", label="member"
    )
    assert mask(text) == "member code [member] asked"
    pattern.is_active = False
    pattern.save()
    assert mask(text) == text
    pattern.is_active = True
    pattern.save()
    assert mask(text) == "member code [member] asked"
    pattern.delete()
    assert mask(text) == text


@pytest.mark.django_db
def test_admin_patterns_are_not_read_per_text(
    django_assert_num_queries: object,
) -> None:
    MaskingPattern.objects.create(name="codes", pattern=r"MBR-[0-9]+")
    assert mask("MBR-1") == "[masked]"
    with django_assert_num_queries(0):  # type: ignore[operator]
        for number in range(50):
            assert mask(f"MBR-{number} ok") == "[masked] ok"


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", "RE2 cannot use this pattern"),
        (r"foo(?=bar)", "RE2 cannot use this pattern"),
        (r"(unclosed", "missing )"),
        (r"x*", "matches an empty text"),
        ("a" * 501, "at most 500 characters"),
    ],
)
@pytest.mark.django_db
def test_an_invalid_admin_pattern_is_refused_with_its_reason(
    pattern: str, reason: str
) -> None:
    row = MaskingPattern(name="bad", pattern=pattern)
    with pytest.raises(ValidationError) as raised:
        row.full_clean()
    assert reason in " ".join(raised.value.message_dict["pattern"])


@pytest.mark.django_db
def test_the_admin_refuses_an_invalid_pattern() -> None:
    from django.test import Client

    client = Client()
    client.force_login(create_user(role="admin"))
    response = client.post(
        "/admin/core/maskingpattern/add/",
        {"name": "bad", "pattern": r"(a)\1", "label": "masked", "is_active": "on"},
    )
    assert response.status_code == 200
    assert "RE2 cannot use this pattern" in response.content.decode()
    assert not MaskingPattern.objects.exists()


@pytest.mark.parametrize(
    "hostile",
    [
        "1 " * 500_000,
        "1" * 1_000_000,
        "a@" * 500_000,
        "010-1234-5678 " * 70_000,
        "+1-" * 330_000,
        ("x" * 999) + "\n",
    ],
)
@pytest.mark.django_db
def test_a_megabyte_of_hostile_text_is_masked_in_bounded_time(hostile: str) -> None:
    hostile = (hostile * (1_000_000 // len(hostile) + 1))[:1_000_000]
    masked = mask(hostile)
    assert "1234-5678" not in masked


@pytest.mark.django_db
def test_text_beyond_the_cap_is_replaced_not_shown() -> None:
    text = "x" * masking.MAX_MASK_CHARS + " 010-1234-5678"
    assert mask(text).endswith(masking.TRUNCATED)


@pytest.mark.django_db
def test_chunks_do_not_cut_a_number_in_two() -> None:
    text = ("word " * 13_106) + "010-1234-5678 " + ("word " * 20_000)
    assert len(text) > masking.MASK_CHUNK_CHARS
    masked = mask(text)
    assert "[phone]" in masked and "5678" not in masked


@pytest.mark.django_db
def test_json_like_data_is_masked_everywhere() -> None:
    data = {
        "event": "message",
        "data": {
            "text": "제 번호 010-1234-5678",
            "senderName": "kim@example.com",
            "n": 4111111111111111,
            "list": ["ok", {"deep": "+14155550123"}],
            "kim@example.com": True,
        },
    }
    masked = mask_data(data)
    assert masked == {
        "event": "message",
        "data": {
            "text": "제 번호 [phone]",
            "senderName": "[email]",
            "n": 4111111111111111,  # numbers are numbers: masked as text only
            "list": ["ok", {"deep": "[phone]"}],
            "[email]": True,
        },
    }
    assert data["data"]["text"] == "제 번호 010-1234-5678"  # a copy


@pytest.mark.django_db
def test_names_are_masked_by_key_when_asked() -> None:
    data = {"data": {"senderName": "김민지", "channelInfo": {"username": "minji_k"}}}
    assert mask_data(data) == data  # a name has no pattern
    assert mask_data(data, name_keys=masking.NAME_KEYS) == {
        "data": {"senderName": "[name]", "channelInfo": {"username": "[name]"}}
    }
    assert mask_data({"senderName": ""}, name_keys=masking.NAME_KEYS) == {
        "senderName": ""
    }


@pytest.mark.django_db
def test_the_logging_filter_masks_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(MaskingFilter())
    logger = logging.getLogger("openclaw.test")
    with caplog.at_level(logging.INFO, logger="openclaw.test"):
        logger.info("customer %s wrote from %s", "kim@example.com", "010-1234-5678")
        try:
            raise ValueError("card 4111 1111 1111 1111")
        except ValueError:
            logger.exception("failed for +82 10-1234-5678")
    assert caplog.messages[0] == "customer [email] wrote from [phone]"
    assert caplog.messages[1] == "failed for [phone]"
    assert "4111" not in caplog.text and "[card]" in caplog.text


def test_every_configured_log_handler_masks() -> None:
    handlers = settings.LOGGING["handlers"]
    assert handlers
    for handler in handlers.values():
        assert "mask_personal_data" in handler["filters"]
    root = logging.getLogger()
    configured = [h for h in root.handlers if h.get_name() == "console"]
    assert configured
    assert any(isinstance(f, MaskingFilter) for f in configured[0].filters)


@pytest.mark.django_db
def test_only_users_granted_the_permission_see_personal_data() -> None:
    text = "call 010-1234-5678"
    agent = create_user(role="agent")
    lead = create_user(role="lead")
    admin = create_user(role="admin")
    assert not masking.may_see_personal_data(agent)
    assert not masking.may_see_personal_data(lead)  # leads too: only if granted
    assert masking.may_see_personal_data(admin)
    assert mask_for(agent, text) == "call [phone]"
    assert mask_for(admin, text) == text

    permission = Permission.objects.get(
        codename="view_personal_data", content_type__app_label="core"
    )
    Group.objects.get(name="lead").permissions.add(permission)
    lead = type(lead).objects.get(pk=lead.pk)  # permissions are cached per object
    assert masking.may_see_personal_data(lead)
    assert mask_for(lead, text) == text
    assert not masking.may_see_personal_data(None)


@pytest.mark.django_db(transaction=True)
def test_the_logging_filter_never_queries_the_database(
    django_assert_num_queries: Any,
) -> None:
    # Any thread logs; one that opens a connection and never closes it keeps
    # it out of the pool. Admin patterns reach the filter through the cache.
    MaskingPattern.objects.create(name="orders", pattern=r"SECRET-\d+", label="code")
    record = logging.LogRecord(
        "t", logging.INFO, "", 0, "SECRET-42 %s", ("a@b.io",), None
    )
    with django_assert_num_queries(0):
        MaskingFilter().filter(record)
    assert record.getMessage() == "[code] [email]"
