"""Benchmark 1: webhook ingest throughput and latency against its two baselines.

Three servers, one after the other, on the same PostgreSQL + Redis, each
served the way it would be deployed with the same number of worker processes
(``BENCH_INGEST_WORKERS``, 2 like the Procfile), each driven by the same load
generator with the same pre-signed bodies shape:

* ``ours``: the Procfile's web line (gunicorn + uvicorn workers,
  ``core.asgi:application``), ``POST /api/openclaw/webhook/``.
* ``seed``: the seed recipe view from ``bench/seed/views.py``, as a plain
  Django project serves it: gunicorn's threaded WSGI workers, Django's stock
  middleware (``bench/stock_settings.py``).
* ``floor``: one INSERT and 200, served like ``seed``.
"""

from __future__ import annotations

import os
from typing import Any

from bench import common
from bench.common import fmt, log, ratio

CONCURRENCIES = [1, 16, 64]
TARGETS = {"vs_seed": 3.0, "vs_floor": 0.5, "p99_ms_at_16": 50.0}

WORKERS = int(os.environ.get("BENCH_INGEST_WORKERS", "2"))
SERVERS = [
    # name, how it is served, application, settings, path
    (
        "ours",
        "procfile",
        "core.asgi:application",
        "core.settings",
        "/api/openclaw/webhook/",
    ),
    (
        "seed",
        "wsgi",
        "bench.wsgi:application",
        "bench.stock_settings",
        "/bench/seed-webhook/",
    ),
    (
        "floor",
        "wsgi",
        "bench.wsgi:application",
        "bench.stock_settings",
        "/bench/floor/",
    ),
]


def run(quick: bool) -> dict[str, Any]:
    duration = 2.0 if quick else 10.0
    common.reset_database()
    measured: dict[str, list[dict[str, Any]]] = {}
    quiet: dict[str, Any] = {}
    for index, (name, how, application, settings, path) in enumerate(SERVERS):
        common.flush_redis()
        quiet[name] = common.wait_for_quiet()
        with common.web(
            f"ingest-{name}", how, application, settings, WORKERS
        ) as server:
            log(f"ingest: {name} ({how}, {WORKERS} workers) on {server.url}{path}")
            config = {
                "url": server.url + path,
                "server_pid": server.pid,
                "secret": common.WEBHOOK_SECRET,
                "seed": 1000 + index,
                "run": f"{name}{index}",
                "chats": 2000,
                # Enough for ~3,000 req/s through every step; a step that runs
                # out stops early and says so.
                "count": 8_000 if quick else 60_000,
                "concurrencies": CONCURRENCIES,
                "warmup": 1.0 if quick else 3.0,
                "settle": 0.5 if quick else 1.0,
                "duration": duration,
            }
            result = common.load("load_ingest", config, timeout=300)
            measured[name] = result["steps"]
            for row in result["steps"]:
                log(
                    f"  c={row['concurrency']:>2}: {fmt(row['rps'])} req/s, "
                    f"p50 {fmt(row['p50_ms'])} ms, p99 {fmt(row['p99_ms'])} ms, "
                    f"statuses {row['statuses']}, server cpu {row['server_cpu_pct']}%"
                )
    summary = _ratios(measured)
    _print(measured, summary)
    return {
        "duration_s": duration,
        "workers": WORKERS,
        "served": {name: how for name, how, *_ in SERVERS},
        "servers": measured,
        "summary": summary,
        "targets": TARGETS,
    }


def _ratios(measured: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for ours, seed, floor in zip(
        measured["ours"], measured["seed"], measured["floor"], strict=True
    ):
        rows.append(
            {
                "concurrency": ours["concurrency"],
                "ours_rps": ours["rps"],
                "seed_rps": seed["rps"],
                "floor_rps": floor["rps"],
                "ours_vs_seed": ratio(ours["rps"], seed["rps"]),
                "ours_vs_floor": ratio(ours["rps"], floor["rps"]),
                "ours_p50_ms": ours["p50_ms"],
                "ours_p99_ms": ours["p99_ms"],
            }
        )
    return rows


def _print(
    measured: dict[str, list[dict[str, Any]]], summary: list[dict[str, Any]]
) -> None:
    print("\n== ingest: req/s (p50 / p99 ms) ==")
    print(f"{'conc':>4}  {'ours':>24}  {'seed recipe':>24}  {'bare floor':>24}")
    for i, row in enumerate(summary):
        cells = []
        for name in ("ours", "seed", "floor"):
            m = measured[name][i]
            cells.append(f"{fmt(m['rps'])} ({fmt(m['p50_ms'])}/{fmt(m['p99_ms'])})")
        print(f"{row['concurrency']:>4}  " + "  ".join(f"{c:>24}" for c in cells))
    print("\nratios (target: ours/seed >= 3.0, ours/floor >= 0.5, p99 < 50 ms at c=16)")
    for row in summary:
        print(
            f"  c={row['concurrency']:>2}: ours/seed {fmt(row['ours_vs_seed'], 2)}x, "
            f"ours/floor {fmt(row['ours_vs_floor'], 2)}x, "
            f"ours p99 {fmt(row['ours_p99_ms'])} ms"
        )
