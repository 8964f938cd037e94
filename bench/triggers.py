"""Benchmark 6: matching triggers, hostile patterns, and a backtest at 100k.

Three parts, each with its baseline in the same run:

1. **Matching**: 10, 100 and 1,000 enabled triggers (generated, realistic,
   deterministic) against a fixed corpus of customer messages, through the
   engine (``engine.ruleset()`` built from the rows, then ``Ruleset.match``)
   and, per message right after it, a plain loop of Python ``re.search`` over
   the same patterns compiled once. In a child process, no server.
2. **Hostile input**: ``(a+)+$`` against ``a…a!``: RE2 through the engine at
   16, 32 and 64 KiB; Python ``re`` on the same in a child killed at 10 s,
   and at 20–26 characters to show its growth.
3. **Backtest**: 100,000 stored customer messages, a draft trigger run by
   the real actor on a real worker (``manage.py rundramatiq`` as the
   Procfile runs it), its row polled every 500 ms as the editor does.
   Baseline: the same messages' text matched by a plain RE2 loop in-process.
"""

from __future__ import annotations

from typing import Any

from bench import common
from bench.common import fmt, log, ratio

COUNTS = [10, 100, 1000]
TARGETS = {"ms_per_message_at_1000": 1.0, "hostile_ms": 10.0}
# As the Procfile runs the worker.
WORKER_ARGS = ["--processes", "2", "--threads", "4"]
WORKER_TIMEOUT_MS = "100"
DRAFT = {
    "name": "bench draft: refunds and order numbers",
    "patterns": ["환불|반품|refund|money back", r"\b(order|shipping)\s*#?\d+"],
    "match_mode": "any",
    "case_sensitive": False,
    "platforms": [],
}


def run(quick: bool) -> dict[str, Any]:
    common.reset_database()
    result: dict[str, Any] = {"targets": TARGETS}
    result["background"] = common.wait_for_quiet()
    log(f"triggers: matching at {COUNTS} enabled triggers")
    result["matching"] = common.load(
        "load_triggers",
        {
            "part": "matching",
            "counts": COUNTS,
            "messages": 500 if quick else 5000,
            "seed": 7,
            "freshness_checks": 50 if quick else 500,
            "long": 3 if quick else 10,
        },
        timeout=3600,
    )
    _print_matching(result["matching"])

    log("triggers: hostile pattern (a+)+$")
    deadline = 3.0 if quick else 10.0
    result["hostile"] = common.load(
        "load_triggers",
        {
            "part": "hostile",
            "re2_kib": [16, 32, 64],
            "python_chars": [16, 18, 20] if quick else [20, 22, 24, 26],
            "python_deadline_s": deadline,
        },
        timeout=600,
    )
    _print_hostile(result["hostile"])

    result["backtest"] = _backtest(quick)
    _print_backtest(result["backtest"])
    problems = _problems(result)
    if problems:
        log(f"triggers: {'; '.join(problems)}")
        result["error"] = "; ".join(problems)
    return result


def _backtest(quick: bool) -> dict[str, Any]:
    messages = 10_000 if quick else 100_000
    log(f"triggers: seeding {messages:,} customer messages")
    seeded = common.load(
        "load_triggers",
        {"part": "seed", "customer_messages": messages, "seed": 11},
        timeout=1800,
    )
    log(f"  seeded in {seeded['total_s']} s")
    quiet = common.wait_for_quiet()
    with common.service(
        "triggers-worker",
        [common.PYTHON, "manage.py", "rundramatiq", *WORKER_ARGS],
        env=common.bench_env(dramatiq_worker_timeout=WORKER_TIMEOUT_MS),
    ) as worker:
        log(f"triggers: backtest of {messages:,} messages on a real worker")
        measured = common.load(
            "load_triggers",
            {
                "part": "backtest",
                "n": messages,
                "draft": DRAFT,
                "poll_s": 0.5,
                "deadline_s": 900,
                "worker_pgid": worker.pid,
            },
            timeout=1200,
        )
    return {
        "seed": seeded,
        "worker": " ".join(WORKER_ARGS),
        "background": quiet,
    } | measured


def _problems(result: dict[str, Any]) -> list[str]:
    problems = []
    backtest = result["backtest"]
    if backtest["matched"] != backtest["baseline"]["matched"]:
        problems.append(
            f"backtest matched {backtest['matched']}, the plain loop "
            f"{backtest['baseline']['matched']}"
        )
    if backtest["processed"] != backtest["n"]:
        problems.append(f"backtest processed {backtest['processed']}/{backtest['n']}")
    return problems


def _print_matching(matching: dict[str, Any]) -> None:
    corpus = matching["corpus"]
    print(
        f"\n== triggers: matching {corpus['messages']:,} messages "
        f"({corpus['chars_min']}–{corpus['chars_max']} chars, p50 "
        f"{corpus['chars_p50']}; {corpus['korean_share']:.0%} with Korean), µs "
        "per message =="
    )
    print(
        f"  {'triggers':>8} {'patterns':>8}  {'':<22} {'msg/s':>9} {'mean':>8} "
        f"{'p50':>8} {'p99':>8} {'max':>8}"
    )
    for count, row in matching["counts"].items():
        for label, key in (
            ("ours: Ruleset.match", "ours"),
            ("baseline: re loop", "baseline_re"),
            ("(set scan alone)", "set_scan_only"),
            ("(set w/o gap patterns)", "set_scan_without_gap_patterns"),
        ):
            s = row[key]
            lead = f"{count:>8} {row['patterns']:>8}" if key == "ours" else " " * 17
            print(
                f"  {lead}  {label:<22} {fmt(s['messages_per_s'], 0):>9} "
                f"{fmt(s['mean_us']):>8} {fmt(s['p50_us']):>8} "
                f"{fmt(s['p99_us']):>8} {fmt(s['max_us']):>8}"
            )
        print(
            f"  {'':>17}  baseline / ours: mean {fmt(row['speedup_mean'], 2)}x, "
            f"p50 {fmt(row['speedup_p50'], 2)}x, p99 {fmt(row['speedup_p99'], 2)}x; "
            f"{fmt(row['triggers_fired_per_message'], 1)} triggers fire per "
            f"message; {row['gap_patterns']} gap patterns; build "
            f"{fmt(row['build_ms'])} ms; freshness query p50 "
            f"{fmt(row['freshness_check_us']['p50'], 0)} µs; "
            f"{row['messages_disagreeing']} messages where re and RE2 differ"
        )
        long = row["long_messages"]
        print(
            f"  {'':>17}  {long['messages']} messages of {long['chars']:,} chars "
            f"(the cap): ours median {fmt(long['ours_ms']['median'])} ms (max "
            f"{fmt(long['ours_ms']['max'])}), re loop median "
            f"{fmt(long['baseline_re_ms']['median'])} ms (max "
            f"{fmt(long['baseline_re_ms']['max'])})"
        )
    print("  target: < 1 ms per message at 1,000 triggers")


def _print_hostile(hostile: dict[str, Any]) -> None:
    deadline = hostile["python_deadline_s"]
    print(f"\n== triggers: hostile pattern {hostile['pattern']} against a…a! ==")
    for row in hostile["re2"]:
        print(
            f"  RE2 {row['kib']:>3} KiB: Ruleset.match median "
            f"{fmt(row['ruleset_match']['median_ms'], 2)} ms, regex.search median "
            f"{fmt(row['regex_search']['median_ms'], 2)} ms "
            f"({row['ruleset_match']['runs']} runs)"
        )
    for row in [*hostile["python_growth"], hostile["python_big"]]:
        shown = (
            f"> {deadline:.0f} s (killed)" if row["killed"] else f"{fmt(row['ms'])} ms"
        )
        print(f"  Python re, {row['a_chars']:>6,} × a + '!': {shown}")
    print(
        f"  (the engine caps a message at {hostile['match_chars_cap']:,} "
        "characters before matching); target: linear, < 10 ms"
    )


def _print_backtest(bt: dict[str, Any]) -> None:
    base = bt["baseline"]
    print(
        f"\n== triggers: backtest of {bt['n']:,} customer messages "
        f"({bt['seed']['bot_replies']:,} bot replies between them) =="
    )
    print(
        f"  ours (actor on a worker): {fmt(bt['created_to_finished_s'], 2)} s "
        f"created → finished, {fmt(bt['messages_per_s'], 0)} msg/s; "
        f"{fmt(bt['wall_s'], 2)} s until the poll saw it done; "
        f"running seen after {fmt(bt['first_seen_running_s'] or float('nan'), 2)} s"
    )
    print(
        f"  matched {bt['matched']:,} of {bt['total']:,}; worker "
        f"{bt['worker_cpu_pct']}% of a core, machine {bt['machine_busy_pct']}%"
    )
    print(
        f"  progress: {bt['polls']} polls every {bt['poll_s']} s, "
        f"{bt['polls_with_progress']} saw a change "
        f"({bt['progress_writes_expected']} batch writes); spacing p50 "
        f"{fmt(bt['progress_spacing_s']['p50'], 2)} s, max "
        f"{fmt(bt['progress_spacing_s']['max'], 2)} s"
    )
    print(
        f"  baseline (plain RE2 loop in-process): {fmt(base['loop_s'], 2)} s, "
        f"{fmt(base['messages_per_s'], 0)} msg/s, matched {base['matched']:,} "
        f"(+ {fmt(base['fetch_s'], 2)} s to read the texts in one query)"
    )
    ours = bt["created_to_finished_s"]
    print(
        f"  ours / baseline loop: {fmt(ratio(ours, base['loop_s']), 1)}x; "
        f"ours / (read + loop): "
        f"{fmt(ratio(ours, base['loop_s'] + base['fetch_s']), 1)}x; CPU: worker "
        f"{fmt(bt['worker_cpu_s'], 2)} s (both processes) / loop "
        f"{fmt(base['loop_cpu_s'], 2)} s = "
        f"{fmt(ratio(bt['worker_cpu_s'], base['loop_cpu_s']), 1)}x"
    )
