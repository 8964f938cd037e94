"""Inbox-at-scale load process: timed page GETs, then idle websockets.

``python -m bench.load_scale CONFIG OUT``. GETs run one at a time over one
keep-alive connection (server time as seen from loopback). Then ``sockets``
websockets are opened, held idle and the daphne's VmRSS read before, during
and after. Every loop is bounded.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import websockets

from bench.common import percentile, rss_kib


async def timed_gets(
    http: aiohttp.ClientSession, url: str, *, count: int, warmup: int
) -> dict[str, Any]:
    times: list[float] = []
    sizes = set()
    for i in range(warmup + count):
        started = time.perf_counter()
        async with http.get(url, allow_redirects=False) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {url} answered {response.status}")
        if i >= warmup:
            times.append((time.perf_counter() - started) * 1000)
            sizes.add(len(body))
    # Rows of the list, or items of a thread.
    rows = body.count(b'class="conversation status-') or body.count(b'class="message ')
    return {
        "requests": count,
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "p99_ms": percentile(times, 99),
        "max_ms": max(times),
        "bytes": max(sizes),
        "rows": rows,
    }


async def idle_sockets(config: dict[str, Any]) -> dict[str, Any]:
    pid = config["server_pid"]
    sessions = config["sessions"]
    rss_before = rss_kib(pid)
    gate = asyncio.Semaphore(25)
    sockets: list[Any] = []
    failures: list[str] = []

    async def one(i: int) -> None:
        headers = {
            "Origin": config["origin"],
            "Cookie": f"sessionid={sessions[i % len(sessions)]}",
        }
        async with gate:
            for attempt in range(3):
                try:
                    ws = await websockets.connect(
                        config["ws_url"],
                        additional_headers=headers,
                        open_timeout=30,
                        ping_interval=None,
                        compression=None,
                    )
                    sockets.append(ws)
                    return
                except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
                    failures.append(
                        f"{type(exc).__name__}: {exc.__cause__ or exc!r}"[:160]
                    )
                    await asyncio.sleep(0.5 * (attempt + 1))

    started = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(one(i) for i in range(config["sockets"]))), 600
    )
    connect_s = time.perf_counter() - started
    await asyncio.sleep(config["hold"])
    rss_with = rss_kib(pid)
    open_now = sum(1 for ws in sockets if ws.state == websockets.protocol.State.OPEN)
    await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in sockets)), 120)
    await asyncio.sleep(2.0)
    rss_after = rss_kib(pid)
    connected = len(sockets)
    return {
        "sockets": config["sockets"],
        "connected": connected,
        "still_open_after_hold": open_now,
        "hold_s": config["hold"],
        "connect_s": round(connect_s, 1),
        "connect_failures": len(failures),
        "failure_samples": failures[:5],
        "rss_before_kib": rss_before,
        "rss_with_sockets_kib": rss_with,
        "rss_after_close_kib": rss_after,
        "kib_per_socket": (rss_with - rss_before) / connected
        if connected
        else float("nan"),
    }


async def main(config: dict[str, Any]) -> dict[str, Any]:
    cookie = {"sessionid": config["sessions"][0]}
    result: dict[str, Any] = {"pages": {}}
    async with aiohttp.ClientSession(
        cookies=cookie,
        connector=aiohttp.TCPConnector(limit=1),
        timeout=aiohttp.ClientTimeout(total=60),
    ) as http:
        for label, path in config["pages"]:
            result["pages"][label] = await timed_gets(
                http,
                config["base"] + path,
                count=config["requests"],
                warmup=config["warmup"],
            ) | {"path": path}
    result["idle"] = await idle_sockets(config)
    return result


if __name__ == "__main__":
    config = json.loads(Path(sys.argv[1]).read_text())
    result = asyncio.run(main(config))
    Path(sys.argv[2]).write_text(json.dumps(result))
