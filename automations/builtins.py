# ruff: noqa: E501 - a table of data: its long lines read better unwrapped.
"""The triggers every installation starts with (the seed's hard-coded rules).

A data migration installs them; they are edited and disabled like any other.
``install`` takes the model classes so the migration can pass its historical
ones and tests the real ones (a transactional test empties the tables).
"""

from __future__ import annotations

from typing import Any

# A plain list of names, safe to use from a migration.
from automations.models import VERSIONED_FIELDS

NEGATIVE_KO = ["불만", "화나", "화가", "최악", "실망", "짜증", "고소", "신고"]
NEGATIVE_EN = [
    "angry", "furious", "terrible", "worst", "awful", "disappointed",
    "unacceptable", "ridiculous", "scam", "complaint", "lawyer",
]  # fmt: skip
WANTS_HUMAN = ["상담원", "사람이랑", r"human agent", r"real person", r"talk to a human"]

BUILTINS: list[dict[str, Any]] = [
    # Intent tagging first: it never stops the others.
    {
        "name": "Intent: question",
        "patterns": [r"\?", r"어떻게|언제|어디|뭐|무엇|왜", r"\b(how|when|where|what|why)\b"],
        "priority": 10,
        "states": [],
        "actions": [{"type": "run_task", "task": "tag_conversation", "args": {"tag": "question"}}],
    },
    {
        "name": "Intent: order",
        "patterns": [r"주문|배송|택배", r"\b(order|shipping|delivery|tracking)\b"],
        "priority": 11,
        "states": [],
        "actions": [{"type": "run_task", "task": "tag_conversation", "args": {"tag": "order"}}],
    },
    {
        "name": "Intent: refund",
        "patterns": [r"환불|반품", r"\b(refund|money back|chargeback)\b"],
        "priority": 12,
        "states": [],
        "actions": [{"type": "run_task", "task": "tag_conversation", "args": {"tag": "refund"}}],
    },
    {
        "name": "Intent: help",
        "patterns": [r"도와|도움|상담", r"\b(help|support)\b"],
        "priority": 13,
        "states": [],
        "actions": [{"type": "run_task", "task": "tag_conversation", "args": {"tag": "help"}}],
    },
    # An upset customer, or one asking for a person, goes to the queue and
    # gets no canned answer.
    {
        "name": "Negative sentiment → human",
        "description": "The seed's escalation rule: Korean and English words of anger "
        "or disappointment, or asking for a person.",
        "patterns": [
            "|".join(NEGATIVE_KO),
            r"\b(" + "|".join(NEGATIVE_EN) + r")\b",
            "|".join(WANTS_HUMAN),
        ],
        "priority": 20,
        "states": ["bot"],
        "stop_after_match": True,
        "actions": [{"type": "escalate"}],
    },
    # FAQ answers while the bot has the conversation; once per 10 minutes.
    {
        "name": "FAQ: shipping (배송)",
        "patterns": [r"배송|택배", r"\b(shipping|delivery)\b"],
        "priority": 30,
        "states": ["bot"],
        "stop_after_match": True,
        "cooldown_seconds": 600,
        "actions": [
            {
                "type": "reply",
                "text": "배송은 보통 결제 후 2~3일(영업일) 걸립니다. 주문번호를 알려주시면 "
                "바로 확인해 드릴게요. / Delivery usually takes 2–3 business days.",
            }
        ],
    },
    {
        "name": "FAQ: refund (환불)",
        "patterns": [r"환불", r"\brefund\b"],
        "priority": 31,
        "states": ["bot"],
        "stop_after_match": True,
        "cooldown_seconds": 600,
        "actions": [
            {
                "type": "reply",
                "text": "환불은 요청 후 3~5영업일 안에 결제하신 수단으로 처리됩니다. "
                "/ Refunds reach your original payment method within 3–5 business days.",
            }
        ],
    },
    {
        "name": "FAQ: payment (결제)",
        "patterns": [r"결제", r"\b(payment|charged|card)\b"],
        "priority": 32,
        "states": ["bot"],
        "stop_after_match": True,
        "cooldown_seconds": 600,
        "actions": [
            {
                "type": "reply",
                "text": "결제 내역을 확인해 드릴게요. 결제 일시와 금액을 알려주세요. "
                "/ Tell us the date and amount and we will check the payment.",
            }
        ],
    },
]  # fmt: skip


def install(trigger_model: Any, version_model: Any) -> int:
    """Create the built-in triggers that are missing (by name); return how many."""
    created = 0
    for definition in BUILTINS:
        fields = {
            "description": "",
            "stop_after_match": False,
            "cooldown_seconds": 0,
            **definition,
        }
        trigger, was_created = trigger_model.objects.get_or_create(
            name=fields.pop("name"), is_builtin=True, defaults=fields
        )
        if was_created:
            created += 1
            version_model.objects.create(
                trigger=trigger,
                number=1,
                snapshot={name: getattr(trigger, name) for name in VERSIONED_FIELDS},
                changed_fields=["created"],
            )
    return created
