from django.urls import path

from automations import views

app_name = "automations"

urlpatterns = [
    path("", views.trigger_list, name="trigger-list"),
    path("new/", views.trigger_create, name="trigger-create"),
    path("<int:pk>/", views.trigger_edit, name="trigger-edit"),
    path("<int:pk>/toggle/", views.trigger_toggle, name="trigger-toggle"),
    path("<int:pk>/move/", views.trigger_move, name="trigger-move"),
    path("<int:pk>/delete/", views.trigger_delete, name="trigger-delete"),
    path("<int:pk>/versions/", views.trigger_versions, name="trigger-versions"),
    path("<int:pk>/versions/<int:number>/", views.version_diff, name="version-diff"),
    path(
        "<int:pk>/versions/<int:number>/revert/",
        views.version_revert,
        name="version-revert",
    ),
    path("check-patterns/", views.check_patterns, name="check-patterns"),
    path("action-fields/", views.action_fields, name="action-fields"),
    path("action-row/", views.action_row, name="action-row"),
    path("try/", views.try_draft, name="try"),
    path("backtests/", views.backtest_create, name="backtest-create"),
    path("backtests/<int:pk>/", views.backtest_progress, name="backtest-progress"),
    path("tickets/", views.ticket_list, name="ticket-list"),
    path("tickets/<int:pk>/close/", views.ticket_close, name="ticket-close"),
]
