from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "Inbox"

    def ready(self) -> None:
        from core.metrics import register_collector
        from inbox import live, signals, tasks
        from inbox.metrics import ActiveSessionsCollector

        register_collector(ActiveSessionsCollector())
        signals.activities_committed.connect(live.on_committed, dispatch_uid="live")
        signals.reply_queued.connect(tasks.on_reply_queued, dispatch_uid="replies")
        signals.bell_changed.connect(live.on_bell, dispatch_uid="bell")
