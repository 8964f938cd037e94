"""Who may do what: agent, lead, admin.

Roles are Django groups ("agent", "lead"; created by a migration) plus the
superuser flag for admins. Views check them with ``role_required`` and models
with ``role_of``: the templates only hide what the server refuses anyway.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission

AGENT_GROUP = "agent"
LEAD_GROUP = "lead"


class Role(enum.IntEnum):
    NONE = 0
    AGENT = 1
    LEAD = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The role's name in code and markup (``data-role``): never translated."""
        return self.name.lower()

    @property
    def verbose(self) -> str:
        """The role's name for people, in the active language."""
        return str(ROLE_NAMES[self])


ROLE_NAMES = {
    Role.NONE: _("none"),
    Role.AGENT: _("agent"),
    Role.LEAD: _("lead"),
    Role.ADMIN: _("admin"),
}


def role_of(user: Any) -> Role:
    """The highest role of ``user``; cached on the user object for the request."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Role.NONE
    cached = getattr(user, "_inbox_role", None)
    if cached is not None:
        return cached
    if user.is_superuser:
        role = Role.ADMIN
    else:
        groups = set(user.groups.values_list("name", flat=True))
        if LEAD_GROUP in groups:
            role = Role.LEAD
        elif AGENT_GROUP in groups or user.is_staff:
            # Staff accounts made before roles existed work as agents.
            role = Role.AGENT
        else:
            role = Role.NONE
    user._inbox_role = role
    return role


def role_required(
    minimum: Role,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Refuse the view (403) to users below ``minimum``; log in first if anonymous."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                from django.contrib.auth.views import redirect_to_login

                return redirect_to_login(request.get_full_path())
            if role_of(request.user) < minimum:
                return refuse(request, minimum)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def refuse(request: HttpRequest, minimum: Role) -> HttpResponse:
    """403: a page with the navigation for a page load, the bare reason for
    htmx and form posts (shown in place by the page that asked)."""
    reason = needs_role(minimum)
    if request.method == "GET" and not request.headers.get("HX-Request"):
        return render(request, "403.html", {"reason": reason}, status=403)
    return HttpResponseForbidden(reason, content_type="text/plain")


def needs_role(minimum: Role) -> str:
    """The refusal of a user below ``minimum``, in the active language."""
    return _("This needs the %(role)s role.") % {"role": minimum.verbose}


class HasAgentRole(BasePermission):
    """The API's rule, the pages' rule: an agent, a lead or an admin.

    Checked for every API view and the schema (``REST_FRAMEWORK``'s default):
    a signed-in account, or a token, of a user without a role reads nothing.
    """

    message = _("This needs the agent role.")

    def has_permission(self, request: Any, view: Any) -> bool:
        return role_of(request.user) >= Role.AGENT


def staff_users() -> Any:
    """Everyone who can own a conversation: agents, leads and admins."""
    from django.contrib.auth import get_user_model
    from django.db.models import Q

    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(
            Q(is_staff=True)
            | Q(is_superuser=True)
            | Q(groups__name__in=[AGENT_GROUP, LEAD_GROUP])
        )
        .distinct()
        .order_by("username")
    )
