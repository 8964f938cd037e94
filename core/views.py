from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from core import metrics
from core.forms import ProfileForm
from core.models import Profile
from core.roles import role_of

log = logging.getLogger(__name__)

# The session key holding a token just made, until the page shows it once.
NEW_TOKEN = "profile_new_token"


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database (and Redis in production) answer; else 503, naming it."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        checks["database"] = f"down: {type(exc).__name__}"
    if settings.REDIS_URL:
        import redis

        try:
            client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1
            )
            client.ping()
            client.close()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = f"down: {type(exc).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404``: JSON under /api/ (what API clients parse), else the page."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {
                "status": "error",
                "error": {"field": "path", "reason": "no such resource"},
            },
            status=404,
        )
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: JSON under /api/, else the page."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"status": "error", "error": {"field": "", "reason": "server error"}},
            status=500,
        )
    return defaults.server_error(request)


@require_GET
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics: for ``Bearer <METRICS_TOKEN>``, or all if METRICS_PUBLIC."""
    import hmac

    from django.conf import settings
    from prometheus_client import CONTENT_TYPE_LATEST

    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), token.encode()):
            response = HttpResponse("metrics need the bearer token", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif not settings.METRICS_PUBLIC:
        return HttpResponse(
            "metrics are closed: set METRICS_TOKEN and scrape with it "
            "(or METRICS_PUBLIC=true if only Prometheus can reach this port)",
            status=403,
        )
    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)


@never_cache  # the answer may hold a new token's key
@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    """The agent's own page: their language and time zone, and their API token,
    made and revoked by themselves.

    A new token is shown once: the POST that makes it keeps the key in the
    session and redirects (a reload makes no other token), and the page pops it
    on display; after that only when it was made. DRF's TokenAuthentication
    reads it.
    """
    from rest_framework.authtoken.models import Token

    user = request.user
    assert user.is_authenticated  # login_required
    shown = request.session.pop(NEW_TOKEN, "") if request.method == "GET" else ""
    saved = False
    status = 200
    profile = Profile.objects.filter(user=user).first() or Profile(user=user)
    form = ProfileForm(instance=profile)
    action = request.POST.get("action") if request.method == "POST" else None
    if request.method == "POST" and action not in ("create", "revoke", "preferences"):
        return HttpResponse(
            _("action must be create, revoke or preferences"), status=400
        )
    if action == "preferences":
        form = ProfileForm(request.POST, instance=profile)
        if form.is_valid():
            profile = form.save()
            saved = True
            # This answer already speaks the new language, in the new zone.
            translation.activate(
                profile.language or translation.get_language_from_request(request)
            )
            request.LANGUAGE_CODE = translation.get_language()
            timezone.activate(profile.time_zone or settings.TIME_ZONE)
            log.info("user %s saved their preferences", user.pk)
        else:
            status = 400
    elif action in ("create", "revoke"):
        with transaction.atomic():
            Token.objects.filter(user=user).delete()
            if action == "create":
                request.session[NEW_TOKEN] = Token.objects.create(user=user).key
            else:
                request.session.pop(NEW_TOKEN, None)
        log.info("user %s %sd their API token", user.pk, action)
        return redirect(f"{reverse('profile')}#api-token")
    token = Token.objects.filter(user=user).first()
    return render(
        request,
        "profile.html",
        {
            "token": token,
            "shown": shown,
            "role": role_of(user).label,
            "role_name": role_of(user).verbose,
            "form": form,
            "saved": saved,
            "now": timezone.now(),
        },
        status=status,
    )
