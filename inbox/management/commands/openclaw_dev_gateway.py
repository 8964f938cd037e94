"""``manage.py openclaw_dev_gateway``: the real OpenClaw gateway, for development.

Installs Node 24 and openclaw on first use (``inbox.devgateway.install``),
then runs the real gateway on 127.0.0.1 with the stub model and the fake
Telegram API (``inbox.devgateway.harness.RealGateway``), prints what to set
for the inbox and how to make a customer write, and runs until Ctrl-C or
SIGTERM, stopping everything it started. Its state lives in a temporary home
removed on exit, unless ``--home`` names a folder to keep.
"""

from __future__ import annotations

import json
import secrets
import shlex
import signal
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inbox.devgateway import (
    FakeTelegram,
    GatewayNotReady,
    InstallError,
    RealGateway,
    StubModel,
)
from inbox.devgateway.install import OPENCLAW_VERSION

DEFAULT_PORT = 18789  # the real gateway's default, and the inbox's default URL
EXAMPLE_CHAT_ID = 5551
CHECK_SECONDS = 0.5


class Command(BaseCommand):
    help = (
        "Run the real OpenClaw gateway on 127.0.0.1 with a stub model and a fake "
        "Telegram (installs Node 24 + openclaw from npm on first use)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=DEFAULT_PORT)
        parser.add_argument(
            "--token",
            default=None,
            help="gateway token (default: OPENCLAW_GATEWAY_TOKEN, else a random one)",
        )
        parser.add_argument(
            "--telegram-port",
            type=int,
            default=0,
            help="port of the fake Telegram API (default: any free port)",
        )
        parser.add_argument(
            "--model-port",
            type=int,
            default=0,
            help="port of the stub model (default: any free port)",
        )
        parser.add_argument(
            "--plugin",
            type=Path,
            action="append",
            default=[],
            metavar="PATH",
            help="load a local plugin folder (plugins.load.paths); repeatable",
        )
        parser.add_argument(
            "--home",
            type=Path,
            default=None,
            help="keep the gateway's state in this folder (default: a temporary "
            "one, removed on exit)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        token = options["token"] or settings.OPENCLAW_GATEWAY_TOKEN
        gateway = RealGateway(
            port=options["port"],
            token=token or secrets.token_urlsafe(24),
            home=options["home"],
            plugin_paths=options["plugin"],
            model=StubModel(port=options["model_port"]),
            telegram=FakeTelegram(port=options["telegram_port"]),
            log=self.stdout.write,
        )
        # SIGTERM as Ctrl-C: both unwind through the finally below, also while
        # starting (RealGateway.start() cleans up after itself).
        previous = {
            sig: signal.signal(sig, _interrupt)
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.stdout.write(f"Starting OpenClaw {OPENCLAW_VERSION} on 127.0.0.1...")
            try:
                gateway.start()
            except (InstallError, GatewayNotReady, OSError) as exc:
                raise CommandError(str(exc)) from exc
            self._announce(gateway)
            while gateway.running:
                time.sleep(CHECK_SECONDS)
            raise CommandError(f"the gateway exited; its output:\n{gateway.log_tail()}")
        except KeyboardInterrupt:
            pass
        finally:
            # A second Ctrl-C must not cut the clean-up short.
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
            self.stdout.write("Stopping the gateway, stub model and fake Telegram...")
            gateway.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write("Stopped.")

    def _announce(self, gateway: RealGateway) -> None:
        customer = {
            "chat_id": EXAMPLE_CHAT_ID,
            "name": "Carol",
            "text": "hi, my parcel never arrived",
        }
        body = shlex.quote(json.dumps(customer))
        say = (
            f"curl -s -X POST {gateway.telegram.url}/__test/customer "
            f"-H 'Content-Type: application/json' -d {body}"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"\nOpenClaw gateway ready on {gateway.ws_url} "
                f"(ready after {gateway.ready_after:.1f} s).\n"
            )
        )
        self.stdout.write(
            "Run the inbox with:\n"
            f"  OPENCLAW_GATEWAY_URL={gateway.ws_url} "
            f"OPENCLAW_GATEWAY_TOKEN={shlex.quote(gateway.token)}\n\n"
            "Make a Telegram customer write (session "
            f"agent:main:telegram:direct:{EXAMPLE_CHAT_ID}):\n"
            f"  {say}\n\n"
            f"What the bot sent:   curl -s {gateway.telegram.url}/__test/sent\n"
            f"Model calls:         curl -s {gateway.model.url}/__test/calls\n"
            f"Hooks:               POST {gateway.hooks_url}/agent with "
            f"'Authorization: Bearer {gateway.hook_token}'\n"
            f"Gateway output:      {gateway.output_path}\n"
            f"Gateway log:         {gateway.log_file}\n\n"
            "Ctrl-C stops everything."
        )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
