"""Takeover load process: N logged-in agents click "Take over" on one conversation.

``python -m bench.load_takeover CONFIG OUT``. Per round all agents POST
``/inbox/c/<pk>/take-over/`` at once (released together by one gate); exactly
one must get 200 and every other 409 naming the winner. The winner hands the
conversation back to the bot, then the baseline round: the same agents GET
``/healthz`` at once on the same server. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from bench.load_replies import (
    at_once,
    browser_headers,
    current_seq,
    make_agents,
    make_conversations,
)
from bench.loadstats import CpuWindow


async def request(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    data: dict[str, str] | None = None,
) -> tuple[Any, float, str]:
    """(status, answer time in ms, body) of one request."""
    started = time.perf_counter()
    try:
        async with http.request(method, url, headers=headers, data=data) as response:
            body = await response.text()
            status: Any = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        body, status = "", type(exc).__name__
    return status, (time.perf_counter() - started) * 1000, body


class LockWaits:
    """Samples ``pg_stat_activity`` every 20 ms: do the requests queue on the lock?

    Counts, per phase, the samples in which some session of the bench database
    waited for a lock, and the most sessions seen waiting or active at once.
    Its own connection and thread; the queries cost PostgreSQL a little CPU in
    both phases alike.
    """

    QUERY = (
        "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'),"
        " count(*) FILTER (WHERE state = 'active')"
        " FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )

    def __init__(self) -> None:
        self.phase = ""
        self.stats: dict[str, dict[str, int]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            deadline = time.monotonic() + 3600
            while not self.stop.wait(0.02) and time.monotonic() < deadline:
                phase = self.phase  # read once: the event loop changes it
                if not phase:
                    continue
                waiting, active = conn.execute(self.QUERY).fetchone()
                row = self.stats.setdefault(
                    phase,
                    {
                        "samples": 0,
                        "with_lock_wait": 0,
                        "max_waiting": 0,
                        "max_active": 0,
                    },
                )
                row["samples"] += 1
                row["with_lock_wait"] += waiting > 0
                row["max_waiting"] = max(row["max_waiting"], waiting)
                row["max_active"] = max(row["max_active"], active)

    def __enter__(self) -> LockWaits:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def status_changes(conversation: int, after: int) -> int:
    from django.db import connections

    from inbox.models import Activity

    count = Activity.objects.filter(
        conversation_id=conversation,
        kind=Activity.Kind.STATUS_CHANGED,
        pk__gt=after,
    ).count()
    connections.close_all()
    return count


async def run(config: dict[str, Any]) -> dict[str, Any]:
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=config["agents"] + 8),
        timeout=aiohttp.ClientTimeout(total=60),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    base = config["base_url"]
    try:
        agents = await asyncio.to_thread(
            make_agents, config["agents"], f"bench-taker-{config['run']}-"
        )
        [(_, pk)] = await make_conversations(
            http, config["webhook_url"], config["secret"], config["run"], 1
        )
        headers = [browser_headers(config["origin"], a["session"]) for a in agents]
        take_url = f"{base}/inbox/c/{pk}/take-over/"
        back_url = f"{base}/inbox/c/{pk}/hand-back/"
        health_url = f"{base}/healthz"

        async def contend(round_: int) -> dict[str, Any]:
            answers = await at_once(
                [partial(request, http, "POST", take_url, h) for h in headers]
            )
            winners = [i for i, (status, _, _) in enumerate(answers) if status == 200]
            row: dict[str, Any] = {
                "round": round_,
                "answers_ms": [ms for _, ms, _ in answers],
                "span_ms": max(ms for _, ms, _ in answers),
                "statuses": _count(status for status, _, _ in answers),
                "winners": [agents[i]["username"] for i in winners],
                "winner_ms": [answers[i][1] for i in winners],
            }
            row["ok"] = False
            if len(winners) == 1:
                name = agents[winners[0]]["username"]
                losers = [a for i, a in enumerate(answers) if i != winners[0]]
                row["losers_naming_winner"] = sum(
                    1
                    for status, _, body in losers
                    if status == 409 and f"already taken by {name}" in body
                )
                row["ok"] = row["losers_naming_winner"] == len(agents) - 1
                # Reset: the winner gives it back to the bot.
                status, ms, _ = await request(
                    http, "POST", back_url, headers[winners[0]], {"to": "bot"}
                )
                row["hand_back"] = {"status": status, "ms": ms}
                row["ok"] = row["ok"] and status == 200
            return row

        async def healthz(round_: int) -> dict[str, Any]:
            answers = await at_once(
                [partial(request, http, "GET", health_url, h) for h in headers]
            )
            return {
                "round": round_,
                "answers_ms": [ms for _, ms, _ in answers],
                "span_ms": max(ms for _, ms, _ in answers),
                "statuses": _count(status for status, _, _ in answers),
            }

        # Warm-up, not measured: keep-alive connections, first-use caches.
        await contend(-1)
        await healthz(-1)
        start_seq = await asyncio.to_thread(current_seq)

        takeovers: list[dict[str, Any]] = []
        baseline: list[dict[str, Any]] = []
        window = CpuWindow(config["server_pid"])
        started = time.perf_counter()
        with LockWaits() as locks:
            for round_ in range(config["rounds"]):
                locks.phase = "takeover"
                takeovers.append(await contend(round_))
                locks.phase = ""
                await asyncio.sleep(config["settle"])
                locks.phase = "healthz"
                baseline.append(await healthz(round_))
                locks.phase = ""
                await asyncio.sleep(config["settle"])
        wall = time.perf_counter() - started
        cpu = window.finish()
        audit = await asyncio.to_thread(status_changes, pk, start_seq)
    finally:
        await http.close()
    return {
        "agents": len(agents),
        "conversation": pk,
        "wall_s": round(wall, 1),
        "takeover": takeovers,
        "healthz": baseline,
        # One audit row per real change: a take-over and a hand-back per round.
        "status_changes_recorded": audit,
        "lock_waits": locks.stats,
        "status_changes_expected": sum(
            len(r["winners"]) + (r.get("hand_back", {}).get("status") == 200)
            for r in takeovers
        ),
    } | cpu


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


if __name__ == "__main__":
    import django

    django.setup()
    config = json.loads(Path(sys.argv[1]).read_text())
    result = asyncio.run(run(config))
    Path(sys.argv[2]).write_text(json.dumps(result))
