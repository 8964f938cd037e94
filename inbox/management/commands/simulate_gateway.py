from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inbox.simulator import Simulator


class Command(BaseCommand):
    help = "Post signed OpenClaw webhook traffic at a running inbox (bounded)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--port",
            type=int,
            default=int(os.environ.get("PORT") or 8000),
            help="the running inbox's port on 127.0.0.1, as given to serve --port "
            "(default: $PORT, else 8000)",
        )
        parser.add_argument(
            "--url", default=None, help="the webhook's full URL (overrides --port)"
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

    def handle(self, *args: Any, **options: Any) -> None:
        secret = options["secret"] or settings.OPENCLAW_WEBHOOK_SECRETS[0]
        url = options["url"] or (
            f"http://127.0.0.1:{options['port']}/api/openclaw/webhook/"
        )
        self.stdout.write(f"Posting signed webhooks to {url}")
        simulator = Simulator(
            url,
            secret=secret,
            seed=options["seed"],
            scheme=options["scheme"],
        )
        answers = simulator.run(
            rate=options["rate"],
            duration=options["duration"],
            count=options["count"],
        )
        summary = ", ".join(
            f"{status or 'no answer'}: {n}" for status, n in sorted(answers.items())
        )
        refused = sum(n for status, n in answers.items() if not 200 <= status < 300)
        self.stdout.write(f"Sent {simulator.sent} deliveries ({summary}).")
        if refused:
            raise CommandError(
                f"{refused} of {simulator.sent} deliveries were not accepted: check"
                f" {url} is the inbox (--port, or --url) and --secret."
            )
