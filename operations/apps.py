"""Running the service: ops commands from allowlisted chat senders (audited)
and the system page."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OperationsConfig(AppConfig):
    name = "operations"
    verbose_name = _("Operations")

    def ready(self) -> None:
        from inbox.signals import command_received, reply_echoed
        from operations import config, tasks  # noqa: F401  (registers the actors)
        from operations.chat import on_command_received, on_reply_echoed

        config.check()  # a bad OPS_* setting stops the process here
        command_received.connect(on_command_received, dispatch_uid="ops-commands")
        reply_echoed.connect(on_reply_echoed, dispatch_uid="ops-replies")
