"""Website monitors and price watch: pages fetched through the gateway's
browser tool, snapshots diffed, alerts raised once."""

from django.apps import AppConfig


class MonitorsConfig(AppConfig):
    name = "monitors"

    def ready(self) -> None:
        from monitors import digest, tasks
        from monitors.signals import alert_raised
        from reports.digest import collect_sections

        alert_raised.connect(tasks.on_alert_raised, dispatch_uid="monitors-channel")
        collect_sections.connect(digest.section, dispatch_uid="monitors-digest")
