"""Settings from the environment refuse values that cannot work, at start."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _start(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "WEB_"))}
    base |= {
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/never_connected",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "SECRET_KEY": "x",
        "OPENCLAW_WEBHOOK_SECRET": "x",
        "DJANGO_SETTINGS_MODULE": "core.settings",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"WEB_THREADS": "16"}, "needs DB_POOL_MAX of at least 21 (it is 20)"),
        ({"WEB_THREADS": "12", "DB_POOL_MAX": "10"}, "at least 17 (it is 10)"),
        ({"WEB_THREADS": "0"}, "WEB_THREADS must be at least 1"),
    ],
)
def test_http_threads_the_database_pool_cannot_serve_are_refused(
    env: dict[str, str], says: str
) -> None:
    result = _start(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and says in result.stderr


def test_the_defaults_start() -> None:
    result = _start()
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"DEBUG": "flase"}, "DEBUG='flase' is not a boolean"),
        ({"INBOX_AUTO_ASSIGN": "maybe"}, "INBOX_AUTO_ASSIGN='maybe' is not a boolean"),
        (
            {"OPENCLAW_MASK_STORED_BODIES": "masked"},
            "OPENCLAW_MASK_STORED_BODIES='masked' is not a boolean",
        ),
        (
            {"OPENCLAW_WEBHOOK_RATE": "lots"},
            "OPENCLAW_WEBHOOK_RATE='lots' is not a rate",
        ),
        ({"OPENCLAW_WEBHOOK_RATE": "100/week"}, "is not a rate"),
        ({"OPENCLAW_MAX_TEXT_CHARS": "-5"}, "OPENCLAW_MAX_TEXT_CHARS='-5' must be 0"),
        ({"OPENCLAW_MAX_TEXT_CHARS": "16k"}, "'16k' is not a whole number"),
        ({"INBOX_REPLY_BACKOFF_SECONDS": "nan"}, "must be 0 or more"),
        ({"TIME_ZONE": "Mars/Olympus"}, "TIME_ZONE='Mars/Olympus' is not a time zone"),
        ({"TIME_ZONE": "KST"}, "TIME_ZONE='KST' is not a time zone"),
    ],
)
def test_a_misconfigured_setting_refuses_to_start_naming_it(
    env: dict[str, str], says: str
) -> None:
    result = _start(**env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and says in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"DEBUG": "off"},
        {"DEBUG": "TRUE"},
        {"OPENCLAW_WEBHOOK_RATE": "100/5m"},
        {"OPENCLAW_MAX_TEXT_CHARS": "0"},
        {"TIME_ZONE": "Asia/Seoul"},
    ],
)
def test_good_values_start(env: dict[str, str]) -> None:
    result = _start(**env)
    assert result.returncode == 0, result.stderr
