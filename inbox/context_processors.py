"""What every staff page's navigation shows about the inbox."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def bell(request: HttpRequest) -> dict[str, Any]:
    """The bell's unread count, for signed-in users (one indexed count)."""
    from inbox.models import Notification

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"bell_count": Notification.objects.unread().filter(user=user).count()}
