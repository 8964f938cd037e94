"""What every app shares in the database: the outbox of jobs not yet confirmed."""

from __future__ import annotations

from django.db import models


class OutboxJob(models.Model):
    """A background job that must not be lost, written in the transaction
    that made it necessary (``core.outbox.enqueue``).

    Sent to Dramatiq once that transaction commits; deleted when the job has
    run (``core.outbox.ConfirmMiddleware``). A row still there at ``due_at``
    was lost on the way (the process died after the commit, the broker was
    down, the worker was killed) and the scheduler sends it again
    (``core.tasks.resend_outbox``), every ``resend_seconds``. The jobs are
    idempotent: a second run finds its work done.
    """

    actor = models.CharField(max_length=100)
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    due_at = models.DateTimeField()
    resend_seconds = models.PositiveIntegerField(default=60)
    attempts = models.PositiveSmallIntegerField(default=1)

    class Meta:
        indexes = [models.Index(fields=["due_at"], name="outbox_due")]

    def __str__(self) -> str:
        return f"{self.actor}{tuple(self.args)} (#{self.pk}, {self.attempts} sent)"
