from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    """Triggers and actions; filled in by the automations issue.

    It listens to ``inbox.signals.message_stored`` from its own actors; the inbox
    never imports this app.
    """

    name = "automations"
    verbose_name = "Automations"
