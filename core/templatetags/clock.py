"""One date and time format everywhere: ``{{ dt|stamp }}``.

"Dec 5, 07:57" in English, "12월 5일 07:57" in Korean, with the year when it
is not this year, in the active time zone (the agent's). static/core/clock.js
writes the same text in the browser for ``<time datetime="…" data-stamp>``:
live fragments are rendered once for every agent, so the browser puts them
in each agent's zone. Change one, change the other (core/tests/test_clock.py).
"""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone, translation

register = template.Library()

MONTHS_EN = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def format_stamp(value: datetime, language: str, now: datetime) -> str:
    """``value`` as the stamp reads in ``language``; both already in one zone."""
    clock = f"{value.hour:02d}:{value.minute:02d}"
    this_year = value.year == now.year
    if language.split("-")[0] == "ko":
        day = f"{value.month}월 {value.day}일"
        return f"{day} {clock}" if this_year else f"{value.year}년 {day} {clock}"
    day = f"{MONTHS_EN[value.month - 1]} {value.day}"
    return f"{day}, {clock}" if this_year else f"{day}, {value.year}, {clock}"


@register.filter(expects_localtime=False)
def stamp(value: datetime | None) -> str:
    """``value`` in the active time zone and language; "" for no time."""
    if not isinstance(value, datetime):
        return ""
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return format_stamp(
        timezone.localtime(value),
        translation.get_language() or "en",
        timezone.localtime(timezone.now()),
    )
