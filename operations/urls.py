from django.urls import path

from operations import views

app_name = "operations"

urlpatterns = [
    path("", views.system, name="system"),
    path("commands/", views.command_list, name="command-list"),
]
