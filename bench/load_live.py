"""Live-latency load process: N logged-in websockets, webhooks at a fixed rate.

``python -m bench.load_live CONFIG OUT``. One asyncio process holds every
client. Each message sent carries a unique marker (``bmNNNNNNx``) in its text;
the conversation row in the pushed frame shows it in the preview, so a client
can tell which message a frame delivered and when.

``mode == "app"``: signed webhooks to the app, clients on ``/ws/inbox/``.
``mode == "raw"``: the baseline, ``group_send`` straight to the channel layer
of a payload the size of the app's average frame, clients on the bench's
forwarding consumer. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import websockets

from bench.loadstats import CpuWindow, read_frames

MARKER = re.compile(r"bm(\d{6})x")
SEQ = re.compile(r'id="live-seq" data-seq="(\d+)"')


@dataclass
class Client:
    index: int
    session: str
    seen: dict[int, float] = field(default_factory=dict)  # marker -> first arrival
    counts: dict[int, int] = field(default_factory=dict)
    frames: int = 0
    frame_bytes: int = 0
    last_seq: int = 0
    closed_early: str = ""
    catchup_new: int = 0
    catchup_dupes: int = 0
    connect_failed: int = 0

    def take(self, text: str, *, catchup: bool = False) -> None:
        now = time.perf_counter()
        self.frames += 1
        self.frame_bytes += len(text)
        if match := SEQ.search(text):
            self.last_seq = max(self.last_seq, int(match.group(1)))
        for marker in {int(m) for m in MARKER.findall(text)}:
            if marker in self.counts:
                self.counts[marker] += 1
                if catchup:
                    self.catchup_dupes += 1
            else:
                self.counts[marker] = 1
                self.seen[marker] = now
                if catchup:
                    self.catchup_new += 1


def ws_headers(config: dict[str, Any], session: str) -> dict[str, str]:
    return {"Origin": config["origin"], "Cookie": f"sessionid={session}"}


async def reader(
    client: Client, ws: Any, stop: asyncio.Event, *, catchup: bool = False
) -> None:
    take = lambda text: client.take(text, catchup=catchup)  # noqa: E731
    if closed := await read_frames(ws, stop, take):
        client.closed_early = closed


async def connect_all(
    config: dict[str, Any], clients: list[Client], path: str, after: dict[int, int]
) -> list[Any]:
    """Open every client's socket, at most 25 handshakes at a time.

    A handshake that fails is retried twice; a client that still has no socket
    gets ``None`` and is counted, not fatal.
    """
    gate = asyncio.Semaphore(25)
    failures = config.setdefault("connect_failures", [])
    sockets: list[Any] = [None] * len(clients)

    async def one(client: Client) -> None:
        url = f"{config['ws_base']}{path}"
        if client.index in after:
            url += f"?after={after[client.index]}"
        async with gate:
            for attempt in range(3):
                try:
                    sockets[client.index] = await websockets.connect(
                        url,
                        additional_headers=ws_headers(config, client.session),
                        open_timeout=30,
                        ping_interval=None,
                        max_size=None,
                        compression=None,
                    )
                    return
                except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
                    cause = exc.__cause__ or exc
                    failures.append(f"{type(exc).__name__}: {cause!r}"[:200])
                    await asyncio.sleep(0.5 * (attempt + 1))
            client.connect_failed += 1

    await asyncio.wait_for(asyncio.gather(*(one(c) for c in clients)), timeout=300)
    return sockets


def make_bodies(
    config: dict[str, Any],
) -> tuple[list[tuple[bytes, dict[str, str]]], list[int]]:
    """Signed bodies (warm-up first), and the chat each marker went to."""
    import django

    django.setup()
    from inbox.simulator import CUSTOMER_TEXTS, Chat, Simulator

    rng = random.Random(7)
    sim = Simulator(
        url="http://127.0.0.1/", secret=config["secret"], seed=7, scheme="openclaw"
    )
    platforms = ["telegram", "whatsapp", "slack", "discord", "webchat", "signal"]
    chats = [
        Chat(rng.choice(platforms), f"Live {i}", f"9{i:08d}")
        for i in range(config["chats"])
    ]
    bodies = []
    # First one message per chat (warm-up, creates the conversations), then the run.
    plan = [(None, chat) for chat in chats] + [
        (i, rng.choice(chats)) for i in range(config["messages"])
    ]
    for n, (marker, chat) in enumerate(plan):
        text = rng.choice(CUSTOMER_TEXTS)
        if marker is not None:
            text = f"bm{marker:06d}x {text}"
        payload = sim.message(chat, text=text)
        payload["data"]["messageId"] = f"live-{config['run']}-{n}"
        bodies.append(sim.signed(payload))
    chat_of = [chats.index(chat) for marker, chat in plan if marker is not None]
    return bodies, chat_of


def current_seq() -> int:
    from django.db import connections

    from inbox.models import Activity

    seq = Activity.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    connections.close_all()
    return seq


async def run(config: dict[str, Any]) -> dict[str, Any]:
    mode = config["mode"]
    clients = [
        Client(i, s) for i, s in enumerate(config["sessions"][: config["clients"]])
    ]
    statuses: dict[str, int] = {}
    sent_at: dict[int, float] = {}
    answered_ms: list[float] = []  # webhook sent -> its HTTP answer
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=32),
        timeout=aiohttp.ClientTimeout(total=30),
    )
    layer = None
    chat_of: list[int] | None = None
    try:
        if mode == "app":
            bodies, chat_of = make_bodies(config)
            warmup, bodies = bodies[: config["chats"]], bodies[config["chats"] :]
            for body, headers in warmup:
                async with http.post(
                    config["webhook_url"], data=body, headers=headers
                ) as r:
                    await r.read()
            await asyncio.sleep(0.5)
            start_seq = await asyncio.to_thread(current_seq)
            path = "/ws/inbox/"
            after = {c.index: start_seq for c in clients}
        else:
            if config.get("layer") == "core":
                from channels_redis.core import RedisChannelLayer

                layer = RedisChannelLayer(
                    hosts=[config["redis_url"]],
                    prefix=config["channels_prefix"],
                    capacity=1000,
                    expiry=30,
                )
            else:
                from channels_redis.pubsub import RedisPubSubChannelLayer

                layer = RedisPubSubChannelLayer(
                    hosts=[config["redis_url"]], prefix=config["channels_prefix"]
                )
            path, after, start_seq = "/ws/bench-raw/", {}, 0

        connect_started = time.perf_counter()
        sockets = await connect_all(config, clients, path, after)
        connect_s = time.perf_counter() - connect_started
        initial_failed = sum(1 for ws in sockets if ws is None)
        stop = asyncio.Event()
        readers = [
            asyncio.ensure_future(reader(c, ws, stop))
            for c, ws in zip(clients, sockets, strict=True)
            if ws is not None
        ]
        await asyncio.sleep(1.0)  # the consumers' connect-time catch-up settles

        async def post(marker: int) -> None:
            body, headers = bodies[marker]
            sent_at[marker] = time.perf_counter()
            try:
                async with http.post(
                    config["webhook_url"], data=body, headers=headers
                ) as r:
                    await r.read()
                    status = str(r.status)
                answered_ms.append((time.perf_counter() - sent_at[marker]) * 1000)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            statuses[status] = statuses.get(status, 0) + 1

        padding = "x" * max(config.get("raw_bytes", 0) - 120, 0)

        async def raw(marker: int) -> None:
            text = (
                f'<div id="live-seq" data-seq="{marker}" hx-swap-oob="true"></div>'
                f'<li id="bench-{marker}">bm{marker:06d}x {padding}</li>'
            )
            sent_at[marker] = time.perf_counter()
            await layer.group_send("bench-raw", {"type": "bench.forward", "text": text})
            statuses["sent"] = statuses.get("sent", 0) + 1

        send = post if mode == "app" else raw
        window = CpuWindow(config["server_pid"])
        tasks = []
        t0 = time.perf_counter()
        interval = 1.0 / config["rate"]
        late = 0
        for marker in range(config["messages"]):
            delay = t0 + marker * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -interval:
                late += 1
            tasks.append(asyncio.ensure_future(send(marker)))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=180)
        send_s = time.perf_counter() - t0
        # Frames may trail the last webhook (gap grace, queues): wait until no
        # frame has arrived for 3 s, at least ``drain`` and at most 30 s.
        drain_started = time.perf_counter()
        await asyncio.sleep(config["drain"])
        while time.perf_counter() - drain_started < 30:
            before_frames = sum(c.frames for c in clients)
            await asyncio.sleep(3.0)
            if sum(c.frames for c in clients) == before_frames:
                break
        drain_s = time.perf_counter() - drain_started
        cpu = window.finish()
        stop.set()
        await asyncio.gather(*readers)
        before = snapshot(clients, config["messages"], chat_of)
        if mode == "app":
            final_seq = await asyncio.to_thread(current_seq)
            before["sequence_behind"] = sum(
                max(final_seq - c.last_seq, 0) for c in clients
            )
            before["clients_behind"] = sum(1 for c in clients if c.last_seq < final_seq)
        latencies = [
            (t - sent_at[m]) * 1000
            for c in clients
            for m, t in c.seen.items()
            if m in sent_at
        ]
        frames = sum(c.frames for c in clients)
        frame_bytes = sum(c.frame_bytes for c in clients)

        # Reconnect every client from its last applied sequence number, as a
        # browser does, and see what the replay adds.
        catchup: dict[str, Any] = {}
        if mode == "app":
            await close_all(sockets)
            resume = {c.index: c.last_seq for c in clients}
            sockets = await connect_all(config, clients, path, resume)
            stop = asyncio.Event()
            readers = [
                asyncio.ensure_future(reader(c, ws, stop, catchup=True))
                for c, ws in zip(clients, sockets, strict=True)
                if ws is not None
            ]
            await asyncio.sleep(config["catchup_wait"])
            stop.set()
            await asyncio.gather(*readers)
            final_seq = await asyncio.to_thread(current_seq)
            catchup = snapshot(clients, config["messages"], chat_of) | {
                # Exact coverage: each frame carries the tab's high-water mark
                # (every number at or below it applied), so a tab is behind by
                # the last sequence number minus its mark. Markers can undercount
                # because a catch-up frame keeps only a row's newest state.
                "sequence_behind": sum(max(final_seq - c.last_seq, 0) for c in clients),
                "clients_behind": sum(1 for c in clients if c.last_seq < final_seq),
                "recovered": sum(c.catchup_new for c in clients),
                "replayed_duplicates": sum(c.catchup_dupes for c in clients),
                "reconnect_failed": sum(1 for ws in sockets if ws is None),
            }
        await close_all(sockets)
    finally:
        await http.close()
        if layer is not None:
            await layer.flush()

    return {
        "mode": mode,
        "clients": len(clients),
        "messages": config["messages"],
        "rate": config["rate"],
        "connect_s": round(connect_s, 2),
        "send_s": round(send_s, 2),
        "late_sends": late,
        "drain_s": round(drain_s, 1),
        "statuses": statuses,
        "start_seq": start_seq,
        "latencies_ms": latencies,
        "webhook_answer_ms": sorted(answered_ms),
        "frames": frames,
        "avg_frame_bytes": frame_bytes / frames if frames else 0,
        "before_catchup": before,
        "after_catchup": catchup,
        "closed_early": sum(1 for c in clients if c.closed_early),
        "connect_failed": initial_failed,
        "connect_retries": config.get("connect_failures", [])[:20],
        "connect_retry_count": len(config.get("connect_failures", [])),
    } | cpu


async def close_all(sockets: list[Any]) -> None:
    async def close(ws: Any) -> None:
        if ws is not None:
            await ws.close()

    await asyncio.wait_for(asyncio.gather(*(close(ws) for ws in sockets)), timeout=60)


def snapshot(
    clients: list[Client], messages: int, chat_of: list[int] | None
) -> dict[str, Any]:
    """Markers each client never saw, split in two.

    A row shows its conversation's newest message only, so when two messages
    of one chat reach a tab in the same frame (a catch-up, a gap filled) the
    older marker is never on screen: **superseded**, not lost, if the client
    saw a later marker of the same chat. The raw baseline has no chats.
    """
    lost, superseded = [], []
    for c in clients:
        missing = [m for m in range(messages) if m not in c.counts]
        newest: dict[int, int] = {}
        if chat_of is not None:
            for m in c.counts:
                if m < messages:
                    newest[chat_of[m]] = max(newest.get(chat_of[m], -1), m)
        later = [m for m in missing if chat_of and newest.get(chat_of[m], -1) > m]
        superseded.append(len(later))
        lost.append(len(missing) - len(later))
    dupes = [sum(n - 1 for n in c.counts.values() if n > 1) for c in clients]
    return {
        "lost": sum(lost),
        "clients_with_loss": sum(1 for n in lost if n),
        "superseded": sum(superseded),
        "duplicates": sum(dupes),
        "clients_with_duplicates": sum(1 for n in dupes if n),
        "expected": messages * len(clients),
    }


if __name__ == "__main__":
    config = json.loads(Path(sys.argv[1]).read_text())
    result = asyncio.run(run(config))
    Path(sys.argv[2]).write_text(json.dumps(result))
