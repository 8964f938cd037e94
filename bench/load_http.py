"""In-process CPU per request through each HTTP adapter (child of bench/http.py).

The same Django project and request (a GET that ends in a 404 page, or
``/healthz``), driven three ways with no network: Django's WSGI handler called
directly (the floor: what any adapter adds is measured against it), the app's
``core.asgi.http_application`` (RequestGuard + a2wsgi's thread pool), and
Django's own ASGI handler. CPU is the whole process's (every thread), per
request, at concurrency 1 and 16.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import django

django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from core.asgi import http_application  # noqa: E402


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


async def _asgi_call(app: Any, path: str) -> int:
    sent: list[dict[str, Any]] = []
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if given:
            await asyncio.sleep(3600)
        given = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope(path), receive, send)
    return sent[0]["status"]


def _wsgi_call(app: Any, path: str) -> int:
    status: list[str] = []
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    response = app(environ, lambda s, h, e=None: status.append(s))
    b"".join(response)
    response.close()
    return int(status[0].split()[0])


def measure(kind: str, path: str, count: int, concurrency: int) -> dict[str, Any]:
    wsgi = get_wsgi_application()
    apps = {"ours": http_application, "django-asgi": get_asgi_application()}

    async def run_asgi() -> list[int]:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> int:
            async with gate:
                return await _asgi_call(apps[kind], path)

        return await asyncio.gather(*(one() for _ in range(count)))

    def run() -> list[int]:
        if kind == "wsgi":
            return [_wsgi_call(wsgi, path) for _ in range(count)]
        return asyncio.run(run_asgi())

    run()  # warm: imports, connections, template caches
    cpu, wall = time.process_time(), time.perf_counter()
    statuses = run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "adapter": kind,
        "path": path,
        "concurrency": concurrency if kind != "wsgi" else 1,
        "requests": count,
        "statuses": sorted(set(statuses)),
        "cpu_ms_per_request": 1000 * cpu / count,
        "wall_ms_per_request": 1000 * wall / count,
    }


if __name__ == "__main__":
    config = json.loads(Path(sys.argv[1]).read_text())
    rows = []
    for path in config["paths"]:
        for concurrency in config["concurrencies"]:
            for kind in ("wsgi", "ours", "django-asgi"):
                if kind == "wsgi" and concurrency != config["concurrencies"][0]:
                    continue
                rows.append(measure(kind, path, config["count"], concurrency))
    Path(sys.argv[2]).write_text(json.dumps({"rows": rows}))
