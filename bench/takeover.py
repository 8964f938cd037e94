"""Benchmark 5: 50 agents take over the same conversation at the same moment.

One daphne serving ``core.asgi:application``; the load process
(``bench.load_takeover``) holds 50 logged-in sessions. Per round all 50 POST
``/inbox/c/<pk>/take-over/`` at once: exactly one must win (200) and the 49
others get 409 "already taken by <winner>" (``Conversation.take_over`` decides
under a PostgreSQL row lock); the winner hands it back to the bot. Baseline in
the same round: the same 50 sessions GET ``/healthz`` at once, same server.
"""

from __future__ import annotations

import os
from typing import Any

from bench import common
from bench.common import fmt, latency_stats, log, ratio

AGENTS = int(os.environ.get("BENCH_TAKEOVER_AGENTS", "50"))


def run(quick: bool) -> dict[str, Any]:
    rounds = 10 if quick else 100
    common.reset_database()
    quiet = common.wait_for_quiet()
    with common.daphne("takeover") as server:
        log(f"takeover: {AGENTS} agents x {rounds} rounds on one conversation")
        config = {
            "agents": AGENTS,
            "rounds": rounds,
            "run": "q" if quick else "f",
            "base_url": server.url,
            "origin": server.url,
            "webhook_url": server.url + "/api/openclaw/webhook/",
            "secret": common.WEBHOOK_SECRET,
            "server_pid": server.pid,
            "settle": 0.2,
        }
        measured = common.load("load_takeover", config, timeout=120 + rounds * 30)

    takeovers, baseline = measured.pop("takeover"), measured.pop("healthz")
    answers = [ms for r in takeovers for ms in r["answers_ms"]]
    health = [ms for r in baseline for ms in r["answers_ms"]]
    good = sum(1 for r in takeovers if r["ok"])
    winners = [name for r in takeovers for name in r["winners"]]
    summary = {
        "takeover": latency_stats(answers),
        "healthz": latency_stats(health),
        "winner": latency_stats([ms for r in takeovers for ms in r["winner_ms"]]),
        "hand_back": latency_stats(
            [r["hand_back"]["ms"] for r in takeovers if "hand_back" in r]
        ),
        "round_span": latency_stats([r["span_ms"] for r in takeovers]),
        "healthz_round_span": latency_stats([r["span_ms"] for r in baseline]),
        "rounds_with_one_winner": good,
        "rounds": rounds,
        "distinct_winners": len(set(winners)),
        "statuses": _merge(r["statuses"] for r in takeovers),
        "healthz_statuses": _merge(r["statuses"] for r in baseline),
        "audit_rows": {
            "recorded": measured["status_changes_recorded"],
            "expected": measured["status_changes_expected"],
        },
    }
    summary["p50_ratio_takeover_vs_healthz"] = ratio(
        summary["takeover"]["p50_ms"], summary["healthz"]["p50_ms"]
    )
    summary["p99_ratio_takeover_vs_healthz"] = ratio(
        summary["takeover"]["p99_ms"], summary["healthz"]["p99_ms"]
    )
    _print(summary, measured)
    result: dict[str, Any] = {
        "agents": AGENTS,
        "rounds": rounds,
        "summary": summary,
        "load": measured,
        "rounds_detail": [
            {k: v for k, v in r.items() if k != "answers_ms"} for r in takeovers
        ],
        "background": quiet,
    }
    audit = summary["audit_rows"]
    if good != rounds or audit["recorded"] != audit["expected"]:
        log("takeover: NOT EXACTLY ONE WINNER IN EVERY ROUND, see rounds_detail")
        result["error"] = (
            f"rounds with exactly one winner {good}/{rounds}, "
            f"audit rows {audit['recorded']} (expected {audit['expected']})"
        )
    return result


def _merge(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for key, n in count.items():
            total[key] = total.get(key, 0) + n
    return total


def _print(summary: dict[str, Any], load: dict[str, Any]) -> None:
    print(f"\n== takeover: {AGENTS} agents at once on one conversation (ms) ==")
    print(f"  {'':<28} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8} {'samples':>8}")
    for label, key in (
        ("take-over answer", "takeover"),
        ("  the winner's answer", "winner"),
        ("  round (last answer)", "round_span"),
        ("hand-back (winner)", "hand_back"),
        ("baseline GET /healthz", "healthz"),
        ("  round (last answer)", "healthz_round_span"),
    ):
        s = summary[key]
        print(
            f"  {label:<28} {fmt(s['p50_ms']):>8} {fmt(s['p90_ms']):>8} "
            f"{fmt(s['p99_ms']):>8} {fmt(s['max_ms']):>8} {s['samples']:>8}"
        )
    audit = summary["audit_rows"]
    print(
        f"  rounds with exactly one winner: {summary['rounds_with_one_winner']}"
        f"/{summary['rounds']} ({AGENTS - 1} x 409 naming the winner each; "
        f"{summary['distinct_winners']} different winners); statuses "
        f"{summary['statuses']}; healthz {summary['healthz_statuses']}; audit rows "
        f"{audit['recorded']} (expected {audit['expected']})"
    )
    for phase, row in load["lock_waits"].items():
        print(
            f"  pg_stat_activity every 20 ms during {phase}: "
            f"{row['with_lock_wait']}/{row['samples']} samples with a session "
            f"waiting on a lock (at most {row['max_waiting']} waiting, "
            f"{row['max_active']} active at once)"
        )
    p50 = fmt(summary["p50_ratio_takeover_vs_healthz"], 2)
    p99 = fmt(summary["p99_ratio_takeover_vs_healthz"], 2)
    print(
        f"  take-over / healthz: p50 {p50}x, p99 {p99}x; daphne cpu "
        f"{load['server_cpu_pct']}%, machine {load['machine_busy_pct']}%, "
        f"load generator {load['loadgen_cpu_pct']}%"
    )
