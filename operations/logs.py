"""The last ERROR log records, kept for ``/logs`` and the system page.

``RecentErrorsHandler`` (in ``LOGGING``) keeps the newest ``KEEP`` lines: in a
capped Redis list in production mode, so every process's errors are in one
place, and in memory in embedded mode (one process). Lines are stored as
logged and masked when shown (``core.masking.mask``): masking may read the
database, which a log handler must not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from django.conf import settings

KEEP = 500
LINE_CHARS = 1_000

_memory: deque[str] = deque(maxlen=KEEP)
_memory_lock = threading.Lock()
_local = threading.local()
_redis: tuple[str, Any] | None = None  # (the URL it was made for, the client)


def _key() -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX") or "openclaw"
    return f"{prefix}:ops:recent-errors"


def _client() -> Any:
    """A client for ``settings.REDIS_URL`` as it is now (read at call time:
    a client made while a test overrode it must not outlive the override)."""
    global _redis
    url = settings.REDIS_URL
    if _redis is None or _redis[0] != url:
        import redis

        _redis = (
            url,
            redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1),
        )
    return _redis[1]


class RecentErrorsHandler(logging.Handler):
    """Keep each record (ERROR and above) as one line; never raise, never loop."""

    def __init__(self, level: int = logging.ERROR) -> None:
        super().__init__(level)
        self.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        )

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(_local, "busy", False):
            return  # Redis itself logged an error while we stored one
        _local.busy = True
        try:
            line = self._line(record)
            remember(line, stamp=record.created)
        except Exception:  # a log handler that raises would break the caller
            self.handleError(record)
        finally:
            _local.busy = False

    def _line(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        # One line: the exception's type and message, not its traceback.
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            line = self.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        if saved[0] and saved[0][1] is not None:
            line += f" [{type(saved[0][1]).__name__}: {saved[0][1]}]"
        return " ".join(line.split())[:LINE_CHARS]


def remember(line: str, *, stamp: float | None = None) -> None:
    entry = f"{stamp if stamp is not None else time.time():.3f} {line}"
    if settings.REDIS_URL:
        client = _client()
        with client.pipeline() as pipe:
            pipe.lpush(_key(), entry)
            pipe.ltrim(_key(), 0, KEEP - 1)
            pipe.execute()
    else:
        with _memory_lock:
            _memory.appendleft(entry)


def _entries(limit: int) -> list[str]:
    if settings.REDIS_URL:
        raw = _client().lrange(_key(), 0, limit - 1)
        return [item.decode("utf-8", "replace") for item in raw]
    with _memory_lock:
        return list(_memory)[:limit]


def recent(limit: int) -> list[tuple[float, str]]:
    """The newest ``limit`` lines, newest first, as ``(unix time, line)``; not
    masked yet."""
    found = []
    for entry in _entries(max(0, min(limit, KEEP))):
        stamp, _, line = entry.partition(" ")
        try:
            found.append((float(stamp), line))
        except ValueError:
            continue
    return found


def count_since(seconds: float) -> int:
    since = time.time() - seconds
    return sum(1 for stamp, _ in recent(KEEP) if stamp >= since)


def clear() -> None:
    """Forget every line (tests)."""
    if settings.REDIS_URL:
        _client().delete(_key())
    with _memory_lock:
        _memory.clear()
