"""Benchmark 4: an agent's reply, click -> gateway received -> "sent" shown.

Production mode, four processes besides the load generator:

* the gateway simulator's HTTP API (``bench.gateway_sim``), which stamps the
  time it receives each send;
* a Dramatiq worker, ``manage.py rundramatiq --processes 2 --threads 4`` as
  in the Procfile, with ``OPENCLAW_GATEWAY_URL`` pointing at the simulator;
* daphne serving ``core.asgi:application``;
* the load process (``bench.load_replies``): 20 logged-in agents, each on
  their own conversation with its websocket open.

Per round every agent clicks "Send" at once (``POST /inbox/c/<pk>/reply/``)
and waits for the ``state-sent`` fragment of that reply on its websocket.
The baseline, in the same round right after, is the same send POSTed straight
to the simulator's API by the same client library at the same concurrency.
Then the Django floor (``bench.seed.views.reply_floor``): the same agents'
sessions POST to a view that does the least a Django view can do for a
reply (session, user and CSRF checks, one INSERT, the gateway call inside the
request; no live push, no worker). It tells how much of the difference any
Django view in one daphne pays on this machine.
Afterwards every reply must have reached the gateway exactly once.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from bench import common
from bench.common import fmt, latency_stats, log

AGENTS = int(os.environ.get("BENCH_REPLIES_AGENTS", "20"))
# The Procfile's worker.
WORKER_ARGS = ["--processes", "2", "--threads", "4"]
# What-if only: Dramatiq's idle poll ceiling (ms, default 1000); see the docs.
# As the Procfile runs it: an idle worker looks for jobs every 100 ms at most.
WORKER_TIMEOUT_MS = os.environ.get("BENCH_WORKER_TIMEOUT_MS", "100")
GATEWAY_TOKEN = "bench-gateway-token"
TARGETS = {"p50_over_baseline_ms": 50.0}
MARKER = re.compile(r"\b([rbf]p\d{6}x)")  # as bench.load_replies


def run(quick: bool) -> dict[str, Any]:
    rounds = 3 if quick else 20
    solo_rounds = 3 if quick else 10
    common.reset_database()
    gateway_port = common.free_port()
    gateway_url = f"http://{common.HOST}:{gateway_port}"
    dump = common.RESULTS_DIR / ".gateway_sim.out.json"
    dump.parent.mkdir(parents=True, exist_ok=True)
    dump.unlink(missing_ok=True)
    worker_env = common.bench_env(
        OPENCLAW_GATEWAY_URL=gateway_url, OPENCLAW_GATEWAY_TOKEN=GATEWAY_TOKEN
    )
    worker_env.pop("dramatiq_worker_timeout", None)
    if WORKER_TIMEOUT_MS:
        worker_env["dramatiq_worker_timeout"] = WORKER_TIMEOUT_MS
    quiet = common.wait_for_quiet()
    with (
        common.service(
            "replies-gateway",
            [common.PYTHON, "-m", "bench.gateway_sim"]
            + [str(gateway_port), GATEWAY_TOKEN, str(dump)],
            env=common.bench_env(),
            port=gateway_port,
        ) as gateway,
        common.service(
            "replies-worker",
            [common.PYTHON, "manage.py", "rundramatiq", *WORKER_ARGS],
            env=worker_env,
        ) as worker,
        # Web and worker get the same gateway settings, as a deployment does:
        # the web process sends a new reply itself (INBOX_SEND_FROM_WEB).
        # bench.settings: the app's settings plus the floor's URL.
        common.daphne(
            "replies",
            settings="bench.settings",
            OPENCLAW_GATEWAY_URL=gateway_url,
            OPENCLAW_GATEWAY_TOKEN=GATEWAY_TOKEN,
        ) as server,
    ):
        log(
            f"replies: {AGENTS} agents x {rounds} rounds (+ {solo_rounds} solo), "
            f"gateway on {gateway_url}"
        )
        config = {
            "agents": AGENTS,
            "rounds": rounds,
            "solo_rounds": solo_rounds,
            "run": "q" if quick else "f",
            "base_url": server.url,
            "origin": server.url,
            "ws_base": f"ws://{common.HOST}:{server.port}",
            "webhook_url": server.url + "/api/openclaw/webhook/",
            "secret": common.WEBHOOK_SECRET,
            "server_pid": server.pid,
            "worker_pgid": worker.pid,
            "gateway_pgid": gateway.pid,
            "gateway_url": gateway_url,
            "gateway_token": GATEWAY_TOKEN,
            "sent_timeout": 30.0,
            "settle": 0.3,
        }
        measured = common.load(
            "load_replies", config, timeout=120 + (rounds + solo_rounds) * 70
        )
    # The simulator writes what it received when it is stopped (just now).
    received = json.loads(dump.read_text())
    dump.unlink(missing_ok=True)

    records = measured.pop("records")
    check = _exactly_once(records, received, measured["database"])
    summary = {
        phase: _phase(records, phase) for phase in ("concurrent", "solo", "warmup")
    }
    _print(summary, check, measured, rounds, solo_rounds)
    result: dict[str, Any] = {
        "agents": AGENTS,
        "web_processes": common.WEB_PROCESSES,
        "rounds": rounds,
        "solo_rounds": solo_rounds,
        "worker": " ".join(WORKER_ARGS),
        "dramatiq_worker_timeout_ms": WORKER_TIMEOUT_MS or "default (1000)",
        "summary": summary,
        "exactly_once": check,
        "load": measured,
        "gateway": {
            "attempts": received["attempts"],
            "connections_opened": received["connections_opened"],
        },
        "targets": TARGETS,
        "background": quiet,
        "records": records,
    }
    if not check["ok"]:
        log("replies: EXACTLY-ONCE CHECK FAILED, see exactly_once in the JSON")
        result["error"] = f"exactly-once check failed: {check}"
    return result


def _ms(later: float | None, earlier: float | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier) * 1000


def _phase(records: list[dict[str, Any]], phase: str) -> dict[str, Any]:
    ours = [r for r in records if r["phase"] == phase and r["kind"] == "ours"]
    base = [r for r in records if r["phase"] == phase and r["kind"] == "base"]
    floor = [r for r in records if r["phase"] == phase and r["kind"] == "floor"]

    def series(rows: list[dict[str, Any]], later: Any, earlier: Any) -> list[float]:
        values = [_ms(later(r), earlier(r)) for r in rows]
        return [v for v in values if v is not None]

    def shown(state: str) -> Any:
        return lambda r: r.get("shown", {}).get(state)

    def click(r: dict[str, Any]) -> float:
        return r["click"]

    def answered(r: dict[str, Any]) -> float:
        return r["answered"]

    def received(r: dict[str, Any]) -> float | None:
        return r.get("received")

    result = {
        "ours": {
            "click_to_answered": latency_stats(series(ours, answered, click)),
            "click_to_received": latency_stats(series(ours, received, click)),
            "click_to_sent_shown": latency_stats(series(ours, shown("sent"), click)),
            # Where the time goes: each step's own distribution. "queued" and
            # "sending" as shown on the websocket are for reference: they are
            # pushed by daphne, which can be later than the worker's next step.
            "steps": {
                "click_to_answered": latency_stats(series(ours, answered, click)),
                "answered_to_received": latency_stats(series(ours, received, answered)),
                "received_to_sent_shown": latency_stats(
                    series(ours, shown("sent"), received)
                ),
                "click_to_queued_shown": latency_stats(
                    series(ours, shown("queued"), click)
                ),
                "click_to_sending_shown": latency_stats(
                    series(ours, shown("sending"), click)
                ),
            },
            "sent_not_shown": sum(1 for r in ours if "sent" not in r.get("shown", {})),
            "statuses": _count(r["status"] for r in ours),
        },
        "base": {
            "click_to_received": latency_stats(series(base, received, click)),
            "click_to_answered": latency_stats(series(base, answered, click)),
            "statuses": _count(r["status"] for r in base),
        },
        "floor": {
            "click_to_received": latency_stats(series(floor, received, click)),
            "click_to_answered": latency_stats(series(floor, answered, click)),
            "statuses": _count(r["status"] for r in floor),
        },
    }
    o, b, f = result["ours"], result["base"], result["floor"]
    result["p50_ours_minus_base_ms"] = {
        "click_to_received": o["click_to_received"]["p50_ms"]
        - b["click_to_received"]["p50_ms"],
        "sent_shown_vs_answered": o["click_to_sent_shown"]["p50_ms"]
        - b["click_to_answered"]["p50_ms"],
    }
    result["p50_floor_minus_base_ms"] = {
        "click_to_received": f["click_to_received"]["p50_ms"]
        - b["click_to_received"]["p50_ms"],
    }
    return result


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


def _exactly_once(
    records: list[dict[str, Any]], received: dict[str, Any], database: dict[str, Any]
) -> dict[str, Any]:
    """Every reply the app accepted reached the gateway once; nothing else did."""
    times: dict[str, list[float]] = {}
    for send in received["sends"]:
        match = MARKER.search(send["text"]) if send["kind"] == "send" else None
        times.setdefault(match.group(1) if match else "?", []).append(
            send["received_at"]
        )
    clicked: set[str] = set()
    for record in records:
        arrivals = sorted(times.get(record["marker"], []))
        record["receipts"] = len(arrivals)
        record["received"] = arrivals[0] if arrivals else None
        clicked.add(record["marker"])
    ours = [r for r in records if r["kind"] == "ours" and r["status"] == 200]
    check = {
        "replies_accepted": len(ours),
        "replies_refused": sum(
            1 for r in records if r["kind"] == "ours" and r["status"] != 200
        ),
        "gateway_sends_for_replies": sum(
            len(v) for k, v in times.items() if k.startswith("rp")
        ),
        "gateway_attempts_total": received["attempts"],
        "baseline_sends": sum(len(v) for k, v in times.items() if k.startswith("bp")),
        "floor_sends": sum(len(v) for k, v in times.items() if k.startswith("fp")),
        "missing": sum(1 for r in ours if r["receipts"] == 0),
        "duplicated": sum(1 for r in ours if r["receipts"] > 1),
        "unexpected": sum(len(v) for k, v in times.items() if k not in clicked),
        "database": database,
    }
    check["ok"] = (
        check["replies_refused"] == 0
        and check["missing"] == 0
        and check["duplicated"] == 0
        and check["unexpected"] == 0
        and check["gateway_sends_for_replies"] == len(ours)
        and database["replies"] == len(ours)
        and database["states"].get("sent", 0) == len(ours)
    )
    return check


def _signed(value: float) -> str:
    return "n/a" if value != value else f"{value:+,.1f}"


def _line(label: str, s: dict[str, float]) -> str:
    return (
        f"  {label:<30} {fmt(s['p50_ms']):>8} {fmt(s['p90_ms']):>8} "
        f"{fmt(s['p99_ms']):>8} {fmt(s['max_ms']):>8} {s['samples']:>8}"
    )


def _print(
    summary: dict[str, Any],
    check: dict[str, Any],
    load: dict[str, Any],
    rounds: int,
    solo_rounds: int,
) -> None:
    c = summary["concurrent"]
    o, b = c["ours"], c["base"]
    print(
        f"\n== replies: {AGENTS} agents x {rounds} rounds, all clicking at once (ms) =="
    )
    print(f"  {'':<30} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8} {'samples':>8}")
    print(_line("ours click -> POST answered", o["click_to_answered"]))
    print(_line("ours click -> gateway received", o["click_to_received"]))
    print(_line('ours click -> "sent" shown', o["click_to_sent_shown"]))
    print(_line("base click -> gateway received", b["click_to_received"]))
    print(_line("base click -> answered", b["click_to_answered"]))
    print(_line("floor click -> gateway received", c["floor"]["click_to_received"]))
    print(_line("floor click -> answered", c["floor"]["click_to_answered"]))
    d = c["p50_ours_minus_base_ms"]
    print(
        f"  ours - base at p50: click->received {_signed(d['click_to_received'])} ms, "
        f'"sent" shown vs answered {_signed(d["sent_shown_vs_answered"])} ms '
        f"(target < {TARGETS['p50_over_baseline_ms']:.0f} ms); Django floor - base "
        f"{_signed(c['p50_floor_minus_base_ms']['click_to_received'])} ms"
    )
    s = o["steps"]
    print(
        "  steps, p50 of each: click -> POST answered "
        f"{fmt(s['click_to_answered']['p50_ms'])}, "
        f"-> gateway received {fmt(s['answered_to_received']['p50_ms'])} "
        "(enqueue, worker pick-up, claim), "
        f'-> "sent" shown {fmt(s["received_to_sent_shown"]["p50_ms"])}'
    )
    print(
        f"  statuses ours {o['statuses']}, base {b['statuses']}, "
        f"floor {c['floor']['statuses']}, "
        f'"sent" never shown {o["sent_not_shown"]}'
    )
    solo = summary["solo"]
    so, sb = solo["ours"], solo["base"]
    print(
        f"  solo (1 agent, {solo_rounds} replies): ours received p50 "
        f'{fmt(so["click_to_received"]["p50_ms"])}, "sent" shown p50 '
        f"{fmt(so['click_to_sent_shown']['p50_ms'])}; base received p50 "
        f"{fmt(sb['click_to_received']['p50_ms'])}, answered p50 "
        f"{fmt(sb['click_to_answered']['p50_ms'])}; ours - base "
        f"{_signed(solo['p50_ours_minus_base_ms']['click_to_received'])} / "
        f"{_signed(solo['p50_ours_minus_base_ms']['sent_shown_vs_answered'])} ms; "
        "steps p50: answered "
        f"{fmt(so['steps']['click_to_answered']['p50_ms'])}, -> received "
        f'{fmt(so["steps"]["answered_to_received"]["p50_ms"])}, -> "sent" shown '
        f"{fmt(so['steps']['received_to_sent_shown']['p50_ms'])}"
    )
    verdict = "OK" if check["ok"] else "FAILED"
    print(
        f"  exactly once: {verdict}: {check['replies_accepted']} replies accepted, "
        f"{check['gateway_sends_for_replies']} sends at the gateway "
        f"({check['missing']} missing, {check['duplicated']} duplicated, "
        f"{check['unexpected']} unexpected; "
        f"{check['gateway_attempts_total']} send requests in all incl. "
        f"{check['baseline_sends']} baseline and {check['floor_sends']} floor); "
        f"database {check['database']['states']}"
    )
    print(
        f"  cpu during the concurrent rounds: daphne {load['server_cpu_pct']}%, "
        f"worker {load['worker_cpu_pct']}%, gateway {load['gateway_cpu_pct']}%, "
        f"load generator {load['loadgen_cpu_pct']}%, "
        f"machine {load['machine_busy_pct']}% (of {os.cpu_count()} cores x 100)"
    )
