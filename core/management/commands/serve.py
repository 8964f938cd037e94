"""``manage.py serve``: the whole product in one process (embedded mode).

Migrates, makes the demo login, starts a Dramatiq worker thread on the
in-process broker, optionally a simulated gateway with demo customers, the
gateway connector when ``OPENCLAW_GATEWAY_URL`` is a ``ws://`` or ``wss://``
URL, and runs daphne. In production mode the Procfile runs these as separate
processes instead.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-inbox"
DEMO_USERS = [
    (DEMO_USER, None, True),  # admin
    ("lead", "lead", False),
    ("alice", "agent", False),
    ("bob", "agent", False),
]
DEMO_GATEWAY_PORT = 18789  # the real OpenClaw gateway's default


class Command(BaseCommand):
    help = "Run the inbox (daphne + worker thread) on the embedded default."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--port", type=int, default=int(os.environ.get("PORT", 8000))
        )
        parser.add_argument(
            "--demo",
            action="store_true",
            help="also start a simulated gateway with customers writing to it",
        )
        parser.add_argument(
            "--rate", type=float, default=0.5, help="demo messages per second"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self._ensure_demo_user()
        worker = self._start_worker()
        if options["demo"]:
            self._start_simulator(options["rate"])
        connector = self._start_connector()
        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(
            self.style.SUCCESS(
                f"\nOpenClaw Inbox on {url}"
                f"  (log in as {DEMO_USER} / {DEMO_PASSWORD}; also lead, alice and"
                f" bob, same password)\n"
                f"Webhook: POST {url}api/openclaw/webhook/ signed with "
                f"OPENCLAW_WEBHOOK_SECRET\n"
            )
        )
        from daphne.cli import CommandLineInterface

        try:
            CommandLineInterface().run(
                [
                    "-b",
                    options["host"],
                    "-p",
                    str(options["port"]),
                    "core.asgi:application",
                ]
            )
        finally:
            if connector is not None:
                connector.stop()
            if worker is not None:
                worker.stop()

    def _ensure_demo_user(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        User = get_user_model()
        if settings.PRODUCTION:
            return  # no known password on a real deployment
        # An admin, a lead and two agents, so two browsers can race for a takeover.
        for username, group, superuser in DEMO_USERS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={"is_staff": True, "is_superuser": superuser},
            )
            if created or not user.check_password(DEMO_PASSWORD):
                user.set_password(DEMO_PASSWORD)
                user.save()
            if group:
                user.groups.add(Group.objects.get(name=group))

    def _start_worker(self) -> Any:
        import dramatiq
        from dramatiq.brokers.stub import StubBroker

        broker = dramatiq.get_broker()
        if not isinstance(broker, StubBroker):
            self.stdout.write("Jobs go to Redis: run the Procfile's worker as well.")
            return None
        worker = dramatiq.Worker(broker, worker_threads=2)
        worker.start()
        # Periodic jobs too: the scheduler enqueues onto the same in-process broker.
        from dramatiq_crontab import scheduler

        threading.Thread(target=scheduler.start, name="scheduler", daemon=True).start()
        return worker

    def _start_simulator(self, rate: float) -> None:
        """The simulated gateway on 127.0.0.1 (the real one's port when free),
        with demo customers writing to it; the connector below reads it."""
        import secrets

        from inbox.simulated_gateway import DemoTraffic, GatewayServer

        token = settings.OPENCLAW_GATEWAY_TOKEN or secrets.token_urlsafe(16)
        # As with the inbox plugin installed: a takeover stops the bot.
        try:  # the real gateway's port, so the demo looks like the real thing
            gateway = GatewayServer(
                port=DEMO_GATEWAY_PORT, token=token, plugin=True
            ).start()
        except OSError:
            gateway = GatewayServer(port=0, token=token, plugin=True).start()
        settings.OPENCLAW_GATEWAY_URL = gateway.url
        settings.OPENCLAW_GATEWAY_TOKEN = token
        traffic = DemoTraffic(gateway, rate=rate)
        threading.Thread(target=traffic.run, name="demo-traffic", daemon=True).start()
        self.stdout.write(
            f"Simulated gateway on {gateway.url}, demo customers writing about "
            f"{rate} messages/s."
        )

    def _start_connector(self) -> Any:
        """The gateway connector as a thread, when a ws:// gateway is configured."""
        from inbox import protocol
        from inbox.connector import Connector, ConnectorThread

        if not protocol.is_ws_url(settings.OPENCLAW_GATEWAY_URL):
            return None
        if settings.PRODUCTION:
            self.stdout.write("Production mode: run the Procfile's connector process.")
            return None
        thread = ConnectorThread(Connector())
        thread.start()
        self.stdout.write(f"Connector reading {settings.OPENCLAW_GATEWAY_URL}.")
        return thread
