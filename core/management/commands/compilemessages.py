"""Django's compilemessages, for our catalogue only (locale/): never the
installed packages' catalogues in a virtualenv under the project."""

from __future__ import annotations

from typing import Any

from django.core.management.commands import compilemessages

from core.management.commands.makemessages import NOT_OURS


class Command(compilemessages.Command):
    def handle(self, **options: Any) -> None:
        options["ignore_patterns"] = [
            *options.get("ignore_patterns", []),
            *NOT_OURS,
            ".*",  # .venv, .cache, .git
            "venv",
        ]
        super().handle(**options)
