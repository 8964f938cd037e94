"""Benchmark 3: the inbox page and search on 100k conversations / 1M messages,
and daphne's memory with 1,000 idle websockets.

The database is seeded once by COPY (``bench.tasks.seed_scale``) and kept for
every step of this benchmark; ``python -m bench`` drops it at the end.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

from bench import common
from bench.common import fmt, log

# (label, query): searches of the inbox list; the thread page is added once
# the seed says which conversation is the long one.
SEARCHES = [
    ("first page", ""),
    ("search 환불", "환불"),
    ("search refund", "refund"),
    # Words only in the oldest conversations (bench.tasks.seed_scale).
    ("search recall", "recall"),
    ("search warranty", "warranty"),
]
# The list's filters (issue 13), same targets as search.
FILTERS = [
    ("filter tag vip", "tag=vip"),
    ("filter 30 days", "since=DAYS30"),
]
TARGETS = {"first page p95_ms": 50.0, "search p95_ms": 200.0}


def run(quick: bool) -> dict[str, Any]:
    conversations, messages = (10_000, 100_000) if quick else (100_000, 1_000_000)
    sockets = 200 if quick else 1000
    common.reset_database()
    log(f"scale: seeding {conversations:,} conversations / {messages:,} messages")
    seeded = common.task("seed_scale", str(conversations), str(messages), timeout=3600)
    log(f"  seeded in {seeded['total_s']} s ({seeded['database_size']})")
    sessions = common.task("staff_sessions", str(min(sockets, 1000)))["sessions"]
    common.task("collectstatic")
    pages = [
        (label, "/inbox/" + (f"?q={quote(q)}" if q else "")) for label, q in SEARCHES
    ]
    since = (date.today() - timedelta(days=30)).isoformat()
    pages += [(label, "/inbox/?" + q.replace("DAYS30", since)) for label, q in FILTERS]
    thread = seeded["long_thread"]
    # The conversation page: list, thread and the contact panel with the
    # customer's earlier conversations.
    pages.append((f"thread of {thread['messages']}", f"/inbox/c/{thread['id']}/"))
    # A conversation as most are (a few messages), its contact panel open.
    pages.append(("conversation + panel", f"/inbox/c/{seeded['returning']}/"))
    paths = [path for _, path in pages]
    profile = common.task("query_profile", *paths, timeout=600)
    # Same data, same run: the worst-case searches as the old query ran them.
    baseline = common.task("search_baseline", "recall", "warranty", timeout=900)
    background = common.wait_for_quiet()
    with common.daphne("scale", "core.asgi:application", "bench.settings") as server:
        config = {
            "base": server.url,
            "ws_url": f"ws://{common.HOST}:{server.port}/ws/inbox/",
            "origin": server.url,
            "server_pid": server.pid,
            "sessions": sessions,
            "pages": pages,
            "requests": 20 if quick else 60,
            "warmup": 3 if quick else 5,
            "sockets": sockets,
            "hold": 5.0 if quick else 15.0,
        }
        result = common.load("load_scale", config, timeout=1800)
    for label, path in pages:
        result["pages"][label]["in_process"] = profile[path]
    _print(seeded, result)
    for word, timing in baseline.items():
        print(
            f"  search {word}, list query alone: before (a to_tsvector probe per "
            f"conversation) {fmt(timing['before']['median_ms'])} ms, now "
            f"{fmt(timing['now']['median_ms'])} ms "
            f"({fmt(timing['before']['median_ms'] / timing['now']['median_ms'], 1)}x"
            f" faster; {timing['now']['rows']} rows each)"
        )
    return {
        "search_baseline": baseline,
        "conversations": conversations,
        "messages": seeded["messages"],
        "seed": seeded,
        "pages": result["pages"],
        "idle": result["idle"],
        "targets": TARGETS,
        "background": background,
    }


def _print(seeded: dict[str, Any], result: dict[str, Any]) -> None:
    print(
        f"\n== scale: {seeded['conversations']:,} conversations / "
        f"{seeded['messages']:,} messages ({seeded['database_size']}) =="
    )
    for label, page in result["pages"].items():
        prof = page["in_process"]
        print(
            f"  {label:<14} p50 {fmt(page['p50_ms'])}  p95 {fmt(page['p95_ms'])}  "
            f"p99 {fmt(page['p99_ms'])} ms over loopback ({page['requests']} req, "
            f"{page['rows']} rows); in-process view {fmt(prof['view_ms'])} ms, "
            f"{prof['queries']} queries {fmt(prof['query_ms'])} ms"
        )
    idle = result["idle"]
    print(
        f"  idle websockets: {idle['connected']}/{idle['sockets']} connected in "
        f"{idle['connect_s']} s, {idle['still_open_after_hold']} still open after "
        f"{idle['hold_s']:.0f} s; daphne RSS {idle['rss_before_kib'] / 1024:.1f} -> "
        f"{idle['rss_with_sockets_kib'] / 1024:.1f} MiB "
        f"({fmt(idle['kib_per_socket'])} KiB/socket), "
        f"{idle['rss_after_close_kib'] / 1024:.1f} MiB after close"
    )
    print("  targets: first page p95 < 50 ms, search p95 < 200 ms")
