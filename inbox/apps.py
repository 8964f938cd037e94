from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "Inbox"

    def ready(self) -> None:
        from core.metrics import register_collector
        from inbox.metrics import ActiveSessionsCollector

        register_collector(ActiveSessionsCollector())
