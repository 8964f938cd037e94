"""``manage.py rollup_reports --from YYYY-MM-DD --to YYYY-MM-DD``: recompute
the reports' daily rollup for a range of local days (after an import, a
change of TIME_ZONE or of the bucket edges). Idempotent; prints each day."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reports import rollup

MAX_DAYS = 3660


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date: write YYYY-MM-DD") from None


class Command(BaseCommand):
    help = "Recompute the reports' daily rollup for a range of local days."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="first", required=True, type=_day)
        parser.add_argument(
            "--to", dest="last", type=_day, help="last day, inclusive (default: today)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        first: date = options["first"]
        last: date = options["last"] or rollup.local_today()
        if last < first:
            raise CommandError("--to is before --from")
        days = (last - first).days + 1
        if days > MAX_DAYS:
            raise CommandError(f"{days} days: at most {MAX_DAYS} at a time")
        began = time.perf_counter()
        for i in range(days):
            day = first + timedelta(days=i)
            marker = rollup.store_day(day)
            self.stdout.write(
                f"[{i + 1}/{days}] {day.isoformat()} in {marker.duration_ms:.0f} ms"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"{days} days rolled up in {time.perf_counter() - began:.1f} s"
            )
        )
