from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from inbox.simulator import GatewayServer, Simulator


class Command(BaseCommand):
    help = "Post signed OpenClaw webhook traffic at a running inbox (bounded)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url", default="http://127.0.0.1:8000/api/openclaw/webhook/"
        )
        parser.add_argument(
            "--rate", type=float, default=2.0, help="deliveries per second"
        )
        parser.add_argument("--duration", type=float, default=60.0, help="seconds")
        parser.add_argument(
            "--count", type=int, default=None, help="stop after N deliveries"
        )
        parser.add_argument(
            "--scheme", choices=["openclaw", "standard", "mixed"], default="mixed"
        )
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument(
            "--secret", default=None, help="defaults to the first configured secret"
        )
        parser.add_argument(
            "--serve-port",
            type=int,
            default=None,
            metavar="N",
            help="also serve the gateway's HTTP API on 127.0.0.1:N (0: any free "
            "port) for the run, posting 'delivered' webhooks to --url",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        secret = options["secret"] or settings.OPENCLAW_WEBHOOK_SECRETS[0]
        server: GatewayServer | None = None
        if options["serve_port"] is not None:
            server = GatewayServer(
                port=options["serve_port"],
                token=settings.OPENCLAW_GATEWAY_TOKEN,
                webhook_url=options["url"],
                secret=secret,
            ).start()
            self.stdout.write(
                f"Gateway API on {server.url} (point OPENCLAW_GATEWAY_URL at it)."
            )
        simulator = Simulator(
            options["url"],
            secret=secret,
            seed=options["seed"],
            scheme=options["scheme"],
            gateway=server,
        )
        try:
            answers = simulator.run(
                rate=options["rate"],
                duration=options["duration"],
                count=options["count"],
            )
        finally:
            if server is not None:
                server.stop()
        summary = ", ".join(f"{status}: {n}" for status, n in sorted(answers.items()))
        self.stdout.write(f"Sent {simulator.sent} deliveries ({summary}).")
        if server is not None:
            self.stdout.write(f"Gateway accepted {len(server.received)} replies.")
