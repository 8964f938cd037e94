"""gunicorn's settings for the Procfile's web line: uvicorn workers serving core.asgi.

gunicorn (the arbiter) owns the port, starts ``WEB_CONCURRENCY`` workers,
replaces one that dies and, on SIGTERM, lets each finish its requests for up
to ``graceful_timeout`` seconds. Each worker is uvicorn's event loop serving
``core.asgi:application``: websockets through Channels, HTTP through Django's
WSGI handler on a thread pool. Live updates reach every worker's tabs through
the Redis channel layer, whichever worker took the webhook.

``X-Forwarded-For`` and ``-Proto`` are believed only from the addresses in
``FORWARDED_ALLOW_IPS`` (gunicorn's setting, read by the uvicorn worker;
default 127.0.0.1,::1): set it to the load balancer's address, or ``*`` when
nothing but the load balancer can reach the port.
"""

from __future__ import annotations

import os
from typing import Any

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    # Channels' router has no lifespan protocol; do not ask for it.
    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "lifespan": "off"}


def _count(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"{name}={raw!r} must be a whole number of at least 1")
    return int(raw)


worker_class = "core.gunicorn.Worker"
workers = _count("WEB_CONCURRENCY", 2)  # about one per core
graceful_timeout = _count("WEB_GRACEFUL_TIMEOUT", 10)
keepalive = 5
accesslog = None  # the router in front logs requests; errors still go to stderr
# gunicorn 24+'s control socket sits at one fixed path per user: two web
# processes on a machine (or a test beside a running one) would fight over it.
control_socket_disable = True


def on_starting(server: Any) -> None:
    if not os.environ.get("REDIS_URL"):
        # The embedded default: its channel layer lives in one process (a
        # webhook taken by one worker would never reach another's tabs) and
        # its jobs run only inside ``manage.py serve``.
        raise SystemExit(
            "the web line is production mode's web process: set DATABASE_URL "
            "and REDIS_URL, or run manage.py serve"
        )


def child_exit(server: Any, worker: Any) -> None:
    # Live gauges (open websockets) of a worker that is gone stop counting.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
