"""What every benchmark shares: the environment, the database, daphne, numbers.

The orchestrator (``python -m bench``) never imports Django: the database is
dropped and re-created between benchmarks, so everything that needs the ORM
runs in a child process (``python -m bench.tasks …`` or a load generator) that
starts after the database it talks to exists.

Every server is started in its own process group and killed as a group, every
wait has a deadline, and traffic only ever goes to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
LOG_DIR = RESULTS_DIR / "logs"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
DAPHNE = str(ROOT / ".venv" / "bin" / "daphne")

HOST = "127.0.0.1"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = os.environ.get("BENCH_DB", "openclaw_bench")
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "9"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
WEBHOOK_SECRET = "bench-webhook-secret"
CHANNELS_PREFIX = "openclaw-bench:asgi"
METRICS_DIR = Path("/tmp/openclaw-bench-metrics")
# What-if: serve with the Procfile's web line (gunicorn + this many uvicorn workers).
WEB_PROCESSES = int(os.environ.get("BENCH_WEB_PROCESSES", "1"))


def bench_env(settings: str = "core.settings", **extra: str) -> dict[str, str]:
    """Production mode on the bench's own database and Redis db number."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "OPENCLAW_"))
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": settings,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
        "OPENCLAW_WEBHOOK_SECRET": WEBHOOK_SECRET,
        # The limiter would answer 429 long before the server is saturated.
        "OPENCLAW_WEBHOOK_RATE": "1000000/m",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on loopback (production mode would redirect to HTTPS),
        # and the harness scrapes /metrics without a token.
        "HTTPS": "false",
        "METRICS_PUBLIC": "true",
        "CHANNELS_PREFIX": CHANNELS_PREFIX,
        "CACHE_PREFIX": "openclaw-bench",
        "DRAMATIQ_NAMESPACE": "openclaw-bench-dramatiq",
        "PROMETHEUS_MULTIPROC_DIR": str(METRICS_DIR),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- database and redis -----------------------------------------------------------


def _admin_execute(*statements: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=10) as conn:
        for statement in statements:
            conn.execute(statement)


def reset_database() -> None:
    """Drop and re-create the bench database, migrate it, empty the bench Redis db."""
    _admin_execute(
        f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)',
        f'CREATE DATABASE "{DB_NAME}"',
    )
    # bench.settings adds the baseline app; --run-syncdb creates its tables
    # without a migration, so the app's migrations stay untouched.
    run(
        [PYTHON, "manage.py", "migrate", "--run-syncdb", "-v", "0"],
        env=bench_env("bench.settings"),
        timeout=300,
    )
    flush_redis()
    reset_metrics_dir()


def drop_database() -> None:
    _admin_execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def flush_redis() -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def reset_metrics_dir() -> None:
    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    for path in METRICS_DIR.glob("*.db"):
        path.unlink()


def run(
    args: Sequence[str], *, env: dict[str, str], timeout: float, capture: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a child to completion in its own process group; kill the group on timeout."""
    proc = subprocess.Popen(
        list(args),
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE if capture else None,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise RuntimeError(
            f"{' '.join(args[:4])} took longer than {timeout:.0f}s"
        ) from None
    finally:
        kill_group(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} exited with {proc.returncode}")
    return subprocess.CompletedProcess(args, proc.returncode, out, None)


def task(
    name: str, *args: str, settings: str = "bench.settings", timeout: float = 600
) -> Any:
    """Run ``python -m bench.tasks NAME ARGS``; it prints one JSON line last."""
    result = run(
        [PYTHON, "-m", "bench.tasks", name, *args],
        env=bench_env(settings),
        timeout=timeout,
        capture=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def load(module: str, config: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Run a load generator in its own process; config in, JSON result out."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    config_path = RESULTS_DIR / f".{module}.config.json"
    out_path = RESULTS_DIR / f".{module}.out.json"
    config_path.write_text(json.dumps(config))
    out_path.unlink(missing_ok=True)
    run(
        [PYTHON, "-m", f"bench.{module}", str(config_path), str(out_path)],
        env=bench_env(),
        timeout=timeout,
    )
    return json.loads(out_path.read_text())


def kill_group(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = None
    if pgid is not None and pgid != os.getpgid(0):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    if pgid is not None and pgid != os.getpgid(0):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


# --- daphne ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[Any]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def rss_kib(self) -> int:
        return rss_kib(self.pid)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@contextlib.contextmanager
def daphne(
    name: str,
    application: str = "core.asgi:application",
    settings: str = "core.settings",
    **extra_env: str,
) -> Iterator[Server]:
    """One daphne process started the production way, killed as a group on exit.

    With ``BENCH_WEB_PROCESSES`` above 1, the Procfile's web line (gunicorn
    with that many uvicorn workers) serves ``application`` instead.
    """
    how = "procfile" if WEB_PROCESSES > 1 else "daphne"
    with web(name, how, application, settings, WEB_PROCESSES, **extra_env) as server:
        yield server


@contextlib.contextmanager
def web(
    name: str,
    how: str,
    application: str,
    settings: str,
    workers: int,
    **extra_env: str,
) -> Iterator[Server]:
    """A web server for ``application``, killed as a group on exit.

    ``how``: "daphne" (one process), "procfile" (the Procfile's web line:
    gunicorn with ``workers`` uvicorn workers, core/gunicorn.py) or "wsgi"
    (a plain Django project's way: gunicorn's threaded workers running a
    WSGI ``application``, ``WEB_THREADS`` threads each). Ready once
    ``/healthz`` answers.
    """
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = LOG_DIR / f"web-{name}.log"
    gunicorn = [str(Path(PYTHON).parent / "gunicorn"), application]
    if how == "daphne":
        command = [DAPHNE, "-b", HOST, "-p", str(port), application]
    elif how == "procfile":
        command = [*gunicorn, "--config", "python:core.gunicorn"]
        command += ["--bind", f"{HOST}:{port}"]
        extra_env = {"WEB_CONCURRENCY": str(workers), **extra_env}
    elif how == "wsgi":
        command = [*gunicorn, "--worker-class", "gthread", "--workers", str(workers)]
        command += ["--threads", os.environ.get("WEB_THREADS", "12")]
        command += ["--bind", f"{HOST}:{port}", "--no-control-socket"]
    else:
        raise ValueError(f"unknown server kind {how!r}")
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=bench_env(settings, **extra_env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, port, proc, log_path)
    try:
        _wait_for_port(server, timeout=30)
        _wait_for_health(server, timeout=60)
        yield server
    finally:
        kill_group(proc)


def _wait_for_health(server: Server, *, timeout: float) -> None:
    """Until ``/healthz`` answers 200: gunicorn listens before its workers run."""
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited; see {server.log_path}")
        connection = http.client.HTTPConnection(HOST, server.port, timeout=5)
        try:
            connection.request("GET", "/healthz", headers={"Host": HOST})
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} never answered /healthz; see {server.log_path}")


def _wait_for_port(server: Server, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"daphne {server.name} exited; see {server.log_path}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection((HOST, server.port), 0.5),
        ):
            return
        time.sleep(0.1)
    raise RuntimeError(f"daphne {server.name} did not listen within {timeout}s")


@contextlib.contextmanager
def service(
    name: str,
    args: Sequence[str],
    *,
    env: dict[str, str],
    port: int | None = None,
    timeout: float = 30,
) -> Iterator[subprocess.Popen[Any]]:
    """A helper process (a worker, the gateway simulator) killed as a group on exit.

    Started in its own process group with its output in ``LOG_DIR/NAME.log``;
    with ``port``, waits (bounded) until something listens on it.
    """
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{name}.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            list(args),
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while port is not None:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited; see {log_path}")
            with contextlib.suppress(OSError):
                socket.create_connection((HOST, port), 0.5).close()
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not listen within {timeout}s")
            time.sleep(0.1)
        yield proc
    finally:
        kill_group(proc)


# --- numbers -------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (need not be sorted); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_stats(values: Sequence[float]) -> dict[str, float]:
    """Sample count, p50 / p90 / p99 and max of latencies in ms (NaN when empty)."""
    return {
        "samples": len(values),
        "p50_ms": percentile(values, 50),
        "p90_ms": percentile(values, 90),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values) if values else float("nan"),
    }


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    pg = "?"
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=5) as conn:
            pg = conn.execute("SHOW server_version").fetchone()[0]
    git = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %ci"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "commit": git + (" (+ uncommitted changes)" if dirty else ""),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "postgres": pg,
        "date": subprocess.run(["date"], capture_output=True, text=True).stdout.strip(),
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@dataclass
class Report:
    """What one run measured; saved as JSON under bench/results/."""

    quick: bool
    machine: dict[str, Any] = field(default_factory=machine)
    results: dict[str, Any] = field(default_factory=dict)

    def save(self) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        kind = "quick" if self.quick else "full"
        data = {"quick": self.quick, "machine": self.machine, "results": self.results}
        path = RESULTS_DIR / f"{stamp}-{kind}.json"
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False))
        (RESULTS_DIR / f"latest-{kind}.json").write_text(path.read_text())
        return path


def fmt(value: float, digits: int = 1) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:,.{digits}f}"


def wait_for_quiet(
    *, limit_pct: float = 30.0, max_wait: float = 90.0
) -> dict[str, Any]:
    """Wait (bounded) until the rest of the machine is idle; say how busy it was.

    The machine is shared: another process's test run would be measured too.
    """
    from bench.loadstats import machine_busy

    ncpu = os.cpu_count() or 1
    waited = 0.0
    while True:
        busy0, total0 = machine_busy()
        time.sleep(1.0)
        busy1, total1 = machine_busy()
        pct = 100 * ncpu * (busy1 - busy0) / max(total1 - total0, 1)
        waited += 1.0
        if pct <= limit_pct or waited >= max_wait:
            if pct > limit_pct:
                log(f"machine {pct:.0f}% busy after {waited:.0f}s; measuring anyway")
            elif waited > 1:
                log(f"waited {waited:.0f}s for a quiet machine")
            return {"background_busy_pct": round(pct, 1), "waited_s": waited}
        time.sleep(1.0)
        waited += 1.0
