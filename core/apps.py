from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        # The actors, registered with the broker in every process: the
        # outbox sends jobs by name (core/outbox.py).
        from core import tasks  # noqa: F401
