"""The simulated gateway as its own process, for the replies benchmark.

``python -m bench.gateway_sim PORT TOKEN OUT``: serves
``inbox.simulated_gateway.GatewayServer`` (the gateway's WebSocket RPC) on
127.0.0.1:PORT until SIGTERM (at most an hour), then
writes every send it accepted, with the time it took it (``time.time()``, the
clock the load process stamps its clicks with), to OUT as JSON.

Its own process so the receipt times are taken by an interpreter that neither
the load generator nor the app can hold up.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import django

MAX_LIFETIME_S = 3600.0


def main(port: int, token: str, out: Path) -> None:
    django.setup()
    from inbox.simulated_gateway import GatewayServer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = GatewayServer(port=port, token=token, quiet=True).start()
    print(f"gateway simulator on {server.url}", flush=True)
    deadline = time.monotonic() + MAX_LIFETIME_S
    while not stop.is_set() and time.monotonic() < deadline:
        stop.wait(0.5)
    server.stop()
    sends: list[dict[str, Any]] = [
        {
            "session_key": record.session_key,
            "idempotency_key": record.idempotency_key,
            "text": record.text,
            "received_at": record.received_at,
            "kind": record.kind,
        }
        for record in server.received
    ]
    out.write_text(
        json.dumps(
            {
                "sends": sends,
                "attempts": server.attempts,
                "connections_opened": server.connections_opened,
                "owners": server.owners,
            }
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
