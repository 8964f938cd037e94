from typing import Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AutomationsConfig(AppConfig):
    """Triggers and their actions.

    The inbox announces each stored customer message with
    ``inbox.signals.message_stored`` (from its own actor); this app answers by
    enqueueing ``run_triggers``. The inbox never imports this app.
    """

    name = "automations"
    verbose_name = _("Automations")

    def ready(self) -> None:
        # The actors, registered with the broker in every process: the
        # outbox sends jobs by name (core/outbox.py).
        from automations import tasks  # noqa: F401
        from inbox.signals import message_stored

        message_stored.connect(_enqueue_triggers, dispatch_uid="automations")


def _enqueue_triggers(sender: object, message: Any, **kwargs: object) -> None:
    from automations.tasks import run_triggers

    run_triggers.send(message.pk)
