"""Fetch and diff: read a monitor's page through the gateway's browser tool.

The URL is checked against the SSRF rules of outgoing webhooks
(``automations.outbound.check_url``) before every read, not only when the
monitor was saved: a name's DNS answer can change in between. A refused URL
never reaches the gateway.
"""

from __future__ import annotations

import logging
import re

from django.conf import settings

from automations.outbound import OutboundError, check_url
from inbox import gateway
from monitors.models import Monitor, Snapshot

log = logging.getLogger(__name__)


# Chromium shows a page of its own when a site cannot be reached, and the
# browser tool reads it like any page (observed on the real gateway): a short
# text whose error code stands on a line of its own.
_NETWORK_ERROR_CODE = re.compile(r"^(?:net::)?(ERR_[A-Z0-9_]+)$", re.MULTILINE)


class CheckFailed(Exception):
    """The page could not be read; the message says why, for the page."""


def network_error(text: str) -> str | None:
    """Why the page did not load, if ``text`` is Chromium's network error page
    ("127.0.0.1 refused to connect. (ERR_CONNECTION_REFUSED)"); else None."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 15:
        return None  # a real page that happens to mention an error code
    match = _NETWORK_ERROR_CODE.search("\n".join(lines))
    if match is None:
        return None
    # Under the heading ("This site can't be reached"), the sentence that
    # says what went wrong.
    reason = lines[1] if len(lines) > 2 and lines[1] != match.group() else lines[0]
    return f"{reason} ({match.group(1)})"


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
            # no detail. A site that is down fails the same way (its error
            # page has no such element): the whole page tells which it is.
            raise CheckFailed(
                _unreachable(monitor.url)
                or f"{exc} (does the selector {monitor.selector!r} match?)"
            ) from exc
        if exc.status == 500:
            raise CheckFailed(
                f"{exc} (the gateway gives no reason; its log has it)"
            ) from exc
        raise CheckFailed(str(exc)) from exc
    text = page["text"]
    reason = network_error(text)
    if reason is not None:
        raise CheckFailed(f"the page did not load: {reason}")
    if not text.strip():
        what = f"the selector {monitor.selector!r}" if monitor.selector else "the page"
        raise CheckFailed(f"{what} has no visible text")
    return text


def _unreachable(url: str) -> str | None:
    """The whole page read once more: why it did not load, if it did not."""
    try:
        page = gateway.client().read_page(url, max_chars=2000)
    except gateway.GatewayError:
        return None
    reason = network_error(page["text"])
    return f"the page did not load: {reason}" if reason else None


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
