from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog

from core import views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="inbox:conversation-list"), name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("profile/", views.profile, name="profile"),
    # gettext() for page scripts, in the request's language (static/*/…js).
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # One login page for everyone (the admin's would be a second door).
    path(
        "admin/login/",
        RedirectView.as_view(pattern_name="login", query_string=True),
        name="admin-login",
    ),
    path("admin/", admin.site.urls),
    path("automations/", include("automations.urls")),
    path("reports/", include("reports.urls")),
    path("monitors/", include("monitors.urls")),
    # /system/ (operations) and /system/deliveries/ (inbox: the webhook log).
    path("system/", include("operations.urls")),
    path("", include("inbox.urls")),
]

# JSON for API clients, the usual pages for people (core/views.py).
handler404 = "core.views.not_found"
handler500 = "core.views.server_error"
