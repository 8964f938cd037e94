"""The Procfile's web line: gunicorn supervising uvicorn workers on one port.

The tests run that very line (bound to 127.0.0.1) as production does
(PostgreSQL + Redis) and look at its workers from outside: which process
holds each websocket, what happens when one of them is killed, how it drains
on SIGTERM, whose forwarded address it believes, and how it refuses a body
too large to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
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

from core.testing import (
    conversation_row_held,
    create_user,
    encode,
    free_port,
    message_event,
    server_env,
    session_cookie,
    sign,
    wait_for_a_lock_wait,
    wait_until_healthy,
)

ROOT = Path(__file__).resolve().parents[2]


def web_line(port: int) -> list[str]:
    """The Procfile's ``web:`` command for ``port``, on loopback only."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            command = line.removeprefix("web:").replace("${PORT:-8000}", str(port))
            words = shlex.split(command.replace("0.0.0.0", "127.0.0.1"))
            # The venv's gunicorn, whatever PATH the tests run with.
            return [str(Path(sys.executable).parent / words[0]), *words[1:]]
    raise AssertionError("the Procfile has no web line")


@contextlib.contextmanager
def running(env: dict[str, str]) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    process = subprocess.Popen(
        web_line(port),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_healthy(port)
        yield port, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        finally:
            # Its own session: whatever is left of the group goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def test_the_procfile_web_line_is_gunicorn_with_uvicorn_workers() -> None:
    line = web_line(8000)
    assert Path(line[0]).name == "gunicorn"
    assert "core.asgi:application" in line
    from core import gunicorn

    assert gunicorn.worker_class == "core.gunicorn.Worker"
    assert gunicorn.workers >= 2


def embedded_env() -> dict[str, str]:
    """This environment without DATABASE_URL and REDIS_URL: the embedded default."""
    return {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")
    }


def test_the_embedded_default_is_sent_to_serve(tmp_path: Path) -> None:
    # One process's channel layer and no worker: that is manage.py serve's job.
    done = subprocess.run(
        web_line(free_port()),
        cwd=ROOT,
        env=embedded_env(),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert b"manage.py serve" in done.stderr


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    with running(server_env(tmp_path)) as served:
        yield served


def _children(
    process: subprocess.Popen[bytes], *, count: int = 2, wait: float = 10.0
) -> list[psutil.Process]:
    """The uvicorn workers, once there are ``count`` of them (or after ``wait``)."""
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
def test_a_webhook_reaches_tabs_held_by_both_workers(
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
            # Open tabs until each worker holds at least one (bounded). They
            # share one listening socket: the one that is free accepts.
            while len(holders) < 2 and len(sockets) < 40:
                tab = await websockets.connect(uri, additional_headers=headers)
                sockets.append(tab)
                holders.add(_holder(children, port, tab.local_address[1]))
                await asyncio.sleep(0.05)
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
def test_a_killed_worker_is_replaced_with_no_failed_request(
    web: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, process = web
    first = _children(process)
    assert len(first) == 2
    first[0].kill()
    first[0].wait(timeout=5)
    # The workers share the listening socket: the survivor takes every new
    # connection until the replacement is up. None is refused.
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


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sigterm_lets_a_request_in_flight_finish_then_stops_every_worker(
    web: tuple[int, subprocess.Popen[bytes]],
) -> None:

    from core.testing import post_webhook, session_key
    from inbox.models import Message

    port, process = web
    workers = {child.pid for child in _children(process)}
    session = session_key()
    post_webhook(message_event(session_id=session, text="first"))
    body = encode(message_event(session_id=session, text="in flight at SIGTERM"))
    with conversation_row_held(session) as release:
        with ThreadPoolExecutor(max_workers=1) as pool:
            answer = pool.submit(
                requests.post,
                f"http://127.0.0.1:{port}/api/openclaw/webhook/",
                data=body,
                headers={
                    "Content-Type": "application/json",
                    "X-OpenClaw-Signature": sign(body),
                },
                timeout=30,
            )
            wait_for_a_lock_wait()  # the webhook is inside the view, waiting
            process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert not answer.done(), "the request was cut off at SIGTERM"
            release.set()
            response = answer.result(timeout=20)
    assert response.status_code == 200, response.text
    assert Message.objects.filter(text="in flight at SIGTERM").count() == 1
    assert process.wait(timeout=20) == 0
    assert not any(psutil.pid_exists(pid) for pid in workers)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def _signed_post(port: int, text: str, forwarded_for: str) -> requests.Response:
    body = encode(message_event(text=text))
    return requests.post(
        f"http://127.0.0.1:{port}/api/openclaw/webhook/",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-OpenClaw-Signature": sign(body),
            "X-Forwarded-For": forwarded_for,
        },
        timeout=20,
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("allowed", "expected"),
    [
        ("192.0.2.10", "127.0.0.1"),  # we are not the proxy: the header is ignored
        ("127.0.0.1", "203.0.113.7"),  # we are: the client is who it names
    ],
)
def test_forwarded_for_is_believed_only_from_the_allowed_proxies(
    tmp_path: Path, allowed: str, expected: str
) -> None:
    from inbox.models import WebhookDelivery

    env = server_env(tmp_path) | {"FORWARDED_ALLOW_IPS": allowed}
    with running(env) as (port, _):
        response = _signed_post(port, "who sent this?", "203.0.113.7")
    assert response.status_code == 200, response.text
    delivery = WebhookDelivery.objects.get(outcome=WebhookDelivery.Outcome.STORED)
    assert delivery.source_ip == expected


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_huge_declared_body_is_refused_before_it_is_sent(
    web: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = web
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 314572800\r\n\r\n"
        )
        # Not one byte of the 300 MB is sent: the answer must come anyway.
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_serve_stops_on_ctrl_c_even_with_a_request_half_sent(tmp_path: Path) -> None:
    """The README's run command ends on Ctrl+C, worker and all, even while a
    view's thread waits for the rest of a request body from daphne's loop."""
    env = embedded_env() | {
        "SQLITE_PATH": str(tmp_path / "serve.sqlite3"),
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_healthy(port, timeout=60)
        half = socket.create_connection(("127.0.0.1", port))
        half.sendall(
            b"POST /api/openclaw/webhook/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a"'
        )
        time.sleep(1.0)  # the view's thread is now waiting for the rest
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        half.close()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
