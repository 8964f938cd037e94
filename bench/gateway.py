"""Benchmark: the gateway connector, in production mode (PostgreSQL + Redis).

1. **Throughput, same run, same machine.** The connector process
   (``manage.py openclaw_connect``) reads a simulated gateway's live feed:
   ``N`` customer rows pushed as fast as the gateway can write them; timed
   until every one is in the database. The baseline is the signed-webhook path
   (one daphne, the same storing function) at concurrency 16, through the
   ingest benchmark's load generator.
2. **Record → screen over the real gateway.** ``openclaw@2026.9.6`` (stub
   model, fake Telegram, the inbox plugin); customers write at 20 messages/s
   over 200 chats, first with the bot answering each, then into chats the
   inbox holds (the plugin skips the agent: the gateway only records). One
   logged-in staff websocket on ``/ws/inbox/`` notes when each message's
   marker first reaches it. Latency = that time minus the gateway's own
   ``recordTimestampMs`` for the row (read back with ``chat.history``), and,
   end to end, minus the moment the customer wrote. A row the gateway
   recorded that never reached the screen fails the run.

Only 127.0.0.1 is contacted; every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from typing import Any

import psycopg
import websockets
from websockets.sync.client import connect as sync_connect

from bench import common
from bench.common import fmt, latency_stats, log, ratio
from inbox import protocol

TOKEN = "bench-gateway-token"
RATE = 20.0
CHATS = 200
MARKER = re.compile(r"bm(\d{6})x")


def run(quick: bool) -> dict[str, Any]:
    throughput = _throughput(quick)
    latency = _latency(quick)
    summary = {
        "connector_events_per_s": throughput["connector_eps"],
        "webhook_events_per_s_c16": throughput["webhook_eps"],
        "connector_vs_webhook": ratio(
            throughput["connector_eps"], throughput["webhook_eps"]
        ),
        "phases": {
            name: {
                key: phase[key]
                for key in (
                    "messages",
                    "recorded",
                    "gateway_recorded_per_s",
                    "on_screen",
                    "record_to_screen",
                    "write_to_screen",
                )
            }
            for name, phase in latency.items()
        },
    }
    _print(summary)
    result = {"throughput": throughput, "latency": latency, "summary": summary}
    lost = sum(phase["recorded_not_shown"] for phase in latency.values())
    if lost:
        result["error"] = f"{lost} rows the gateway recorded never reached the screen"
    return result


# --- 1. throughput -------------------------------------------------------------------


def _count(table: str = "inbox_message") -> int:
    url = f"postgres://postgres@127.0.0.1:5432/{common.DB_NAME}"
    with psycopg.connect(url) as connection:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def _throughput(quick: bool) -> dict[str, Any]:
    from inbox.simulated_gateway import GatewayServer

    count = 600 if quick else 6_000
    common.reset_database()
    gateway = GatewayServer(port=common.free_port(), token=TOKEN).start()
    env = common.bench_env(
        OPENCLAW_GATEWAY_URL=gateway.url, OPENCLAW_GATEWAY_TOKEN=TOKEN
    )
    try:
        with common.service(
            "connector", [common.PYTHON, "manage.py", "openclaw_connect"], env=env
        ):
            _wait(lambda: gateway.subscribers == 1, 60, "the connector")
            started = time.perf_counter()
            for n in range(count):
                gateway.customer_writes(
                    f"agent:main:telegram:direct:{500_000 + n % 500}",
                    f"throughput {n}",
                    name=f"Customer {n % 500}",
                    bot=False,
                )
            written = time.perf_counter() - started
            _wait(lambda: _count() >= count, 600, f"{count} rows stored")
            elapsed = time.perf_counter() - started
    finally:
        gateway.stop()
    connector_eps = count / elapsed
    log(
        f"gateway: connector stored {count} rows in {elapsed:.1f} s "
        f"({fmt(connector_eps)}/s; the simulator wrote them in {written:.1f} s)"
    )
    common.flush_redis()
    duration = 2.0 if quick else 10.0
    with common.daphne("gateway-webhook") as server:
        config = {
            "url": server.url + "/api/openclaw/webhook/",
            "server_pid": server.pid,
            "secret": common.WEBHOOK_SECRET,
            "seed": 4242,
            "run": "gw",
            "chats": 500,
            "count": 8_000 if quick else 40_000,
            "concurrencies": [16],
            "warmup": 1.0 if quick else 3.0,
            "settle": 0.5,
            "duration": duration,
        }
        step = common.load("load_ingest", config, timeout=300)["steps"][0]
    log(
        f"gateway: webhook path at c=16 {fmt(step['rps'])} req/s "
        f"(p50 {fmt(step['p50_ms'])} ms, statuses {step['statuses']})"
    )
    return {
        "rows": count,
        "connector_s": round(elapsed, 2),
        "connector_eps": round(connector_eps, 1),
        "webhook_eps": step["rps"],
        "webhook_step": step,
    }


# --- 2. record → screen over the real gateway ----------------------------------------


class Screen:
    """One staff websocket on /ws/inbox/: when each marker first arrived."""

    def __init__(self, url: str, origin: str, session: str) -> None:
        self.url, self.origin, self.session = url, origin, session
        self.seen: dict[int, float] = {}
        self.frames = 0
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._read())

    async def _read(self) -> None:
        headers = {"Origin": self.origin, "Cookie": f"sessionid={self.session}"}
        async with websockets.connect(
            self.url, additional_headers=headers, max_size=None, compression=None
        ) as ws:
            self.ready.set()
            while not self.stop.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                now = time.time()
                self.frames += 1
                for marker in {int(m) for m in MARKER.findall(str(text))}:
                    self.seen.setdefault(marker, now)


def _rpc(gateway: Any, calls: list[tuple[str, dict[str, Any]]]) -> list[dict]:
    """Operator calls on one socket (the loopback backend path); their payloads."""
    payloads = []
    with sync_connect(gateway.ws_url, compression=None, max_size=None) as ws:
        challenge = protocol.parse_frame(ws.recv(timeout=10))
        request_id, frame = protocol.request(
            "connect",
            protocol.connect_params(challenge["payload"], token=gateway.token),
        )
        ws.send(frame)
        while protocol.parse_frame(ws.recv(timeout=10)).get("id") != request_id:
            pass
        for method, params in calls:
            request_id, frame = protocol.request(method, params)
            ws.send(frame)
            while True:
                answer = protocol.parse_frame(ws.recv(timeout=60))
                if answer.get("id") == request_id:
                    break
            payloads.append(protocol.result(method, answer))
    return payloads


def _record_times(gateway: Any, keys: list[str]) -> dict[int, float]:
    """``recordTimestampMs`` of each marked customer row, from ``chat.history``."""
    times: dict[int, float] = {}
    calls = [("chat.history", {"sessionKey": key, "limit": 1000}) for key in keys]
    for answer in _rpc(gateway, calls):
        for message in answer.get("messages") or ():
            if message.get("role") != "user":
                continue
            text, _ = protocol.content_text(message.get("content"))
            stamp = (message.get("__openclaw") or {}).get("recordTimestampMs")
            for marker in MARKER.findall(text):
                if isinstance(stamp, (int, float)):
                    times[int(marker)] = stamp / 1000
    return times


def _latency(quick: bool) -> dict[str, Any]:
    """Two phases on one real gateway: the bot answering every message, then
    the same rate into human-owned chats (the inbox plugin holds them: the
    gateway only records), which isolates what the inbox adds."""
    from inbox.devgateway import RealGateway

    duration = 5.0 if quick else 20.0
    common.reset_database()
    gateway = RealGateway(
        token=TOKEN, plugin_paths=[common.ROOT / "openclaw-plugin"], log=lambda _: None
    ).start()
    phases = {}
    try:
        env = common.bench_env(
            OPENCLAW_GATEWAY_URL=gateway.ws_url, OPENCLAW_GATEWAY_TOKEN=TOKEN
        )
        session = common.task("staff_sessions", "1")["sessions"][0]
        extra = {
            "OPENCLAW_GATEWAY_URL": gateway.ws_url,
            "OPENCLAW_GATEWAY_TOKEN": TOKEN,
        }
        with (
            common.daphne("gateway-app", **extra) as server,
            common.service(
                "connector", [common.PYTHON, "manage.py", "openclaw_connect"], env=env
            ),
        ):
            _wait(
                lambda: _count("inbox_gatewaylink WHERE is_connected") == 1,
                60,
                "the connector",
            )
            for phase, first_chat, held in (
                ("bot_answers", 700_000_000, False),
                ("human_owned", 710_000_000, True),
            ):
                keys = [
                    f"agent:main:telegram:direct:{first_chat + c}" for c in range(CHATS)
                ]
                if held:
                    owners = [{"sessionKey": key, "owner": "bench"} for key in keys]
                    _rpc(gateway, [("inbox.takeover.sync", {"sessions": owners})])
                phases[phase] = _phase(
                    gateway, server, session, first_chat, duration, keys
                )
                phases[phase]["model_calls_total"] = len(gateway.model.calls)
    finally:
        gateway.stop()
    return phases


def _phase(
    gateway: Any,
    server: common.Server,
    session: str,
    first_chat: int,
    duration: float,
    keys: list[str],
) -> dict[str, Any]:
    """Customers write at RATE for ``duration``; when each reaches the screen.

    The gateway may record slower than customers write: after the writer stops
    it is given until it has recorded everything (or records nothing new for
    15 s, at most 5 minutes), then the screen until it shows every row
    recorded (at most 30 s more). Only then is a recorded row that never
    reached the screen counted as lost.
    """
    messages = int(RATE * duration)
    offset = first_chat % 1_000_000  # markers unique across phases
    screen = Screen(f"ws://{common.HOST}:{server.port}/ws/inbox/", server.url, session)
    screen.thread.start()
    if not screen.ready.wait(30):
        raise RuntimeError("the staff websocket did not connect")
    time.sleep(1.0)
    written: dict[int, float] = {}
    log(f"gateway: real gateway, {RATE:.0f} msg/s for {duration:.0f} s")
    started = time.monotonic()
    for n in range(messages):
        time.sleep(max(0.0, started + n / RATE - time.monotonic()))
        marker = offset + n
        written[marker] = time.time()
        gateway.telegram.customer(
            first_chat + n % CHATS, f"bench bm{marker:06d}x", name=f"Bench {n % CHATS}"
        )
    lateness = time.monotonic() - (started + messages / RATE)
    recorded: dict[int, float] = {}
    last_growth = time.monotonic()
    deadline = time.monotonic() + 300
    while len(recorded) < messages and time.monotonic() < deadline:
        time.sleep(5.0)
        now = _record_times(gateway, keys)
        if len(now) > len(recorded):
            last_growth = time.monotonic()
        recorded = now
        if time.monotonic() - last_growth > 15:
            break
    recording_s = time.monotonic() - started
    deadline = time.monotonic() + 30
    while set(recorded) - set(screen.seen) and time.monotonic() < deadline:
        time.sleep(0.2)
    screen.stop.set()
    screen.thread.join(5)
    seen = {m: t for m, t in screen.seen.items() if m in written}
    log(
        f"gateway: {len(recorded)}/{messages} recorded by the gateway in "
        f"{recording_s:.0f} s, {len(seen)} on screen, writer late by {lateness:.2f} s"
    )
    return {
        "rate": RATE,
        "duration_s": duration,
        "messages": messages,
        "on_screen": len(seen),
        "writer_late_s": round(lateness, 2),
        "gateway_recorded_per_s": round(len(recorded) / recording_s, 1),
        "frames": screen.frames,
        "recorded": len(recorded),
        "record_to_screen": latency_stats(
            [(seen[m] - recorded[m]) * 1000 for m in seen if m in recorded]
        ),
        "write_to_screen": latency_stats([(seen[m] - written[m]) * 1000 for m in seen]),
        # Recorded by the gateway but never on screen: lost by the inbox.
        "recorded_not_shown": len(set(recorded) - set(seen)),
    }


def _print(summary: dict[str, Any]) -> None:
    print("\n== gateway connector ==")
    print(
        f"throughput: connector {fmt(summary['connector_events_per_s'])} rows/s, "
        f"webhook path at c=16 {fmt(summary['webhook_events_per_s_c16'])} req/s, "
        f"ratio {fmt(summary['connector_vs_webhook'], 2)}x"
    )
    for name, phase in summary["phases"].items():
        print(
            f"{name}: {phase['messages']} written at {RATE:.0f}/s, "
            f"{phase['recorded']} recorded by the gateway "
            f"({phase['gateway_recorded_per_s']}/s), "
            f"{phase['on_screen']} on screen"
        )
        for what in ("record_to_screen", "write_to_screen"):
            stats = phase[what]
            print(
                f"  {what.replace('_', ' ')}: p50 {fmt(stats['p50_ms'])} ms, "
                f"p99 {fmt(stats['p99_ms'])} ms (n={stats['samples']})"
            )
