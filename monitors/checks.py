"""Fetch and diff: read a monitor's page through the gateway's browser tool.

The URL is checked against the SSRF rules of outgoing webhooks
(``automations.outbound.check_url``) before every read, not only when the
monitor was saved: a name's DNS answer can change in between. A refused URL
never reaches the gateway.
"""

from __future__ import annotations

import logging

from django.conf import settings

from automations.outbound import OutboundError, check_url
from inbox import gateway
from monitors.models import Monitor, Snapshot

log = logging.getLogger(__name__)


class CheckFailed(Exception):
    """The page could not be read; the message says why, for the page."""


def read(monitor: Monitor) -> str:
    """The watched text of ``monitor``'s page; ``CheckFailed`` otherwise.

    ``GatewayError`` that a retry may heal is a failure too: the monitor's
    own backoff retries, the job does not.
    """
    try:
        check_url(monitor.url)
    except OutboundError as exc:
        raise CheckFailed(f"refused: {exc}") from exc
    try:
        page = gateway.client().read_page(
            monitor.url,
            selector=monitor.selector,
            max_chars=settings.MONITORS_MAX_TEXT_CHARS,
        )
    except gateway.GatewayError as exc:
        if monitor.selector and exc.status == 500:
            # The real browser tool waits for the selector, then fails with
            # no detail: that is the likeliest reason.
            raise CheckFailed(
                f"{exc} (does the selector {monitor.selector!r} match?)"
            ) from exc
        raise CheckFailed(str(exc)) from exc
    text = page["text"]
    if not text.strip():
        what = f"the selector {monitor.selector!r}" if monitor.selector else "the page"
        raise CheckFailed(f"{what} has no visible text")
    return text


def check(monitor: Monitor) -> Snapshot:
    """Read the page once and record the result (snapshot, alerts, next check)."""
    try:
        text = read(monitor)
    except CheckFailed as exc:
        log.info("monitor %s failed: %s", monitor.pk, exc)
        snapshot, _alert = monitor.record_failure(str(exc))
        return snapshot
    snapshot, _alerts = monitor.record_text(text)
    return snapshot
