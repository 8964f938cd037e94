"""``python -m bench [NAME ...] [--quick]``: ingest, live, scale, replies, takeover,
triggers, gateway, http, reports (default: all).

Production mode on a dedicated PostgreSQL database (``openclaw_bench``) and
Redis db (9), both re-created per benchmark and the database dropped at the
end. Only 127.0.0.1 is contacted; every server is killed when its step ends.
Results go to bench/results/ (JSON); docs/benchmarks.md explains them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bench import common

BENCHMARKS = (
    "ingest",
    "live",
    "scale",
    "replies",
    "takeover",
    "triggers",
    "gateway",
    "http",
    "reports",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "benchmarks",
        nargs="*",
        help="which to run: ingest, live, scale, replies, takeover, triggers, gateway, "
        "http, reports "
        "(default: all, in that order)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few seconds each: checks the harness works",
    )
    parser.add_argument(
        "--keep-db",
        action="store_true",
        help="leave the bench database behind for a look",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.benchmarks) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; pick from {BENCHMARKS}")
    chosen = [name for name in BENCHMARKS if name in args.benchmarks] or list(
        BENCHMARKS
    )

    from bench import (
        gateway,
        http,
        ingest,
        live,
        replies,
        reports,
        scale,
        takeover,
        triggers,
    )

    modules: dict[str, Any] = {
        "ingest": ingest,
        "live": live,
        "scale": scale,
        "replies": replies,
        "takeover": takeover,
        "triggers": triggers,
        "gateway": gateway,
        "http": http,
        "reports": reports,
    }
    report = common.Report(quick=args.quick)
    m = report.machine
    common.log(
        f"{m['nproc']} CPU ({m['cpu']}), {m['ram_gib']} GiB, "
        f"PostgreSQL {m['postgres']}, "
        f"{m['date']}{' [quick]' if args.quick else ''}"
    )
    failed = False
    try:
        for name in chosen:
            started = time.monotonic()
            common.log(f"=== {name} ===")
            try:
                report.results[name] = modules[name].run(args.quick)
            except Exception as exc:  # noqa: BLE001 - report it, run the next one
                failed = True
                common.log(f"{name} failed: {type(exc).__name__}: {exc}")
                report.results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            # A benchmark whose own check failed (exactly-once, one winner per
            # round) keeps its figures but fails the run.
            failed = failed or "error" in report.results[name]
            report.results.setdefault(name, {})["wall_s"] = round(
                time.monotonic() - started, 1
            )
    finally:
        if not args.keep_db:
            common.drop_database()
        common.flush_redis()
        path = report.save()
        common.log(f"results: {path.relative_to(common.ROOT)}")
    if any("error" in r for r in report.results.values()):
        print(json.dumps({k: v.get("error") for k, v in report.results.items()}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
