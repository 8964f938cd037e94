"""``manage.py web``: several daphne processes behind one port.

The Procfile's web line. The tests start it as production does (PostgreSQL +
Redis) and look at its children from outside: which process holds each
websocket, what happens when one of them is killed, and how it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import websockets
from django.core.management import CommandError, call_command

from core.testing import (
    create_user,
    free_port,
    server_env,
    session_cookie,
    wait_until_healthy,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_embedded_default_is_sent_to_serve(settings: Any) -> None:
    # One process's channel layer and no worker: that is manage.py serve's job.
    settings.REDIS_URL = ""
    with pytest.raises(CommandError, match="manage.py serve"):
        call_command("web", processes=1, port=free_port())


@pytest.mark.postgres
def test_a_port_already_served_is_refused() -> None:
    with socket.create_server(("127.0.0.1", 0), reuse_port=True) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match="cannot listen"):
            call_command("web", processes=1, host="127.0.0.1", port=port)


@pytest.mark.postgres
def test_an_ipv6_host_is_refused_with_a_reason() -> None:
    with pytest.raises(CommandError, match="IPv4"):
        call_command("web", processes=1, host="::1", port=free_port())


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "web", "--host", "127.0.0.1",
         "--port", str(port), "--processes", "2", "--stop-timeout", "5"],
        cwd=ROOT,
        env=server_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until_healthy(port)
        yield port, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        finally:
            # Its own session: whatever is left of the group goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def _children(
    process: subprocess.Popen[bytes], *, count: int = 2, wait: float = 10.0
) -> list[psutil.Process]:
    """The daphne children, once there are ``count`` of them (or after ``wait``)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            children = psutil.Process(process.pid).children()
        except psutil.NoSuchProcess:
            return []
        if len(children) >= count or time.monotonic() >= deadline:
            return children
        time.sleep(0.1)


def _holder(children: list[psutil.Process], port: int, client_port: int) -> int:
    """The pid of the child whose accepted socket talks to ``client_port``."""
    for child in children:
        for conn in child.net_connections(kind="tcp"):
            if (
                conn.laddr.port == port
                and conn.raddr
                and conn.raddr.port == client_port
            ):
                return child.pid
    raise AssertionError(f"no child holds the connection from port {client_port}")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_webhook_reaches_tabs_held_by_both_processes(
    web: tuple[int, subprocess.Popen[bytes]], post_to: Callable[..., dict[str, Any]]
) -> None:
    port, process = web
    children = _children(process)
    assert len(children) == 2
    cookie = session_cookie(create_user(is_staff=True))

    async def scenario() -> tuple[set[int], list[str]]:
        headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
        uri = f"ws://127.0.0.1:{port}/ws/inbox/?after=0"
        sockets: list[Any] = []
        holders: set[int] = set()
        try:
            # Open tabs until each child holds at least one (bounded).
            while len(holders) < 2 and len(sockets) < 24:
                tab = await websockets.connect(uri, additional_headers=headers)
                sockets.append(tab)
                holders.add(_holder(children, port, tab.local_address[1]))
            await asyncio.sleep(0.3)
            texts = ["first 환불 to the pair", "second to the pair"]
            for text in texts:
                await asyncio.to_thread(post_to, f"http://127.0.0.1:{port}", text=text)
            seen = []
            for tab in sockets:
                frames = ""
                deadline = time.monotonic() + 10
                while not all(text in frames for text in texts):
                    remaining = deadline - time.monotonic()
                    assert remaining > 0, f"a tab missed a message: {frames[-300:]}"
                    frames += await asyncio.wait_for(tab.recv(), timeout=remaining)
                seen.append(frames)
            return holders, seen
        finally:
            for tab in sockets:
                await tab.close()

    holders, seen = asyncio.run(scenario())
    assert holders == {child.pid for child in children}
    assert all("first 환불 to the pair" in frames for frames in seen)


def _healthz(port: int) -> int:
    with requests.Session() as http:
        http.trust_env = False
        return http.get(f"http://127.0.0.1:{port}/healthz", timeout=20).status_code


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_killed_child_is_replaced_and_sigterm_stops_them_all(
    web: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, process = web
    first = _children(process)
    assert len(first) == 2
    first[0].kill()
    first[0].wait(timeout=5)
    # Connections the kernel hands to the dead child's socket wait in its
    # queue for the replacement: none is refused. (Each request is a new
    # connection from a new port, so they land on both sockets.)
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: _healthz(port), range(12)))
    assert answers == [200] * 12

    deadline = time.monotonic() + 15
    while True:
        now = {child.pid for child in _children(process, wait=0)}
        if len(now) == 2 and first[0].pid not in now:
            break
        assert time.monotonic() < deadline, f"not replaced: {now}"
        time.sleep(0.2)
    assert first[1].pid in now  # the other one kept running
    wait_until_healthy(port)

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert not any(psutil.pid_exists(pid) for pid in now)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
