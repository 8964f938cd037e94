"""The ops settings, checked: who may send commands, and the admin's commands.

Read at call time (``override_settings`` applies); ``check()`` runs once at
start (``OperationsConfig.ready``) so a bad value stops the process there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from inbox.models import Platform

NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# "ops" is the namespace: "/ops status" (operations.chat.NAMESPACE).
BUILTINS = ("status", "digest", "logs", "help", "confirm", "ops")
# Commands that always ask for a confirmation code, whatever their setting says.
ALWAYS_DANGEROUS = ("deploy",)
MAX_TIMEOUT = 600


@dataclass(frozen=True)
class CommandSpec:
    name: str
    argv: tuple[str, ...]
    timeout: float
    dangerous: bool


def senders() -> frozenset[tuple[str, str]]:
    """``(platform, sender id)`` pairs of ``OPS_COMMAND_SENDERS``."""
    pairs = set()
    for entry in settings.OPS_COMMAND_SENDERS:
        platform, sep, sender_id = entry.strip().partition(":")
        platform = platform.strip().lower()
        if (
            not sep
            or not sender_id.strip()
            or platform not in Platform.values
            or platform == Platform.OTHER
        ):
            raise ImproperlyConfigured(
                f"OPS_COMMAND_SENDERS: {entry!r} is not platform:sender_id "
                f"(platform one of {', '.join(Platform.values[:-1])}), "
                "e.g. telegram:123456"
            )
        pairs.add((platform, sender_id.strip()))
    return frozenset(pairs)


def commands() -> dict[str, CommandSpec]:
    """``OPS_COMMANDS``: name → a fixed argv, a timeout, whether it is dangerous."""
    raw = settings.OPS_COMMANDS
    if not isinstance(raw, dict):
        raise ImproperlyConfigured(
            'OPS_COMMANDS must be a JSON object: {"name": {"argv": [...], '
            '"timeout": 30, "dangerous": false}}'
        )
    specs = {}
    for name, spec in raw.items():
        specs[name] = _spec(name, spec)
    return specs


def _spec(name: Any, spec: Any) -> CommandSpec:
    where = f"OPS_COMMANDS[{name!r}]"
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ImproperlyConfigured(f"{where}: a name is lowercase letters and digits")
    if name in BUILTINS:
        raise ImproperlyConfigured(f"{where}: /{name} is a built-in command")
    if not isinstance(spec, dict) or set(spec) - {"argv", "timeout", "dangerous"}:
        raise ImproperlyConfigured(
            f"{where} must be an object with argv, timeout and dangerous only"
        )
    argv = spec.get("argv")
    if (
        not isinstance(argv, list)
        or not argv
        or not all(isinstance(a, str) and a and "\x00" not in a for a in argv)
    ):
        raise ImproperlyConfigured(f"{where}: argv must be a list of strings")
    timeout = spec.get("timeout", 60)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout <= MAX_TIMEOUT
    ):
        raise ImproperlyConfigured(
            f"{where}: timeout must be seconds between 0 and {MAX_TIMEOUT}"
        )
    dangerous = spec.get("dangerous", False)
    if not isinstance(dangerous, bool):
        raise ImproperlyConfigured(f"{where}: dangerous must be true or false")
    return CommandSpec(
        name=name,
        argv=tuple(argv),
        timeout=float(timeout),
        dangerous=dangerous or name in ALWAYS_DANGEROUS,
    )


def check() -> None:
    """Raise ``ImproperlyConfigured`` for a bad ops setting."""
    senders()
    commands()
