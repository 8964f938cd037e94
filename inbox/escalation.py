"""The default escalator: the seed's rule that hands an upset customer to a human.

Negative sentiment or a refund/help intent in an inbound message escalates a
conversation the bot is handling. The word lists live here, in one place, so
the automations app can turn them into editable built-in triggers.

Matching is plain substring search on a capped, case-folded copy of the text:
linear in the text, no regular expression a customer could slow down.
"""

from __future__ import annotations

# Korean words are matched as substrings: particles and endings attach to
# them ("환불해주세요", "최악이에요").
NEGATIVE_WORDS = {
    "ko": ["불만", "화나", "화가", "최악", "실망", "짜증", "환불", "고소", "신고"],
    "en": [
        "angry", "furious", "terrible", "worst", "awful", "disappointed",
        "unacceptable", "ridiculous", "scam", "complaint", "lawyer",
    ],
}  # fmt: skip
INTENT_WORDS = {
    "refund": ["환불", "refund", "money back", "chargeback"],
    "help": ["상담원", "사람이랑", "도와주세요", "human agent", "real person",
             "speak to someone", "talk to a human", "help me"],
}  # fmt: skip
SCAN_CHARS = 2_000


def reason_to_escalate(text: str) -> str:
    """Why ``text`` should reach a human ("negative sentiment: 최악"), or ``""``."""
    folded = text[:SCAN_CHARS].casefold()
    for words in NEGATIVE_WORDS.values():
        for word in words:
            if word in folded:
                return f"negative sentiment: {word}"
    for intent, words in INTENT_WORDS.items():
        for word in words:
            if word in folded:
                return f"{intent} intent: {word}"
    return ""
