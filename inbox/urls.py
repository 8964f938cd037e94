from django.urls import path

from inbox import api, views

app_name = "inbox"

urlpatterns = [
    path("api/openclaw/webhook/", views.webhook, name="webhook"),
    path("inbox/", views.conversation_list, name="conversation-list"),
    path("inbox/c/<int:pk>/", views.conversation_detail, name="conversation-detail"),
    path("inbox/c/<int:pk>/older/", views.older_messages, name="older-messages"),
    path("inbox/c/<int:pk>/contact/", views.contact_panel, name="contact"),
    path(
        "inbox/c/<int:pk>/contact/candidates/",
        views.contact_candidates,
        name="contact-candidates",
    ),
    path("inbox/c/<int:pk>/contact/merge/", views.merge_contact, name="contact-merge"),
    path("inbox/c/<int:pk>/take-over/", views.take_over, name="take-over"),
    path("inbox/c/<int:pk>/hand-back/", views.hand_back, name="hand-back"),
    path("inbox/c/<int:pk>/escalate/", views.escalate, name="escalate"),
    path("inbox/c/<int:pk>/resolve/", views.resolve, name="resolve"),
    path("inbox/c/<int:pk>/snooze/", views.snooze, name="snooze"),
    path("inbox/c/<int:pk>/assign/", views.assign, name="assign"),
    path("inbox/c/<int:pk>/reply/", views.reply, name="reply"),
    path("inbox/c/<int:pk>/canned/", views.canned_responses, name="canned"),
    path("inbox/m/<int:pk>/retry/", views.retry_reply, name="retry-reply"),
    path("inbox/queue/", views.escalation_queue, name="queue"),
    path("inbox/bulk/", views.bulk, name="bulk"),
    path(
        "media/attachments/<slug:key>/<str:name>",
        views.attachment,
        name="attachment",
    ),
    path("inbox/notifications/", views.notifications, name="notifications"),
    path("inbox/views/", views.save_view, name="save-view"),
    path("inbox/views/<int:pk>/delete/", views.delete_view, name="delete-view"),
    path("inbox/c/<int:pk>/unread/", views.mark_unread, name="mark-unread"),
    path("system/deliveries/", views.delivery_list, name="delivery-list"),
    path("system/deliveries/<int:pk>/", views.delivery_detail, name="delivery-detail"),
    path("system/deliveries/replay/", views.delivery_replay, name="delivery-replay"),
    path(
        "api/conversations/", api.ConversationList.as_view(), name="api-conversations"
    ),
    path(
        "api/conversations/<path:session_id>/messages/",
        api.MessageList.as_view(),
        name="api-messages",
    ),
    *[
        path(
            f"api/conversations/<path:session_id>/{action}/", view, name=f"api-{action}"
        )
        for action, view in [
            ("reply", api.reply_view),
            ("take-over", api.take_over_view),
            ("hand-back", api.hand_back_view),
            ("assign", api.assign_view),
            ("resolve", api.resolve_view),
            ("snooze", api.snooze_view),
            ("tags", api.tag_view),
        ]
    ],
    path("api/schema/", api.schema_view, name="api-schema"),
    path("api/docs/", api.docs_view, name="api-docs"),
]
