"""Benchmark 9: the reports page on 100k conversations / 1M messages, and the
rollup that feeds it.

Seeds the scale benchmark's data (``bench.tasks.seed_scale``) plus what a
report counts beyond messages (``bench.report_tasks.seed_report_extras``:
escalations with reasons, takeovers, agents' replies, resolves, trigger
matches), times ``manage.py rollup_reports`` over the last 30 days and then
the 60 before them, and then GETs ``/reports/`` for 7 days, 30 days and a
custom 90 days over loopback, with ``/healthz`` and the inbox's first page
timed in the same loop as baselines.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import common
from bench.common import fmt, log, ratio

TARGET_P95_MS = 200.0


def _task(name: str, *args: str, timeout: float = 1800) -> Any:
    import json

    result = common.run(
        [common.PYTHON, "-m", "bench.report_tasks", name, *args],
        env=common.bench_env("bench.settings"),
        timeout=timeout,
        capture=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _rollup(first: str, last: str) -> dict[str, Any]:
    began = time.perf_counter()
    result = common.run(
        [common.PYTHON, "manage.py", "rollup_reports", "--from", first, "--to", last],
        env=common.bench_env("bench.settings"),
        timeout=3600,
        capture=True,
    )
    seconds = time.perf_counter() - began
    per_day = [
        float(line.rsplit(" in ", 1)[1].split()[0])
        for line in result.stdout.splitlines()
        if line.startswith("[") and " in " in line
    ]
    return {
        "wall_s": round(seconds, 1),
        "days": len(per_day),
        "day_ms_median": sorted(per_day)[len(per_day) // 2] if per_day else 0,
        "day_ms_max": max(per_day, default=0),
    }


def run(quick: bool) -> dict[str, Any]:
    conversations, messages = (10_000, 100_000) if quick else (100_000, 1_000_000)
    common.reset_database()
    log(f"reports: seeding {conversations:,} conversations / {messages:,} messages")
    seeded = common.task("seed_scale", str(conversations), str(messages), timeout=3600)
    extras = _task("seed_report_extras")
    log(
        f"  seeded in {seeded['total_s']} s ({seeded['database_size']}); "
        f"{extras['status_activities']:,} status changes, "
        f"{extras['agent_replies']:,} agent replies, "
        f"{extras['trigger_runs']:,} trigger matches in {extras['seconds']} s"
    )
    session = _task("lead_session")["session"]
    common.task("collectstatic")
    today = datetime.now(UTC).date()  # the bench runs with TIME_ZONE=UTC
    log("  rollup_reports: the last 30 days")
    recent = _rollup((today - timedelta(days=29)).isoformat(), today.isoformat())
    log(f"  ... {recent['wall_s']} s; then the 60 days before")
    older = _rollup(
        (today - timedelta(days=89)).isoformat(),
        (today - timedelta(days=30)).isoformat(),
    )
    rows = _task("rollup_rows")
    first90 = (today - timedelta(days=89)).isoformat()
    pages = [
        ("healthz", "/healthz"),
        ("inbox first page", "/inbox/"),
        ("reports today", "/reports/?range=today"),
        ("reports 7 days", "/reports/?range=7d"),
        ("reports 30 days", "/reports/?range=30d"),
        (
            "reports custom 90 days",
            f"/reports/?range=custom&from={first90}&to={today.isoformat()}",
        ),
        ("CSV 30 days", "/reports/?range=30d&format=csv"),
    ]
    profile = _task("query_profile", *[p for _, p in pages[1:]], timeout=600)
    background = common.wait_for_quiet()
    with common.daphne("reports", "core.asgi:application", "bench.settings") as server:
        result = common.load(
            "load_reports",
            {
                "base": server.url,
                "session": session,
                "pages": pages,
                "requests": 20 if quick else 100,
                "warmup": 3 if quick else 10,
            },
            timeout=1800,
        )
    for label, path in pages[1:]:
        result["pages"][label]["in_process"] = profile[path]
    base = result["pages"]["healthz"]["p95_ms"]
    inbox = result["pages"]["inbox first page"]["p95_ms"]
    for page in result["pages"].values():
        page["p95_vs_healthz"] = ratio(page["p95_ms"], base)
        page["p95_vs_inbox"] = ratio(page["p95_ms"], inbox)
    _print(seeded, extras, recent, older, rows, result)
    return {
        "conversations": conversations,
        "messages": seeded["messages"],
        "seed": seeded,
        "extras": extras,
        "rollup_30_days": recent,
        "rollup_60_more_days": older,
        "rollup_rows": rows,
        "pages": result["pages"],
        "target_p95_ms": TARGET_P95_MS,
        "background": background,
    }


def _print(
    seeded: dict[str, Any],
    extras: dict[str, Any],
    recent: dict[str, Any],
    older: dict[str, Any],
    rows: dict[str, Any],
    result: dict[str, Any],
) -> None:
    print(
        f"\n== reports: {seeded['conversations']:,} conversations / "
        f"{seeded['messages'] + extras['agent_replies']:,} messages "
        f"({seeded['database_size']}) =="
    )
    print(
        f"  rollup_reports, 30 days: {recent['wall_s']} s (a day: median "
        f"{fmt(recent['day_ms_median'])} ms, max {fmt(recent['day_ms_max'])} ms); "
        f"60 days more: {older['wall_s']} s; {rows['daily_stats']} day×platform "
        f"rows, {rows['agent_stats']} day×agent rows"
    )
    for label, page in result["pages"].items():
        prof = page.get("in_process")
        where = (
            f"; in-process view {fmt(prof['view_ms'])} ms, {prof['queries']} "
            f"queries {fmt(prof['query_ms'])} ms"
            if prof
            else ""
        )
        print(
            f"  {label:<24} p50 {fmt(page['p50_ms'])}  p95 {fmt(page['p95_ms'])}  "
            f"p99 {fmt(page['p99_ms'])} ms ({fmt(page['p95_vs_healthz'])}x healthz, "
            f"{fmt(page['p95_vs_inbox'], 2)}x inbox p95){where}"
        )
    print(f"  target: every reports page p95 < {TARGET_P95_MS:.0f} ms")
