"""What every module that calls out of the product shares: one error type that
knows a transient failure (retry later) from a permanent one (show "failed"),
how to read the ``Retry-After`` a server sends with 429 or 503, one retry
policy (``retry_delay``), and how to find the cause an HTTP library wrapped
an error around."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime


class CallError(Exception):
    """A failed outbound call. ``permanent`` ones fail the same way when retried."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status
        self.retry_after = retry_after

    def __repr__(self) -> str:
        kind = "permanent" if self.permanent else "transient"
        return f"{type(self).__name__}({self.message!r}, {kind})"


def retry_delay(
    attempts: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before retry number ``attempts`` (1 for the first).

    Exponential backoff with jitter (doubling from ``base``, at most ``cap``,
    drawn from the upper half so a retry never comes right back), or the
    server's ``Retry-After`` when that is longer (capped at an hour). Replies
    to the gateway and trigger webhooks both retry by this.
    """
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 3600.0))
    return delay


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an obsolete date form without a zone means GMT
        return None
    return max(0.0, when.timestamp() - time.time())


def find_in_chain(
    exc: BaseException, kind: type[BaseException]
) -> BaseException | None:
    """The first ``kind`` among the errors requests and urllib3 wrap ``exc`` around.

    Follows ``__cause__``, ``__context__``, a ``reason`` attribute (urllib3's
    ``MaxRetryError``) and exceptions passed as arguments.
    """
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending and len(seen) < 20:  # chains are a few links long
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        nested = [
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
            *current.args,
        ]
        pending.extend(e for e in nested if isinstance(e, BaseException))
    return None
