"""One date and time format: the stamp filter (clock.js writes the same)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.template import Context, Template
from django.utils import timezone, translation

from core.templatetags.clock import format_stamp, stamp

UTC = dt.UTC


def _render(value: dt.datetime, *, zone: str, language: str) -> str:
    with timezone.override(zone), translation.override(language):
        return Template("{% load clock %}{{ value|stamp }}").render(
            Context({"value": value})
        )


@pytest.mark.parametrize(
    ("language", "shown"), [("ko", "12월 5일 09:00"), ("en", "Dec 5, 09:00")]
)
def test_a_time_is_shown_in_the_active_zone_and_language(
    language: str, shown: str
) -> None:
    year = timezone.now().year
    value = dt.datetime(year, 12, 5, 0, 0, tzinfo=UTC)
    assert _render(value, zone="Asia/Seoul", language=language) == shown


def test_another_year_is_named() -> None:
    value = dt.datetime(2025, 1, 3, 23, 7, tzinfo=UTC)
    now = dt.datetime(2026, 12, 5, 0, 0, tzinfo=UTC)
    assert format_stamp(value, "en", now) == "Jan 3, 2025, 23:07"
    assert format_stamp(value, "ko", now) == "2025년 1월 3일 23:07"
    assert format_stamp(value.replace(year=2026), "ko-kr", now) == "1월 3일 23:07"


def test_the_year_is_the_agents_not_the_servers() -> None:
    # 31 Dec 20:00 UTC is already next year in Seoul.
    year = timezone.now().year
    value = dt.datetime(year - 1, 12, 31, 20, 0, tzinfo=UTC)
    assert _render(value, zone="Asia/Seoul", language="en") == "Jan 1, 05:00"


def test_no_time_is_no_text() -> None:
    assert stamp(None) == ""
