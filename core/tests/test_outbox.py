"""The outbox: a job written with the change that needs it, sent after the
commit, confirmed when it has run, sent again by the sweeper when lost."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from django.db import transaction
from django.utils import timezone

from automations.models import Ticket, Trigger
from core import outbox
from core.models import OutboxJob
from core.testing import drain, message_event, post_webhook
from inbox.models import Message

pytestmark = pytest.mark.django_db(transaction=True)
QUEUES = ("default", "automations")


@pytest.fixture
def refund_ticket() -> Trigger:
    return Trigger.objects.create(
        name="Refund ticket",
        patterns=["환불|refund"],
        actions=[{"type": "create_ticket", "subject": "Refund", "priority": "normal"}],
    )


def test_enqueue_needs_the_transaction_that_makes_the_job_necessary() -> None:
    with pytest.raises(RuntimeError, match="transaction"):
        outbox.enqueue("process_inbound_message", 1)


def test_a_stored_message_job_is_confirmed_once_it_has_run(
    worker: Any, refund_ticket: Trigger, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[OutboxJob] = []
    send = outbox._send
    # The running worker may confirm the job before this test could read its
    # row: note what was sent instead.
    monkeypatch.setattr(outbox, "_send", lambda job: (sent.append(job), send(job)))
    assert post_webhook(message_event(text="환불 해주세요")).status_code == 200
    message = Message.objects.get()
    [job] = sent
    assert (job.actor, job.args) == ("process_inbound_message", [message.pk])
    drain(worker, *QUEUES, rounds=2)
    assert not OutboxJob.objects.exists()
    assert Ticket.objects.count() == 1


def test_a_message_that_rolls_back_leaves_no_job() -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        outbox.enqueue("process_inbound_message", 1)
        raise Boom
    assert not OutboxJob.objects.exists()


def test_a_lost_send_is_sent_again_once_due_and_runs_once(
    worker: Any, refund_ticket: Trigger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The broker is down at commit time: the send fails, the row stays.
    def broker_down(self: Any, *args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    with monkeypatch.context() as patch:
        patch.setattr(dramatiq.Actor, "send_with_options", broker_down)
        assert post_webhook(message_event(text="refund please")).status_code == 200
    drain(worker, *QUEUES)
    job = OutboxJob.objects.get()
    assert not Ticket.objects.exists()

    assert outbox.resend_due() == 0  # not due yet: it may still be on its way
    later = timezone.now() + timedelta(seconds=job.resend_seconds + 1)
    assert outbox.resend_due(now=later) == 1
    assert outbox.resend_due(now=later) == 0  # claimed: not sent twice
    drain(worker, *QUEUES, rounds=2)
    assert not OutboxJob.objects.exists()
    assert Ticket.objects.count() == 1


def test_a_job_that_fails_keeps_its_row(
    worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inbox import signals

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a receiver failed")

    signals.message_stored.connect(broken, dispatch_uid="test-broken")
    try:
        # No retries for this test: one failed run is enough to look at.
        from inbox.tasks import process_inbound_message

        monkeypatch.setitem(process_inbound_message.options, "max_retries", 0)
        assert post_webhook(message_event()).status_code == 200
        # The stub broker (embedded) re-raises a dead job's error on join.
        with contextlib.suppress(RuntimeError):
            drain(worker, *QUEUES)
    finally:
        signals.message_stored.disconnect(dispatch_uid="test-broken")
    assert OutboxJob.objects.count() == 1


def test_a_job_is_given_up_after_its_last_attempt(settings: Any) -> None:
    settings.OUTBOX_MAX_ATTEMPTS = 3
    with transaction.atomic():
        job = outbox.enqueue("resend_outbox")
    OutboxJob.objects.filter(pk=job.pk).update(attempts=3, due_at=timezone.now())
    assert outbox.resend_due(now=timezone.now() + timedelta(seconds=1)) == 0
    assert OutboxJob.objects.get().attempts == 3  # kept, for a look


def test_every_job_named_in_the_code_is_an_actor_every_process_knows() -> None:
    """The outbox sends by name: a typo, or an actor module nobody imported
    in the web process, would leave jobs waiting for the sweeper."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    named = set()
    for app in ("core", "inbox", "automations"):
        for path in (root / app).rglob("*.py"):
            if "tests" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "enqueue"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    named.add(node.args[0].value)
    assert {"process_inbound_message", "call_webhook", "run_backtest"} <= named
    broker = dramatiq.get_broker()
    for name in sorted(named):
        broker.get_actor(name)  # raises ActorNotFound
