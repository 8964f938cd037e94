"""The scheduler's last runs: a Dramatiq middleware (in DRAMATIQ_BROKER's list)
that records each run of an actor the scheduler starts (dramatiq-crontab's
``@cron``), whatever app it is in: a ``JobRun`` row per job."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from dramatiq.middleware import Middleware


def scheduled_names() -> set[str]:
    from dramatiq_crontab import scheduler

    return {job.name for job in scheduler.get_jobs()}


class RecordJobRuns(Middleware):
    def before_process_message(self, broker: Any, message: Any) -> None:
        if message.actor_name in scheduled_names():
            message.options["ops_started_at"] = timezone.now().isoformat()

    def after_process_message(
        self,
        broker: Any,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started = message.options.get("ops_started_at")
        if started is None:
            return
        # Here, not at the top: the broker (and this) is set up before the
        # models are loaded.
        from django.db.models import F

        from operations.models import JobRun

        fields = {
            "last_started_at": started,
            "last_finished_at": timezone.now(),
            "last_error": "" if exception is None else repr(exception)[:500],
        }
        updated = JobRun.objects.filter(name=message.actor_name).update(
            runs=F("runs") + 1, **fields
        )
        if not updated:
            JobRun.objects.get_or_create(
                name=message.actor_name, defaults={"runs": 1, **fields}
            )
