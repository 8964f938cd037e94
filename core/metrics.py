"""Prometheus exposition that adds up across processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (production mode), every daphne and
worker process writes its samples there and ``/metrics`` merges them. Apps add
collectors computed at scrape time (such as database counts) with
``register_collector``.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

_scrape_collectors: list[Collector] = []


def register_collector(collector: Collector) -> None:
    if collector not in _scrape_collectors:
        _scrape_collectors.append(collector)
        REGISTRY.register(collector)  # this process's own exposition


def render() -> bytes:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest(REGISTRY)
    # Every process's samples, from their files; then the scrape-time ones.
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    for collector in _scrape_collectors:
        registry.register(collector)
    return generate_latest(registry)
