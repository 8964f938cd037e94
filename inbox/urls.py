from django.urls import path

from inbox import api, views

app_name = "inbox"

urlpatterns = [
    path("api/openclaw/webhook/", views.webhook, name="webhook"),
    path("inbox/", views.conversation_list, name="conversation-list"),
    path("inbox/c/<int:pk>/", views.conversation_detail, name="conversation-detail"),
    path("inbox/c/<int:pk>/older/", views.older_messages, name="older-messages"),
    path(
        "api/conversations/", api.ConversationList.as_view(), name="api-conversations"
    ),
    path(
        "api/conversations/<path:session_id>/messages/",
        api.MessageList.as_view(),
        name="api-messages",
    ),
    path("api/schema/", api.schema_view, name="api-schema"),
]
