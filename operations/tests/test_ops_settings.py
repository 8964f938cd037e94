"""The ops settings refuse bad values, and a process with one does not start."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from operations import config


@pytest.mark.parametrize(
    "senders",
    [["telegram"], ["telegram:"], ["fax:123"], ["other:1"], [":123"]],
)
def test_a_sender_that_is_not_platform_colon_id_is_refused(
    settings: Any, senders: list[str]
) -> None:
    settings.OPS_COMMAND_SENDERS = senders
    with pytest.raises(ImproperlyConfigured, match="OPS_COMMAND_SENDERS"):
        config.check()


def test_senders_are_read_as_pairs(settings: Any) -> None:
    settings.OPS_COMMAND_SENDERS = ["telegram:123", " Slack:U0123 "]
    assert config.senders() == {("telegram", "123"), ("slack", "U0123")}


@pytest.mark.parametrize(
    "commands",
    [
        [],
        {"Deploy!": {"argv": ["x"]}},
        {"status": {"argv": ["x"]}},  # a built-in's name
        {"x": {"argv": "rm -rf /"}},  # a string, not a list: no shell lines
        {"x": {"argv": []}},
        {"x": {"argv": ["ok"], "timeout": 0}},
        {"x": {"argv": ["ok"], "timeout": 601}},
        {"x": {"argv": ["ok"], "timeout": True}},
        {"x": {"argv": ["ok"], "dangerous": "yes"}},
        {"x": {"argv": ["ok"], "shell": True}},
    ],
)
def test_a_malformed_command_is_refused(settings: Any, commands: Any) -> None:
    settings.OPS_COMMANDS = commands
    with pytest.raises(ImproperlyConfigured, match="OPS_COMMANDS"):
        config.check()


def test_deploy_always_asks_for_a_confirmation(settings: Any) -> None:
    settings.OPS_COMMANDS = {
        "deploy": {"argv": ["/srv/deploy"]},
        "backup": {"argv": ["/srv/backup"], "timeout": 5, "dangerous": True},
        "uptime": {"argv": ["uptime"]},
    }
    specs = config.commands()
    assert [specs[n].dangerous for n in ("deploy", "backup", "uptime")] == [
        True,
        True,
        False,
    ]
    assert (specs["uptime"].argv, specs["uptime"].timeout) == (("uptime",), 60.0)


def test_a_process_with_a_bad_ops_setting_refuses_to_start() -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL")
    } | {"OPS_COMMANDS": '{"deploy": {"argv": "git pull && restart"}}'}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "OPS_COMMANDS['deploy']: argv must be a list of strings" in done.stderr
