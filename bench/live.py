"""Benchmark 2: webhook sent -> frame received, across 200 logged-in websockets.

Two phases, each with its own server on the same PostgreSQL + Redis, both
served as the Procfile serves the app (gunicorn + uvicorn workers,
``BENCH_LIVE_WORKERS``, 2), so a tab and the webhook may sit on different
worker processes, as in production:

* ``app``: ``core.asgi:application``; signed webhooks at 20/s into the app,
  whose consumers render and push frames (``inbox/live.py``).
* ``raw``: the baseline; ``bench.asgi:application``'s forwarding consumer and
  a bare ``group_send`` of a payload as large as the app's average frame.
"""

from __future__ import annotations

import os
from typing import Any

from bench import common
from bench.common import fmt, latency_stats, log, ratio

# Environment overrides are for exploring (see docs/benchmarks.md); the
# defaults are the figures.
CLIENTS = int(os.environ.get("BENCH_LIVE_CLIENTS", "200"))
RATE = float(os.environ.get("BENCH_LIVE_RATE", "20"))
# Conversations the messages are spread over (created before measuring).
CHATS = int(os.environ.get("BENCH_LIVE_CHATS", "100"))
# "core" serves both phases with bench.settings on the list-based layer (what-if).
LAYER = os.environ.get("BENCH_CHANNEL_LAYER", "")
TARGETS = {"p50_ms": 30.0, "p99_ms": 100.0, "p99_ratio_app_vs_raw": 1.5}
WORKERS = int(os.environ.get("BENCH_LIVE_WORKERS", "2"))


def run(quick: bool) -> dict[str, Any]:
    duration = 5.0 if quick else 60.0
    messages = int(RATE * duration)
    common.reset_database()
    sessions = common.task("staff_sessions", str(CLIENTS))["sessions"]
    base = {
        "sessions": sessions,
        "clients": CLIENTS,
        "rate": RATE,
        "messages": messages,
        "secret": common.WEBHOOK_SECRET,
        "chats": CHATS,
        "run": "q" if quick else "f",
        "drain": 4.0,
        "catchup_wait": 3.0,
        "redis_url": common.REDIS_URL,
        "channels_prefix": common.CHANNELS_PREFIX,
        "layer": LAYER,
    }
    phases: dict[str, dict[str, Any]] = {}
    quiet = {"app": common.wait_for_quiet()}
    app_settings = "bench.settings" if LAYER else "core.settings"
    with common.web(
        "live-app", "procfile", "core.asgi:application", app_settings, WORKERS
    ) as server:
        log(f"live: app, {CLIENTS} clients, {RATE:.0f} msg/s for {duration:.0f}s")
        config = base | _server(server) | {"mode": "app"}
        config["webhook_url"] = server.url + "/api/openclaw/webhook/"
        phases["app"] = common.load("load_live", config, timeout=duration + 300)
    common.flush_redis()
    raw_bytes = int(phases["app"]["avg_frame_bytes"]) or 1000
    quiet["raw"] = common.wait_for_quiet()
    with common.web(
        "live-raw", "procfile", "bench.asgi:application", "bench.settings", WORKERS
    ) as server:
        log(f"live: raw group_send baseline, {raw_bytes} B frames")
        config = base | _server(server) | {"mode": "raw", "raw_bytes": raw_bytes}
        phases["raw"] = common.load("load_live", config, timeout=duration + 300)

    summary = {}
    for name, phase in phases.items():
        lat = phase.pop("latencies_ms")
        summary[name] = latency_stats(lat)
    summary["p50_ratio_app_vs_raw"] = ratio(
        summary["app"]["p50_ms"], summary["raw"]["p50_ms"]
    )
    summary["p99_ratio_app_vs_raw"] = ratio(
        summary["app"]["p99_ms"], summary["raw"]["p99_ms"]
    )
    _print(phases, summary)
    return {
        "duration_s": duration,
        "workers": WORKERS,
        "clients": CLIENTS,
        "rate": RATE,
        "chats": CHATS,
        "layer": LAYER or "app settings (RedisPubSubChannelLayer)",
        "phases": phases,
        "summary": summary,
        "targets": TARGETS,
        "background": quiet,
    }


def _server(server: common.Server) -> dict[str, Any]:
    return {
        "ws_base": f"ws://{common.HOST}:{server.port}",
        "origin": server.url,
        "server_pid": server.pid,
    }


def _print(phases: dict[str, dict[str, Any]], summary: dict[str, Any]) -> None:
    print("\n== live: webhook sent -> frame received (ms) ==")
    for name in ("app", "raw"):
        s, p = summary[name], phases[name]
        b = p["before_catchup"]
        print(
            f"  {name:>3}: p50 {fmt(s['p50_ms'])}  p90 {fmt(s['p90_ms'])}  "
            f"p99 {fmt(s['p99_ms'])}  max {fmt(s['max_ms'])}  "
            f"({s['samples']} samples, {fmt(p['avg_frame_bytes'], 0)} B/frame, "
            f"daphne cpu {p['server_cpu_pct']}%)"
        )
        print(
            f"       lost {b['lost']}/{b['expected']} "
            f"on {b['clients_with_loss']} clients "
            f"(superseded by a newer row of the same chat: {b.get('superseded', 0)}), "
            f"duplicates {b['duplicates']}, connect failed {p['connect_failed']}, "
            f"closed by server {p['closed_early']}, "
            f"statuses {p['statuses']}"
        )
        answers = p.get("webhook_answer_ms") or []
        if answers:
            print(
                f"       webhook answered: p50 {fmt(answers[len(answers) // 2])} ms, "
                f"p99 {fmt(answers[int(len(answers) * 0.99)])} ms"
            )
        if "sequence_behind" in b:
            print(
                f"       sequence numbers not yet applied: {b['sequence_behind']} "
                f"on {b['clients_behind']} clients"
            )
    a = phases["app"]["after_catchup"]
    if a:
        print(
            f"  app after reconnect with ?after=: lost {a['lost']} "
            f"(superseded {a.get('superseded', 0)}), "
            f"recovered {a['recovered']}, "
            f"replayed duplicates {a['replayed_duplicates']}, "
            f"reconnects failed {a['reconnect_failed']}, "
            f"sequence numbers not applied {a.get('sequence_behind', '?')} "
            f"on {a.get('clients_behind', '?')} clients"
        )
    print(
        f"  app/raw: p50 {fmt(summary['p50_ratio_app_vs_raw'], 2)}x, "
        f"p99 {fmt(summary['p99_ratio_app_vs_raw'], 2)}x  "
        "(targets: app p50 < 30 ms, p99 < 100 ms)"
    )
