"""Replies load process: logged-in agents click "Send" and watch for "sent".

``python -m bench.load_replies CONFIG OUT``. One asyncio process holds every
agent: its own session (cookie + CSRF token, as a browser sends them), its own
conversation (made by a signed webhook) and a websocket on
``/ws/inbox/?conversation=<pk>&after=<seq>``. Every reply's text starts with a
unique marker (``rpNNNNNNx``; ``bpNNNNNNx`` for the baseline, ``fpNNNNNNx``
for the Django floor) that the thread
item shows, so a frame tells which reply reached which state, and the gateway
simulator's receipts (written by ``bench.gateway_sim``) tell when it got there.

Times are ``time.time()``: the gateway process stamps its receipts with the
same clock. Every wait has a deadline; all traffic is to 127.0.0.1.

Also the shared pieces of ``bench.load_takeover``: agents with sessions, a
conversation made by webhook, and a barrier that releases requests at once.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import websockets

from bench.loadstats import CpuWindow, group_cpu, read_frames

T = TypeVar("T")

# A thread item as the consumer sends it: appended, or replaced in place.
THREAD_ITEM = re.compile(
    r'<li (?:hx-swap-oob="true" )?id="msg-(\d+)" class="([^"]*)">(.*?)</li>', re.S
)
STATE = re.compile(r"\bstate-(\w+)")
MARKER = re.compile(r"\b([rbf]p\d{6}x)")
TEXTS = [
    "Thanks for waiting, I've checked your order and it ships today.",
    "확인해 보니 오늘 발송됩니다. 기다려 주셔서 감사합니다.",
    "I've refunded the second charge; it shows in 3-5 business days.",
    "주소 변경 완료했습니다. 다른 문의 있으시면 말씀해 주세요.",
]
SENT_STATES = ("sent", "delivered")


# --- shared with load_takeover ----------------------------------------------------


def make_agents(count: int, prefix: str) -> list[dict[str, Any]]:
    """``count`` users with the agent role, each with one logged-in session.

    No password (hashing one costs ~1 s here); the session is written the way
    ``login()`` writes it, as bench.tasks.staff_sessions does.
    """
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from core.testing import create_user

    agents = []
    for i in range(count):
        user = create_user(username=f"{prefix}{i:02d}", password=None, role="agent")
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        agents.append(
            {
                "username": user.username,
                "user_id": user.pk,
                "session": store.session_key,
            }
        )
    return agents


def browser_headers(origin: str, session: str) -> dict[str, str]:
    """What htmx sends with a POST: session and CSRF cookies, the token, HX-Request.

    The CSRF token is the cookie's secret itself, which Django accepts as it
    accepts the masked form a page would embed.
    """
    token = secrets.token_hex(16)
    return {
        "Cookie": f"sessionid={session}; csrftoken={token}",
        "X-CSRFToken": token,
        "HX-Request": "true",
        "Origin": origin,
    }


def conversation_webhooks(
    secret: str, run: str, count: int, text: str
) -> list[tuple[str, bytes, dict[str, str]]]:
    """Signed first messages of ``count`` new chats: (session id, body, headers)."""
    from inbox.simulator import Chat, Simulator

    sim = Simulator(url="http://127.0.0.1/", secret=secret, seed=11, scheme="openclaw")
    bodies = []
    for i in range(count):
        chat = Chat("telegram", f"Customer {run}{i}", f"7{i:08d}")
        payload = sim.message(chat, text=text)
        payload["data"]["messageId"] = f"{run}-first-{i}"
        bodies.append((chat.session_id, *sim.signed(payload)))
    return bodies


async def make_conversations(
    http: aiohttp.ClientSession, url: str, secret: str, run: str, count: int
) -> list[tuple[str, int]]:
    """``count`` conversations made by signed webhooks: (session id, pk), in order."""
    bodies = conversation_webhooks(secret, run, count, "Hi, where is my order?")
    for _, body, headers in bodies:
        async with http.post(url, data=body, headers=headers) as response:
            await response.read()
            if response.status >= 300:
                raise RuntimeError(f"webhook answered {response.status}")
    keys = [key for key, _, _ in bodies]
    pks = await asyncio.to_thread(conversation_pks, keys)
    return [(key, pks[key]) for key in keys]


def conversation_pks(keys: list[str]) -> dict[str, int]:
    from django.db import connections

    from inbox.models import Conversation

    found = dict(
        Conversation.objects.filter(session_id__in=keys).values_list("session_id", "pk")
    )
    connections.close_all()
    return found


def current_seq() -> int:
    from django.db import connections

    from inbox.models import Activity

    seq = Activity.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    connections.close_all()
    return seq


async def at_once(factories: list[Callable[[], Awaitable[T]]]) -> list[T]:
    """Start every request together: each waits on one gate, then the gate opens."""
    gate = asyncio.Event()

    async def one(factory: Callable[[], Awaitable[T]]) -> T:
        await gate.wait()
        return await factory()

    tasks = [asyncio.ensure_future(one(f)) for f in factories]
    await asyncio.sleep(0)  # every task reaches the gate
    gate.set()
    return await asyncio.gather(*tasks)


# --- the replies benchmark ---------------------------------------------------------


@dataclass
class Agent:
    index: int
    username: str
    session: str
    conversation: int
    session_key: str
    headers: dict[str, str]
    # marker -> state -> first time a frame showed the reply in that state
    shown: dict[str, dict[str, float]] = field(default_factory=dict)
    msg_pk: dict[str, int] = field(default_factory=dict)
    waiters: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    frames: int = 0
    closed_early: str = ""

    def take(self, text: str) -> None:
        now = time.time()
        self.frames += 1
        for item in THREAD_ITEM.finditer(text):
            state = STATE.search(item.group(2))
            marker = MARKER.search(item.group(3))
            if state is None or marker is None:
                continue
            key, name = marker.group(1), state.group(1)
            self.msg_pk.setdefault(key, int(item.group(1)))
            self.shown.setdefault(key, {}).setdefault(name, now)
            waiter = self.waiters.get(key)
            if name in SENT_STATES and waiter is not None and not waiter.done():
                waiter.set_result(now)


async def reader(agent: Agent, ws: Any, stop: asyncio.Event) -> None:
    if closed := await read_frames(ws, stop, agent.take):
        agent.closed_early = closed


class Run:
    def __init__(self, config: dict[str, Any], http: aiohttp.ClientSession) -> None:
        self.config = config
        self.http = http
        self.gateway = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64),
            timeout=aiohttp.ClientTimeout(total=30),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self.counter = 0
        self.records: list[dict[str, Any]] = []

    def _next(self, prefix: str) -> tuple[str, str]:
        n, self.counter = self.counter, self.counter + 1
        marker = f"{prefix}{n:06d}x"
        return marker, f"{marker} {TEXTS[n % len(TEXTS)]}"

    def _record(
        self, kind: str, prefix: str, agent: Agent, phase: str, round_: int
    ) -> tuple[dict[str, Any], str]:
        marker, text = self._next(prefix)
        record = {
            "kind": kind,
            "phase": phase,
            "round": round_,
            "agent": agent.index,
            "marker": marker,
        }
        return record, text

    async def _post(
        self, http: aiohttp.ClientSession, record: dict[str, Any], url: str, **kw: Any
    ) -> None:
        """POST, stamping ``click`` and ``answered`` and the status on ``record``."""
        record["click"] = time.time()
        try:
            async with http.post(url, **kw) as response:
                await response.read()
                record["status"] = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            record["status"] = type(exc).__name__
        record["answered"] = time.time()

    async def reply(self, agent: Agent, phase: str, round_: int) -> dict[str, Any]:
        """Click "Send" as htmx does; wait (bounded) for the "sent" fragment."""
        record, text = self._record("ours", "rp", agent, phase, round_)
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        agent.waiters[record["marker"]] = waiter
        url = f"{self.config['base_url']}/inbox/c/{agent.conversation}/reply/"
        await self._post(
            self.http, record, url, data={"text": text}, headers=agent.headers
        )
        if record["status"] == 200:
            remaining = record["click"] + self.config["sent_timeout"] - time.time()
            try:
                await asyncio.wait_for(asyncio.shield(waiter), max(remaining, 0.01))
            except TimeoutError:
                pass
        self.records.append(record)
        return record

    async def direct(self, agent: Agent, phase: str, round_: int) -> dict[str, Any]:
        """The baseline: the same send, straight to the gateway simulator's API."""
        record, text = self._record("base", "bp", agent, phase, round_)
        url = (
            f"{self.config['gateway_url']}/api/sessions/"
            f"{quote(agent.session_key, safe='')}/messages"
        )
        headers = {
            "Authorization": f"Bearer {self.config['gateway_token']}",
            "Idempotency-Key": f"bench-base-{record['marker']}",
            "Accept": "application/json",
        }
        payload = {"text": text, "attachments": []}
        await self._post(self.gateway, record, url, json=payload, headers=headers)
        self.records.append(record)
        return record

    async def floor(self, agent: Agent, phase: str, round_: int) -> dict[str, Any]:
        """The Django floor: the agent's session POSTs to a view that checks it,
        does one INSERT and sends to the gateway inside the request."""
        record, text = self._record("floor", "fp", agent, phase, round_)
        url = f"{self.config['base_url']}/bench/reply-floor/"
        data = {"text": text, "session": agent.session_key}
        await self._post(self.http, record, url, data=data, headers=agent.headers)
        self.records.append(record)
        return record

    async def rounds(self, agents: list[Agent], phase: str, count: int) -> None:
        """Per round: every agent clicks at once and waits for "sent"; then the
        baseline and the Django floor, same agents, same moment-of-start, same
        texts' length."""
        settle = self.config["settle"]
        for round_ in range(count):
            for step in (self.reply, self.direct, self.floor):
                await at_once([partial(step, a, phase, round_) for a in agents])
                await asyncio.sleep(settle)


def delivery_states() -> dict[str, Any]:
    from django.db import connections
    from django.db.models import Count

    from inbox.models import Message

    replies = Message.objects.filter(author=Message.Author.AGENT)
    states = dict(
        replies.values_list("delivery_state").annotate(n=Count("pk")).order_by()
    )
    result = {
        "states": states,
        "replies": replies.count(),
        "attempted_more_than_once": replies.filter(attempts__gt=1).count(),
    }
    connections.close_all()
    return result


async def run(config: dict[str, Any]) -> dict[str, Any]:
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64),
        timeout=aiohttp.ClientTimeout(total=60),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    runner = Run(config, http)
    sockets: list[Any] = []
    try:
        people = await asyncio.to_thread(
            make_agents, config["agents"], f"bench-agent-{config['run']}-"
        )
        chats = await make_conversations(
            http, config["webhook_url"], config["secret"], config["run"], len(people)
        )
        agents = [
            Agent(
                index=i,
                username=person["username"],
                session=person["session"],
                conversation=pk,
                session_key=key,
                headers=browser_headers(config["origin"], person["session"]),
            )
            for i, (person, (key, pk)) in enumerate(zip(people, chats, strict=True))
        ]
        # Each agent takes over their conversation first, so the measured
        # replies do not include the takeover a first reply implies.
        taken = await asyncio.gather(*(take_over(http, config, a) for a in agents))
        if any(status != 200 for status in taken):
            raise RuntimeError(f"take-over answered {sorted(set(taken))}")

        seq = await asyncio.to_thread(current_seq)
        for agent in agents:
            url = (
                f"{config['ws_base']}/ws/inbox/?conversation={agent.conversation}"
                f"&after={seq}"
            )
            sockets.append(
                await websockets.connect(
                    url,
                    additional_headers={
                        "Origin": config["origin"],
                        "Cookie": f"sessionid={agent.session}",
                    },
                    open_timeout=30,
                    ping_interval=None,
                    max_size=None,
                    compression=None,
                )
            )
        stop = asyncio.Event()
        readers = [
            asyncio.ensure_future(reader(a, ws, stop))
            for a, ws in zip(agents, sockets, strict=True)
        ]
        await asyncio.sleep(1.0)  # connect-time catch-up and presence settle

        # Warm-up (not measured; counted by the exactly-once check): the
        # worker has just booted, keep-alive connections open.
        warm_started = time.time()
        await runner.rounds(agents, "warmup", 1)
        warmup_s = time.time() - warm_started

        await runner.rounds(agents[:1], "solo", config["solo_rounds"])

        window = CpuWindow(config["server_pid"])
        worker0 = group_cpu(config["worker_pgid"])
        gateway0 = group_cpu(config["gateway_pgid"])
        started = time.perf_counter()
        await runner.rounds(agents, "concurrent", config["rounds"])
        wall = time.perf_counter() - started
        cpu = window.finish()
        cpu["worker_cpu_pct"] = round(
            100 * (group_cpu(config["worker_pgid"]) - worker0) / wall, 1
        )
        cpu["gateway_cpu_pct"] = round(
            100 * (group_cpu(config["gateway_pgid"]) - gateway0) / wall, 1
        )

        # Late frames (a "sent" after its deadline) still count as shown.
        await asyncio.sleep(config["settle"] * 2)
        stop.set()
        await asyncio.gather(*readers)
        for ws in sockets:
            await asyncio.wait_for(ws.close(), timeout=10)
        states = await asyncio.to_thread(delivery_states)
    finally:
        await http.close()
        await runner.gateway.close()

    for record in runner.records:
        if record["kind"] == "ours":
            agent = agents[record["agent"]]
            record["shown"] = agent.shown.get(record["marker"], {})
            record["msg_pk"] = agent.msg_pk.get(record["marker"])
    return {
        "agents": len(agents),
        "usernames": [a.username for a in agents[:3]],
        "warmup_s": round(warmup_s, 1),
        "concurrent_wall_s": round(wall, 1),
        "records": runner.records,
        "frames": sum(a.frames for a in agents),
        "closed_early": sum(1 for a in agents if a.closed_early),
        "database": states,
    } | cpu


async def take_over(
    http: aiohttp.ClientSession, config: dict[str, Any], agent: Agent
) -> int:
    url = f"{config['base_url']}/inbox/c/{agent.conversation}/take-over/"
    async with http.post(url, headers=agent.headers) as response:
        await response.read()
        return response.status


if __name__ == "__main__":
    import django

    django.setup()
    config = json.loads(Path(sys.argv[1]).read_text())
    result = asyncio.run(run(config))
    Path(sys.argv[2]).write_text(json.dumps(result))
