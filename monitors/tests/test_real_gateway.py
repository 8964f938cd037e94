"""A monitor read through the REAL gateway's browser tool (``openclaw@2026.9.6``
driving Debian's Chromium, headless): the contract in docs/gateway-browser.md.

A gateway of its own for this module, with the browser configured; its SSRF
policy lets it read the test page on 127.0.0.1 (ours is allowlisted too).
Marked ``gateway``; needs /usr/bin/chromium besides Node.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.testing import create_monitor
from inbox import gateway as gateway_module
from monitors import checks
from monitors.models import Alert, Snapshot

pytestmark = [pytest.mark.gateway, pytest.mark.django_db(transaction=True)]
CHROMIUM = "/usr/bin/chromium"
PAGE = """<html><body><nav>Home</nav><main><h1>Galaxy Book</h1>
<p id="price">{price}</p><script>document.write("<p>added by script</p>")</script>
</main></body></html>"""


@pytest.fixture(scope="module")
def browser_gateway() -> Iterator[Any]:
    from inbox.devgateway import InstallError, RealGateway, ensure_installed

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        ensure_installed()
    except InstallError as exc:
        if exc.unreachable and not os.environ.get("CI"):
            pytest.skip(f"npm unreachable, no real gateway ({exc.summary})")
        pytest.fail(f"cannot install Node 24 + openclaw: {exc}")
    browser = {
        "enabled": True,
        "executablePath": CHROMIUM,
        "headless": True,
        "noSandbox": True,  # root in a container
        # The test page is on 127.0.0.1, which the gateway's browser refuses
        # by default, as ours does.
        "ssrfPolicy": {"dangerouslyAllowPrivateNetwork": True},
    }
    gateway = RealGateway(extra_config={"browser": browser}).start()
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
def real_browser(browser_gateway: Any, settings: Any) -> Iterator[Any]:
    settings.OPENCLAW_GATEWAY_URL = browser_gateway.ws_url
    settings.OPENCLAW_GATEWAY_TOKEN = browser_gateway.token
    gateway_module.reset_client()
    yield browser_gateway
    gateway_module.reset_client()


def test_a_change_is_seen_through_the_real_browser_tool(
    real_browser: Any, allow_loopback: Any, page: Any
) -> None:
    page.html = PAGE.format(price="₩1,250,000")
    monitor = create_monitor(url=page.url, selector="main")
    checks.check(monitor)
    baseline = Snapshot.objects.get()
    assert baseline.error == ""
    # Rendered by Chromium: the script's paragraph is there, the nav is not.
    assert baseline.text.splitlines() == [
        "Galaxy Book",
        "₩1,250,000",
        "added by script",
    ]

    page.html = PAGE.format(price="₩1,190,000")
    checks.check(monitor)
    alert = Alert.objects.get()
    assert alert.kind == Alert.Kind.CHANGE
    assert "+₩1,190,000" in alert.snapshot.diff

    result = gateway_module.client().read_page(page.url, selector="#price")
    assert result == {"text": "₩1,190,000", "url": page.url, "truncated": False}


def test_a_site_that_refuses_is_a_failure_with_its_reason(
    real_browser: Any, allow_loopback: Any, page: Any
) -> None:
    # Chromium shows its network error page; the tool reads it as page text.
    page.stop()
    monitor = create_monitor(url=page.url)
    checks.check(monitor)
    monitor.refresh_from_db()
    assert monitor.failures == 1
    assert monitor.last_error == (
        "the page did not load: 127.0.0.1 refused to connect. (ERR_CONNECTION_REFUSED)"
    )
    assert not Snapshot.objects.filter(error="").exists()
