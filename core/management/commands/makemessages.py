"""Django's makemessages, knowing which folders are not ours to translate.

``manage.py makemessages -l ko`` (and ``-d djangojs``) scans the apps,
templates and static scripts only: not the benchmarks, the gateway plugin's
Node code or collected static files. core/tests/test_translations.py runs it
to find strings missing from the catalogue.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import makemessages

NOT_OURS = [
    "bench",
    "docs",
    "openclaw-plugin",
    "node_modules",
    "staticfiles",
    "build",
    "*.egg-info",
]


class Command(makemessages.Command):
    def handle(self, *args: Any, **options: Any) -> str | None:
        options["ignore_patterns"] = [*options.get("ignore_patterns", []), *NOT_OURS]
        # File names without line numbers: an edit elsewhere in a file does not
        # rewrite the catalogue.
        if options.get("add_location") is None:
            options["add_location"] = "file"
        return super().handle(*args, **options)
