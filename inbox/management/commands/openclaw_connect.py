"""``manage.py openclaw_connect``: the gateway connector as a process of its own.

The Procfile's ``connector`` line. Run as many as you like for a standby: one
leads (an advisory lock per gateway), the others wait and take over within
seconds when it dies. SIGTERM or Ctrl-C stops it after the row in hand.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inbox import protocol
from inbox.connector import Connector


class Command(BaseCommand):
    help = "Read the gateway's live transcript (OPENCLAW_GATEWAY_URL) into the inbox."

    def handle(self, *args: Any, **options: Any) -> None:
        url = settings.OPENCLAW_GATEWAY_URL
        if not protocol.is_ws_url(protocol.ws_url(url)):
            raise CommandError(
                f"OPENCLAW_GATEWAY_URL={url!r} is not the gateway's ws:// or wss:// URL"
            )
        connector = Connector(on_state=self._report)
        self.stdout.write(f"Connector for {connector.url}")
        asyncio.run(self._run(connector))

    async def _run(self, connector: Connector) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await connector.run(stop)

    def _report(self, state: str) -> None:
        self.stdout.write(f"connector: {state}")
