"""Each agent's language and time zone, for the whole request.

LocaleMiddleware has already picked the browser's language (Accept-Language);
an agent who chose one in their profile gets theirs instead. The time zone is
the agent's, or the team's ``TIME_ZONE``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation

from core.models import Profile


class AgentPreferencesMiddleware:
    """After AuthenticationMiddleware. Sync only, as the whole chain is (WhiteNoise)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            prefs = Profile.preferences_of(user.pk)
            if prefs.language:
                translation.activate(prefs.language)
                request.LANGUAGE_CODE = prefs.language
            if prefs.time_zone:
                timezone.activate(prefs.time_zone)
        try:
            return self.get_response(request)
        finally:
            # Threads serve many requests: the next one starts in the team's zone.
            timezone.deactivate()
