"""The app's URLs plus the baselines' views."""

from django.urls import path

from bench.seed import views
from core.urls import urlpatterns as app_urlpatterns

urlpatterns = [
    path("bench/seed-webhook/", views.seed_webhook, name="bench-seed-webhook"),
    path("bench/floor/", views.floor, name="bench-floor"),
    path("bench/reply-floor/", views.reply_floor, name="bench-reply-floor"),
    *app_urlpatterns,
]
