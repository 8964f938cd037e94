"""The monitors' section of the daily digest (``reports.digest``)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.utils import timezone

from monitors.models import Alert


def alerts_of(day: date) -> list[str]:
    """One line per alert raised on ``day`` (the site's time zone), oldest first."""
    start = timezone.make_aware(datetime.combine(day, time.min))
    alerts = Alert.objects.filter(
        created_at__gte=start, created_at__lt=start + timedelta(days=1)
    ).order_by("created_at", "pk")
    return [alert.text for alert in alerts]


def section(sender: Any, day: date, **kwargs: Any) -> tuple[str, list[str]] | None:
    """Receiver of ``collect_sections``: the day's alerts, or nothing."""
    lines = alerts_of(day)
    # English, as the rest of the digest: it leaves for a chat group.
    return ("Website monitors", lines) if lines else None
