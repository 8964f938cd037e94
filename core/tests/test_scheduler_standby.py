"""Production mode: a second scheduler waits for the lock as a standby and
takes over when the first stops (it used to exit after 15 s)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.postgres  # needs the real Redis

ROOT = Path(__file__).resolve().parents[2]


def _scheduler(log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-u", "manage.py", "crontab", "--no-task-loading"],
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": settings.REDIS_URL},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _wait_for(log: Path, text: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return True
        time.sleep(0.2)
    return False


def test_a_second_scheduler_waits_and_takes_over(tmp_path: Path) -> None:
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _scheduler(first_log)
    second = None
    try:
        assert _wait_for(first_log, "Starting scheduler", 60), first_log.read_text()
        second = _scheduler(second_log)
        assert _wait_for(second_log, "Acquiring lock", 60), second_log.read_text()
        time.sleep(17)  # past the library's default 15 s of waiting
        assert second.poll() is None, second_log.read_text()
        assert "Starting scheduler" not in second_log.read_text()

        first.terminate()  # SIGTERM: stops softly, releases the lock
        first.wait(timeout=30)
        assert _wait_for(second_log, "Starting scheduler", 30), second_log.read_text()
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
