"""The app's URLs plus the two ingest baselines."""

from django.urls import path

from bench.seed import views
from core.urls import urlpatterns as app_urlpatterns

urlpatterns = [
    path("bench/seed-webhook/", views.seed_webhook, name="bench-seed-webhook"),
    path("bench/floor/", views.floor, name="bench-floor"),
    *app_urlpatterns,
]
