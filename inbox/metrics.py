"""The inbox's Prometheus metrics (names from the seed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MESSAGES_RECEIVED = Counter(
    "openclaw_messages_received_total",
    "Messages stored from the gateway.",
    ["platform", "direction"],
)
PROCESSING_SECONDS = Histogram(
    "openclaw_message_processing_seconds",
    "Time to validate and store one webhook delivery.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
DELIVERIES = Counter(
    "openclaw_webhook_deliveries_total",
    "Webhook deliveries answered, by outcome.",
    ["outcome"],
)
REJECTIONS = Counter(
    "openclaw_webhook_rejections_total",
    "Webhook deliveries refused, by reason.",
    ["reason"],
)
CONNECTOR_CONNECTED = Gauge(
    "openclaw_connector_connected",
    "1 while this process's connector holds an authenticated gateway socket.",
    multiprocess_mode="livemax",
)
CONNECTOR_EVENTS = Counter(
    "openclaw_connector_events_total",
    "Transcript rows read from the gateway, by role and outcome.",
    ["role", "outcome"],
)
CONNECTOR_LAG = Histogram(
    "openclaw_connector_lag_seconds",
    "From the gateway recording a row to the inbox storing it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 300.0),
)
CONNECTOR_RECONNECTS = Counter(
    "openclaw_connector_reconnects_total",
    "Connections to the gateway opened after the first, by why the last one ended.",
    ["reason"],
)
CONNECTOR_RECOVERED = Counter(
    "openclaw_connector_recovered_total",
    "Messages stored from chat.history catch-up rather than the live feed.",
)
WEBSOCKET_CLIENTS = Gauge(
    "openclaw_websocket_clients",
    "Staff websockets connected now.",
    multiprocess_mode="livesum",
)


def record_delivery(
    outcome: str, platform: str, message: object, seconds: float
) -> None:
    DELIVERIES.labels(outcome=outcome).inc()
    record_stored(platform, message, seconds)


def record_stored(platform: str, message: Any, seconds: float) -> None:
    """One event stored (from a webhook or the connector)."""
    PROCESSING_SECONDS.observe(seconds)
    if message is not None:
        MESSAGES_RECEIVED.labels(platform=platform, direction=message.direction).inc()


def record_rejection(reason: str) -> None:
    """``reason`` is a short category (signature, payload, size, …), never user text."""
    DELIVERIES.labels(outcome="rejected").inc()
    REJECTIONS.labels(reason=reason).inc()


class ActiveSessionsCollector(Collector):
    """``openclaw_active_sessions`` read from the database at scrape time.

    A count kept in process memory would be wrong as soon as two processes
    ingest; the database is the one place that knows.
    """

    NAME = "openclaw_active_sessions"
    HELP = "Conversations the gateway has not ended."

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only: registering it must not query the database.
        yield GaugeMetricFamily(self.NAME, self.HELP)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from inbox.models import Conversation

        gauge = GaugeMetricFamily(self.NAME, self.HELP)
        gauge.add_metric([], Conversation.objects.active().count())
        yield gauge
