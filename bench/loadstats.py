"""Small helpers for the load generators (no Django here)."""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0.0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def group_cpu(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid``."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += process_cpu(int(entry.name))
    return total


async def read_frames(ws: Any, stop: Any, take: Callable[[str], None]) -> str | None:
    """Hand every text frame to ``take`` until ``stop`` is set.

    Returns how the server closed the socket ("closed 4401"), or ``None``
    if it did not.
    """
    import websockets

    try:
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            if isinstance(text, str):
                take(text)
    except websockets.ConnectionClosed as exc:
        return f"closed {exc.rcvd.code if exc.rcvd else '?'}"
    return None


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return total - idle, total


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def all_process_cpu() -> dict[int, tuple[str, float]]:
    """pid -> (name, CPU seconds) for every process we can read."""
    ticks = os.sysconf("SC_CLK_TCK")
    result = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat.split("(", 1)[1].rsplit(")", 1)[0]
        fields = stat.rsplit(")", 1)[1].split()
        result[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / ticks)
    return result


def busiest(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    wall: float,
) -> dict[str, float]:
    """CPU % by process name over the window: shows who else was using the machine."""
    by_name: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        used = cpu - before.get(pid, (name, 0.0))[1]
        by_name[name] = by_name.get(name, 0.0) + used
    top = sorted(by_name.items(), key=lambda item: -item[1])[:6]
    return {name: round(100 * used / wall, 1) for name, used in top if used > 0}


@dataclass
class CpuWindow:
    """CPU used by the server, by this load process and by the whole machine.

    The server is every process in the group ``server_pid`` leads: one daphne,
    or gunicorn and its uvicorn workers.
    """

    server_pid: int

    def __post_init__(self) -> None:
        self.procs0 = all_process_cpu()
        self.t0 = time.perf_counter()
        self.server0 = group_cpu(self.server_pid)
        self.self0 = self_cpu()
        self.busy0, self.total0 = machine_busy()

    def finish(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        busy, total = machine_busy()
        procs1 = all_process_cpu()
        ncpu = os.cpu_count() or 1
        return {
            # 100 = one core fully busy.
            "server_cpu_pct": round(
                100 * (group_cpu(self.server_pid) - self.server0) / wall, 1
            ),
            "loadgen_cpu_pct": round(100 * (self_cpu() - self.self0) / wall, 1),
            "machine_busy_pct": round(
                100 * ncpu * (busy - self.busy0) / max(total - self.total0, 1), 1
            ),
            "busiest_processes": busiest(self.procs0, procs1, wall),
        }
