"""Ingest load generator: signed deliveries at fixed concurrency, one server.

Run by ``bench.ingest`` as ``python -m bench.load_ingest CONFIG OUT`` in its
own process. Bodies are built and signed before the clock starts (payload
shapes from ``inbox.simulator``, signature from ``inbox.webhooks``), every
message id is unique so every request is a real store, and each step stops
at its deadline or when its bodies run out, whichever comes first.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import django

from bench.loadstats import CpuWindow


def make_requests(config: dict[str, Any]) -> list[tuple[bytes, dict[str, str]]]:
    django.setup()
    from inbox.simulator import CUSTOMERS, Chat, Simulator

    rng = random.Random(config["seed"])
    sim = Simulator(
        url="http://127.0.0.1/",
        secret=config["secret"],
        seed=config["seed"],
        scheme="openclaw",
    )
    platforms = ["telegram", "whatsapp", "slack", "discord", "webchat", "signal"]
    names = [name for _, name in CUSTOMERS]
    chats = [
        Chat(rng.choice(platforms), rng.choice(names), f"{config['run']}{i:06d}")
        for i in range(config["chats"])
    ]
    requests = []
    for i in range(config["count"]):
        chat = rng.choice(chats)
        payload = sim.message(chat, outbound=rng.random() < 0.4)
        # Unique per run and request: each delivery is a new message, never a duplicate.
        payload["data"]["messageId"] = f"{config['run']}-{i}"
        requests.append(sim.signed(payload))
    return requests


class Feed:
    def __init__(self, requests: list[tuple[bytes, dict[str, str]]]) -> None:
        self.requests = requests
        self.next = 0

    def take(self) -> tuple[bytes, dict[str, str]] | None:
        if self.next >= len(self.requests):
            return None
        item = self.requests[self.next]
        self.next += 1
        return item


async def step(
    session: aiohttp.ClientSession,
    url: str,
    feed: Feed,
    concurrency: int,
    duration: float,
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    deadline = time.perf_counter() + duration
    ran_out = False

    async def worker() -> None:
        nonlocal ran_out
        while time.perf_counter() < deadline:
            item = feed.take()
            if item is None:
                ran_out = True
                return
            body, headers = item
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            if status == "200":
                latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "latencies": latencies,
        "statuses": statuses,
        "elapsed": elapsed,
        "ran_out": ran_out,
    }


def summarize(raw: dict[str, Any], concurrency: int) -> dict[str, Any]:
    from bench.common import percentile

    lat = raw["latencies"]
    return {
        "concurrency": concurrency,
        "ok": len(lat),
        "statuses": raw["statuses"],
        "seconds": round(raw["elapsed"], 3),
        "rps": len(lat) / raw["elapsed"] if raw["elapsed"] else 0.0,
        "p50_ms": percentile(lat, 50) * 1000,
        "p90_ms": percentile(lat, 90) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "max_ms": max(lat) * 1000 if lat else float("nan"),
        "ran_out_of_bodies": raw["ran_out"],
    }


async def main(config: dict[str, Any]) -> dict[str, Any]:
    feed = Feed(make_requests(config))
    url = config["url"]
    timeout = aiohttp.ClientTimeout(total=30)
    results = []
    connector = aiohttp.TCPConnector(
        limit=max(config["concurrencies"]), force_close=False
    )
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await step(session, url, feed, 16, config["warmup"])
        for concurrency in config["concurrencies"]:
            # Let the pool and the connections grow to this concurrency unmeasured.
            await step(session, url, feed, concurrency, config["settle"])
            window = CpuWindow(config["server_pid"])
            raw = await step(session, url, feed, concurrency, config["duration"])
            results.append(summarize(raw, concurrency) | window.finish())
    return {"steps": results, "bodies_used": feed.next, "bodies": len(feed.requests)}


if __name__ == "__main__":
    config_path, out_path = sys.argv[1], sys.argv[2]
    config = json.loads(Path(config_path).read_text())
    result = asyncio.run(main(config))
    Path(out_path).write_text(json.dumps(result))
