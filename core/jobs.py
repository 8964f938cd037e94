"""Dramatiq middleware every worker runs (listed in settings.DRAMATIQ_BROKER)."""

from __future__ import annotations

from typing import Any

from dramatiq.middleware import Middleware

# The message option that carries an outbox job's id (core/outbox.py).
OUTBOX_OPTION = "outbox_id"


class ConfirmOutbox(Middleware):
    """Delete a job's outbox row once the job has run to the end.

    A job that raised keeps its row: Dramatiq's own retries come first, and
    the outbox sweeper sends it again if they give up or are lost.
    """

    def after_process_message(
        self,
        broker: Any,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        job_id = message.options.get(OUTBOX_OPTION)
        if job_id is None or exception is not None:
            return
        # Here, not at the top: the broker (and this) is set up before the
        # models are loaded.
        from core.models import OutboxJob

        OutboxJob.objects.filter(pk=job_id).delete()
