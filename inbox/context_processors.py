"""What every staff page's navigation shows about the inbox."""

from __future__ import annotations

import functools
from typing import Any

from django.http import HttpRequest


def bell(request: HttpRequest) -> dict[str, Any]:
    """The bell's unread count and the escalation count, for signed-in users.

    Counted only when a template shows it (the full page's navigation), not
    for every htmx fragment rendered with this request.
    """
    from inbox.models import Notification

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    @functools.cache
    def count() -> int:
        return Notification.objects.unread().filter(user=user).count()

    @functools.cache
    def escalations() -> int:
        # The inbox pages pass their own (and keep it live); the rest show this.
        from inbox.live import escalation_count

        return escalation_count()

    return {"bell_count": count, "escalations": escalations}
