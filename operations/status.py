"""What the system page and ``/status`` show: each part read on its own, fast,
and failing soft (an error is shown as the part's value, never raised)."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dramatiq
from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from prometheus_client import PROCESS_COLLECTOR, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY

from core.models import OutboxJob
from inbox.gateway import GatewayError, OpenClawClient
from inbox.models import OPS_COMMAND_REASON, Conversation, GatewayLink, WebhookDelivery
from operations import logs
from operations.models import JobRun

log = logging.getLogger(__name__)

# The page asks the gateway about this many of the newest conversations.
SESSIONS_SHOWN = 5
# Short: the page polls, and a gateway that is down must not hold it up.
GATEWAY_TIMEOUTS = {"connect": 2.0, "session": 2.0, "health": 2.0}
# A scheduled job that ran within this long counts as a live scheduler+worker.
ALIVE_WITHIN = timedelta(minutes=2)
_LOADED_AT = time.time()

_client: OpenClawClient | None = None
_client_for: tuple[str, str] = ("", "")
_client_lock = threading.Lock()


def gateway_client() -> OpenClawClient:
    """A client of the page's own, with short timeouts (not the reply sender's)."""
    global _client, _client_for
    wanted = (settings.OPENCLAW_GATEWAY_URL, settings.OPENCLAW_GATEWAY_TOKEN)
    with _client_lock:
        if _client is None or _client_for != wanted:
            if _client is not None:
                _client.close()
            _client = OpenClawClient(timeouts=GATEWAY_TIMEOUTS)
            _client_for = wanted
        return _client


def reset_gateway_client() -> None:
    global _client
    with _client_lock:
        if _client is not None:
            _client.close()
        _client = None


@dataclass
class Gateway:
    configured: bool
    url: str = ""
    healthy: bool | None = None
    ready: bool | None = None
    error: str = ""
    link: GatewayLink | None = None


def gateway() -> Gateway:
    client = gateway_client()
    url = client.url
    if not url:
        return Gateway(configured=False)
    found = Gateway(configured=True, url=url)
    found.link = GatewayLink.objects.filter(url=url).first()
    try:
        found.healthy = bool(client.health().get("ok", True))
        found.ready = bool(client.ready().get("ready", True))
    except GatewayError as exc:
        found.error = str(exc)[:300]
    return found


@dataclass
class Session:
    conversation: Conversation
    send_policy: str = ""
    transcript_length: int | None = None
    error: str = ""


def sessions(limit: int = SESSIONS_SHOWN) -> list[Session]:
    """The newest conversations and what the gateway says of each session.

    One ``sessions.describe`` each, at most ``limit``; after a transient
    failure the rest are not asked (the gateway is away: the same error).
    """
    client = gateway_client()
    rows = [
        Session(conversation=c)
        for c in Conversation.objects.order_by("-updated_at")[:limit]
    ]
    error = "" if client.url else "no gateway configured"
    for row in rows:
        # The transcript's length is its last messageSeq, as the connector saw it.
        row.transcript_length = row.conversation.gateway_seq or None
        if error:
            row.error = error
            continue
        try:
            described = client.describe(row.conversation.session_id)
        except GatewayError as exc:
            row.error = str(exc)[:300]
            if not exc.permanent:
                error = row.error  # unreachable or slow: the rest would be too
            continue
        row.send_policy = str(described.get("sendPolicy") or "allow")
    return rows


@dataclass
class Queue:
    name: str
    depth: int | None
    error: str = ""


def _redis_of(broker: Any) -> tuple[Any, str] | None:
    """The Redis client and key namespace of a RedisBroker; ``None`` for the
    embedded in-process broker (it has neither)."""
    client = getattr(broker, "client", None)
    namespace = getattr(broker, "namespace", None)
    if client is None or namespace is None:
        return None
    return client, namespace


def waiting(broker: Any, name: str) -> int:
    """Messages in queue ``name`` that no worker has taken yet.

    On Redis that is the length of the queue's list of ids: a message a
    worker is running has left it (it sits in the worker's ack set until
    done), while the broker's own qsize counts it twice, from its data hash
    and its ack set.
    """
    redis = _redis_of(broker)
    if redis is not None:
        client, namespace = redis
        return int(client.llen(f"{namespace}:{name}"))
    return int(broker.queues[name].qsize())


def queues() -> list[Queue]:
    """Messages waiting in each Dramatiq queue (Redis, or the in-process stub)."""
    broker = dramatiq.get_broker()
    found = []
    for name in sorted(broker.get_declared_queues()):
        try:
            depth = waiting(broker, name)
            if name.endswith(".DQ") and not depth:
                continue  # a delay queue: shown only when something waits
            found.append(Queue(name, depth))
        except Exception as exc:  # the broker is away: shown, not raised
            found.append(Queue(name, None, str(exc)[:200]))
    return found


def broker_processes() -> int | None:
    """Processes that spoke to the Redis broker in the last minute (workers
    and the processes sending to them); ``None`` for the in-process broker."""
    redis = _redis_of(dramatiq.get_broker())
    if redis is None:
        return None
    client, namespace = redis
    now = time.time() * 1000
    try:
        return int(client.zcount(f"{namespace}:__heartbeats__", now - 60_000, "+inf"))
    except Exception:
        log.warning("could not read the broker's heartbeats", exc_info=True)
        return None


# What each scheduled job is for, in the page's language. A job missing here
# shows its actor's docstring's first line.
JOB_LABELS = {
    "ops_heartbeat": _("Heartbeat and expiry of unconfirmed ops commands"),
    "resend_outbox": _("Send again the jobs that were lost"),
    "resume_stalled_replies": _("Resume replies whose job was lost"),
    "wake_snoozed_conversations": _("Wake snoozed conversations"),
    "notify_sla_breaches": _("Ring the bell for escalations past their SLA"),
    "auto_assign_escalations": _("Hand waiting conversations to online agents"),
    "prune_webhook_deliveries": _("Forget webhook logs past their retention"),
    "roll_up_recent_days": _("Recompute the reports' recent days"),
    "send_daily_digest": _("Write and send the daily digest"),
    "schedule_monitor_checks": _("Check the website monitors that are due"),
}


@dataclass
class Job:
    name: str
    schedule: str  # as crontab writes it
    run: JobRun | None
    label: str = ""
    every: str = ""  # the schedule for people ("every minute"), or ""

    @property
    def is_late(self) -> bool:
        return self.run is None or self.run.last_finished_at is None


def scheduled_jobs() -> list[Job]:
    from dramatiq_crontab import scheduler

    runs = {run.name: run for run in JobRun.objects.all()}
    jobs = []
    for job in scheduler.get_jobs():
        cron = _schedule(job.trigger)
        jobs.append(
            Job(
                job.name,
                cron,
                runs.pop(job.name, None),
                label=job_label(job.name),
                every=describe_schedule(cron),
            )
        )
    jobs += [Job(name, "", run, label=job_label(name)) for name, run in runs.items()]
    return sorted(jobs, key=lambda j: j.name)


def job_label(name: str) -> str:
    """A scheduled job's purpose for people: ours, else its actor's docstring."""
    if name in JOB_LABELS:
        return str(JOB_LABELS[name])
    try:
        actor = dramatiq.get_broker().get_actor(name)
    except dramatiq.errors.ActorNotFound:
        return ""
    doc = (actor.fn.__doc__ or "").strip()
    return doc.split("\n", 1)[0].split(". ", 1)[0].rstrip(".:")[:120]


def _schedule(trigger: Any) -> str:
    """A cron trigger as crontab writes it (``*/5 * * * *``)."""
    fields = {f.name: str(f) for f in getattr(trigger, "fields", ())}
    names = ("minute", "hour", "day", "month", "day_of_week")
    if all(name in fields for name in names):
        return " ".join(fields[name] for name in names)
    return str(trigger)


def describe_schedule(cron: str) -> str:
    """The common cron forms in words ("every minute", "daily at 03:17", in
    the server's time zone); "" for the rest (the page shows the cron line)."""
    parts = cron.split()
    if len(parts) != 5 or parts[2:] != ["*", "*", "*"]:
        return ""
    minute, hour = parts[:2]
    if hour == "*":
        if minute == "*":
            return str(_("every minute"))
        if minute.startswith("*/") and minute[2:].isdigit():
            return str(
                ngettext("every %(n)d minute", "every %(n)d minutes", int(minute[2:]))
                % {"n": int(minute[2:])}
            )
        if minute.isdigit():
            return str(_("hourly at :%(minute)02d") % {"minute": int(minute)})
        return ""
    if minute.isdigit() and hour.isdigit():
        return str(
            _("daily at %(time)s") % {"time": f"{int(hour):02d}:{int(minute):02d}"}
        )
    return ""


def workers_alive() -> bool:
    """A scheduled job finished lately: a scheduler sent it and a worker ran it."""
    return JobRun.objects.filter(
        last_finished_at__gte=timezone.now() - ALIVE_WITHIN
    ).exists()


@dataclass
class Webhooks:
    last: WebhookDelivery | None
    total: int
    rejected: int
    ops_commands: int = 0

    @property
    def error_rate(self) -> float | None:
        return self.rejected / self.total if self.total else None


def webhooks(within: timedelta = timedelta(hours=1)) -> Webhooks:
    """What senders posted: a lead's replay (a row of its own) is no traffic."""
    since = timezone.now() - within
    received = WebhookDelivery.objects.filter(replay_of__isnull=True)
    counts = received.filter(received_at__gte=since).aggregate(
        total=Count("pk"),
        rejected=Count("pk", filter=Q(outcome=WebhookDelivery.Outcome.REJECTED)),
        ops_commands=Count("pk", filter=Q(error=OPS_COMMAND_REASON)),
    )
    last = received.order_by("-received_at").first()
    return Webhooks(last, counts["total"], counts["rejected"], counts["ops_commands"])


def open_escalations() -> int:
    return Conversation.objects.filter(
        is_active=True, status=Conversation.Status.ESCALATED
    ).count()


@dataclass
class Outbox:
    waiting: int
    overdue: int


def outbox() -> Outbox:
    now = timezone.now()
    counts = OutboxJob.objects.aggregate(
        waiting=Count("pk"), overdue=Count("pk", filter=Q(due_at__lt=now))
    )
    return Outbox(counts["waiting"], counts["overdue"])


def errors_logged(within: timedelta = timedelta(hours=1)) -> int | None:
    try:
        return logs.count_since(within.total_seconds())
    except Exception:
        log.warning("could not read the recent errors", exc_info=True)
        return None


@dataclass
class MetricRow:
    name: str
    labels: str
    value: float


@dataclass
class Metrics:
    rows: list[MetricRow] = field(default_factory=list)
    error: str = ""


def metrics(limit: int = 60) -> Metrics:
    """Counters and gauges of this inbox (``openclaw_*``), summed over every
    process when they write to ``PROMETHEUS_MULTIPROC_DIR``."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    found = Metrics()
    try:
        families = list(registry.collect())
    except Exception as exc:
        found.error = str(exc)[:200]
        return found
    for family in sorted(families, key=lambda f: f.name):
        if not family.name.startswith("openclaw_") or family.type not in (
            "counter",
            "gauge",
        ):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = ", ".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found.rows.append(MetricRow(sample.name, labels, sample.value))
    found.rows = found.rows[:limit]
    return found


def age(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = int((timezone.now() - moment).total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def process_started_at() -> float:
    """When this process started (epoch seconds): the kernel's record where
    prometheus-client reads it, else when this module was loaded."""
    for family in PROCESS_COLLECTOR.collect():
        for sample in family.samples:
            if sample.name == "process_start_time_seconds":
                return float(sample.value)
    return _LOADED_AT


def just_started() -> bool:
    """Started less than ALIVE_WITHIN ago: no scheduled run is due yet."""
    return time.time() - process_started_at() < ALIVE_WITHIN.total_seconds()


def workers_line(alive: bool, latest: datetime | None) -> str:
    if alive:
        return f"Workers: alive (last scheduled run {age(latest)})"
    if latest is None and just_started():
        return (
            "Workers: starting: no scheduled job has run yet"
            " (the scheduler runs every minute)"
        )
    return f"Workers: no scheduled job ran lately (last scheduled run {age(latest)})"


def summary() -> str:
    """``/status``'s answer: plain text for a chat."""
    lines = []
    depth = [f"{q.name} {q.depth if q.depth is not None else '?'}" for q in queues()]
    lines.append("Queues: " + (", ".join(depth) or "none declared"))
    jobs = scheduled_jobs()
    latest = max(
        (j.run.last_finished_at for j in jobs if j.run and j.run.last_finished_at),
        default=None,
    )
    lines.append(workers_line(workers_alive(), latest))
    processes = broker_processes()
    if processes is not None:
        lines.append(f"Broker processes seen in the last minute: {processes}")
    hooks = webhooks()
    last = hooks.last.received_at if hooks.last else None
    lines.append(f"Last webhook: {age(last)}")
    rate = hooks.error_rate
    lines.append(
        f"Webhooks in the last hour: {hooks.total}, rejected {hooks.rejected}"
        + (f" ({rate:.0%})" if rate is not None else "")
        + f", ops commands {hooks.ops_commands}"
    )
    errors = errors_logged()
    lines.append(
        f"Errors logged in the last hour: {errors if errors is not None else '?'}"
    )
    box = outbox()
    lines.append(f"Outbox: {box.waiting} waiting, {box.overdue} overdue")
    lines.append(f"Open escalations: {open_escalations()}")
    return "\n".join(lines)
