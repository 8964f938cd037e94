from django.urls import path

from monitors import views

app_name = "monitors"

urlpatterns = [
    path("", views.monitor_list, name="monitor-list"),
    path("new/", views.monitor_create, name="monitor-create"),
    path("validate/", views.monitor_validate, name="monitor-validate"),
    path("<int:pk>/", views.monitor_detail, name="monitor-detail"),
    path("<int:pk>/edit/", views.monitor_edit, name="monitor-edit"),
    path("<int:pk>/check/", views.monitor_check, name="monitor-check"),
    path("<int:pk>/toggle/", views.monitor_toggle, name="monitor-toggle"),
    path("<int:pk>/delete/", views.monitor_delete, name="monitor-delete"),
]
