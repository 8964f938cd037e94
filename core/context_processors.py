"""What every page's navigation needs to know about the signed-in user."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from core.roles import Role, role_of


def navigation(request: HttpRequest) -> dict[str, Any]:
    """``is_lead`` / ``is_admin`` for the links only leads and admins may follow
    (the views refuse anyway; role_of caches on the user, one query at most)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    role = role_of(user)
    return {"is_lead": role >= Role.LEAD, "is_admin": role >= Role.ADMIN}
