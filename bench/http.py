"""Benchmark 8: CPU per request through the HTTP adapter, in one process.

Every view is sync, so ``core.asgi`` runs Django's WSGI handler on a thread
pool (a2wsgi) behind ``RequestGuard`` instead of Django's ASGI handler.
This measures what each adds over calling the WSGI handler directly, with
no server and no network (``bench/load_http.py``): the same request through
the three, at concurrency 1 and 16. Ratios are to the WSGI floor, same run.
"""

from __future__ import annotations

from typing import Any

from bench import common
from bench.common import fmt, log, ratio

PATHS = ["/no-such-page/", "/healthz"]
CONCURRENCIES = [1, 16]


def run(quick: bool) -> dict[str, Any]:
    common.reset_database()
    quiet = common.wait_for_quiet()
    count = 300 if quick else 3000
    log(f"http: {count} requests per adapter, path and concurrency, in-process")
    result = common.load(
        "load_http",
        {"paths": PATHS, "concurrencies": CONCURRENCIES, "count": count},
        timeout=900,
    )
    rows = result["rows"]
    floor = {
        row["path"]: row["cpu_ms_per_request"]
        for row in rows
        if row["adapter"] == "wsgi"
    }
    for row in rows:
        row["cpu_vs_wsgi"] = ratio(row["cpu_ms_per_request"], floor[row["path"]])
    print("\n== http: CPU per request through each adapter (in-process) ==")
    for row in rows:
        print(
            f"  {row['path']:<15} {row['adapter']:<12} c={row['concurrency']:>2}: "
            f"{fmt(row['cpu_ms_per_request'], 2)} ms CPU "
            f"({fmt(row['cpu_vs_wsgi'], 2)}x WSGI), "
            f"{fmt(row['wall_ms_per_request'], 2)} ms wall, "
            f"statuses {row['statuses']}"
        )
    return {"rows": rows, "count": count, "background": quiet}
