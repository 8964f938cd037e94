"""``manage.py web``: the Procfile's web process, several daphnes on one port.

One daphne process runs Python on one core. This command opens one listening
socket per child on the same port (``SO_REUSEPORT``: the kernel gives each
new connection to one of them), starts ``--processes`` daphne children on
them, restarts a child that dies, and stops them all on SIGTERM. A tab's
websocket stays with the child that accepted it; live updates reach it
whichever child took the webhook, because the Redis channel layer carries
them between processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

# A child that dies this soon after starting is failing to start, not crashing
# under load; this many such deaths in a row stop the whole command.
QUICK_DEATH_SECONDS = 10.0
QUICK_DEATHS_ALLOWED = 5


@dataclass
class Child:
    process: subprocess.Popen[bytes]
    started: float


class Command(BaseCommand):
    help = "Run several daphne processes on one port (production web process)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="0.0.0.0")
        # String defaults go through ``type`` too: a bad PORT or WEB_PROCESSES
        # is a usage error naming the option, not a traceback.
        parser.add_argument(
            "--port", type=int, default=os.environ.get("PORT") or "8000"
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=os.environ.get("WEB_PROCESSES") or "2",
            help="daphne processes sharing the port (env WEB_PROCESSES, default 2)",
        )
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            help="trust X-Forwarded-For/-Proto from the router in front",
        )
        parser.add_argument(
            "--application",
            help="the ASGI application as module:attribute "
            "(default: settings.ASGI_APPLICATION)",
        )
        parser.add_argument(
            "--stop-timeout",
            type=float,
            default=10.0,
            help="seconds the children get to finish on SIGTERM",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count = options["processes"]
        if count < 1:
            raise CommandError("--processes must be at least 1")
        if not settings.REDIS_URL:
            # The embedded default: its channel layer lives in one process (a
            # webhook taken by one child would never reach another's tabs) and
            # its jobs run only inside ``serve``.
            raise CommandError(
                "manage.py web is production mode's web process: set "
                "DATABASE_URL and REDIS_URL, or run manage.py serve"
            )
        host, port = options["host"], options["port"]
        if ":" in host:
            # daphne adopts an inherited socket as IPv4 only.
            raise CommandError("--host must be an IPv4 address (0.0.0.0 for all)")
        # One listening socket per child, all on the same port (SO_REUSEPORT):
        # the kernel spreads new connections over them by a hash of their
        # addresses. With one shared socket, whichever child reached accept()
        # first took nearly all the websockets (measured: 24 of 24). This
        # process keeps every socket open, so connections meant for a child
        # that died wait in its backlog for the replacement, not refused.
        try:
            # Without SO_REUSEPORT first: a second instance (or orphans of a
            # first one) must make this fail, not silently share the port.
            socket.create_server((host, port)).close()
            listeners = [
                socket.create_server((host, port), backlog=1024, reuse_port=True)
                for _ in range(count)
            ]
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc}") from exc
        module, _, name = settings.ASGI_APPLICATION.rpartition(".")
        application = options["application"] or f"{module}:{name}"
        extra = ["--proxy-headers"] if options["proxy_headers"] else []
        supervisor = Supervisor(
            [*extra, application], [s.fileno() for s in listeners], self.stderr
        )
        self.stdout.write(f"web: {count} daphne process(es) on {host}:{port}")
        code = supervisor.run(stop_timeout=options["stop_timeout"])
        for listener in listeners:
            listener.close()
        if code:
            raise CommandError("daphne keeps dying as it starts: see its log above")


class Supervisor:
    """Start the children, replace the ones that die, stop them all on a signal."""

    def __init__(self, daphne_args: list[str], fds: list[int], stderr: Any) -> None:
        # One child per listening socket, handed over as ``daphne --fd N``.
        self.daphne_args = daphne_args
        self.fds = fds
        self.stderr = stderr
        self.children: list[Child] = []
        self.stopping = False
        self.quick_deaths = 0

    def run(self, *, stop_timeout: float) -> int:
        previous = {
            sig: signal.signal(sig, self._stop)
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        code = 0
        try:
            for fd in self.fds:
                self.children.append(self._spawn(fd))
            while not self.stopping:
                time.sleep(0.2)
                for index, child in enumerate(self.children):
                    if child.process.poll() is None or self.stopping:
                        continue
                    if not self._replace(index, child):
                        self.stopping = True
                        code = 1
            return code
        finally:
            # Also on an error here: no daphne is left serving the port alone.
            self._shutdown(stop_timeout)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _spawn(self, fd: int) -> Child:
        command = [sys.executable, "-m", "daphne", "--fd", str(fd), *self.daphne_args]
        return Child(subprocess.Popen(command, pass_fds=[fd]), time.monotonic())

    def _replace(self, index: int, child: Child) -> bool:
        """Start a new child in a dead one's place; ``False`` to give up."""
        _forget_metrics(child.process.pid)
        lived = time.monotonic() - child.started
        self.stderr.write(
            f"web: daphne {child.process.pid} exited with "
            f"{child.process.returncode} after {lived:.1f} s; starting another"
        )
        self.quick_deaths = self.quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
        if self.quick_deaths >= QUICK_DEATHS_ALLOWED:
            return False
        time.sleep(min(0.5 * self.quick_deaths, 2.0))
        if not self.stopping:  # a SIGTERM during the pause needs no new child
            self.children[index] = self._spawn(self.fds[index])
        return True

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _shutdown(self, timeout: float) -> None:
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
            _forget_metrics(child.process.pid)


def _forget_metrics(pid: int) -> None:
    # Live gauges (open websockets) of a process that is gone must stop counting.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
