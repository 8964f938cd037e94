"""Running the service: ops commands from allowlisted chat senders (audited)
and the system page."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OperationsConfig(AppConfig):
    name = "operations"
    verbose_name = _("Operations")

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from inbox.signals import command_received, command_senders_wanted, reply_echoed
        from operations import config, tasks  # noqa: F401  (registers the actors)
        from operations.chat import (
            on_command_received,
            on_command_senders_wanted,
            on_reply_echoed,
            on_sender_changed,
        )
        from operations.models import CommandSender

        config.check()  # a bad OPS_* setting stops the process here
        command_received.connect(on_command_received, dispatch_uid="ops-commands")
        reply_echoed.connect(on_reply_echoed, dispatch_uid="ops-replies")
        command_senders_wanted.connect(
            on_command_senders_wanted, dispatch_uid="ops-senders"
        )
        for changed in (post_save, post_delete):
            changed.connect(
                on_sender_changed, sender=CommandSender, dispatch_uid="ops-sync"
            )
