from django.urls import path

from reports import views

app_name = "reports"

urlpatterns = [
    path("", views.report, name="report"),
    path("recompute/", views.recompute, name="recompute"),
    path("recompute/status/", views.rollup_status, name="rollup-status"),
    path("digest/", views.digest, name="digest"),
    path("digest/send/", views.digest_send, name="digest-send"),
]
