"""Two daphne processes on PostgreSQL + Redis both deliver live updates.

A webhook taken by one process must reach an agent whose websocket is held by
the other: the production layout behind a load balancer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websockets
from django.conf import settings

from core.testing import (
    create_user,
    free_port,
    server_env,
    session_cookie,
    wait_for,
    wait_until_healthy,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_daphnes(tmp_path: Path) -> Iterator[list[int]]:
    # Both processes write their metrics to tmp_path; /metrics adds them up.
    env = server_env(tmp_path)
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "core.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        for port in ports
    ]
    try:
        for port in ports:
            wait_until_healthy(port)
        yield ports
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            # daphne gives open connections up to 10 s to close on SIGTERM;
            # on a loaded machine that can run out. Then it is killed.
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def test_a_webhook_on_one_process_reaches_a_socket_on_the_other(
    two_daphnes: list[int], post_to: Callable[..., dict[str, Any]]
) -> None:
    web_a, web_b = two_daphnes
    user = create_user(is_staff=True)
    cookie = session_cookie(user)

    async def scenario() -> list[str]:
        received: list[str] = []
        uri = f"ws://127.0.0.1:{web_b}/ws/inbox/?after=0"
        headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{web_b}"}
        async with websockets.connect(uri, additional_headers=headers) as socket_b:
            await asyncio.sleep(0.3)
            for port, text in ((web_a, "via process A 환불"), (web_b, "via process B")):
                await asyncio.to_thread(post_to, f"http://127.0.0.1:{port}", text=text)
                received.append(await asyncio.wait_for(socket_b.recv(), timeout=10))
        return received

    frames = asyncio.run(scenario())
    assert "via process A 환불" in frames[0]
    assert "via process B" in frames[1]
    assert settings.REDIS_URL

    # Either process's /metrics counts the messages both took.
    metrics = requests.get(f"http://127.0.0.1:{web_b}/metrics", timeout=5).text
    line = 'openclaw_messages_received_total{direction="inbound",platform="telegram"}'
    assert f"{line} 2.0" in metrics
    # The sockets are closed; each server counts its own down when it sees
    # the close, which on a busy machine can come a moment after.
    wait_for(
        lambda: (
            "openclaw_websocket_clients 0.0"
            in requests.get(f"http://127.0.0.1:{web_b}/metrics", timeout=5).text
        ),
        seconds=10,
        what="both servers to count their closed sockets down",
    )
