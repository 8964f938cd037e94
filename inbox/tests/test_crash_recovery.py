"""A SIGKILL at any step of storing a delivery loses nothing.

A child process stores one signed webhook (the real view, the real database)
with a hook that kills it with SIGKILL at one step. Then the sender retries,
as a gateway does when it got no answer, and the scheduler's outbox sweep
runs: the message is stored once, the escalation it asked for is there, and
its follow-up job (the triggers) has run exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from automations.models import Ticket, Trigger
from core import outbox
from core.models import OutboxJob
from core.testing import drain, encode, message_event, post_webhook, server_env, sign
from inbox.models import Activity, Conversation, Message

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# Each step names where the child dies: a function is wrapped so that the
# process is killed right after (or instead of) it.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import django

    django.setup()
    from django.test import Client

    step, signature = sys.argv[1], sys.argv[2]
    body = sys.stdin.buffer.read()

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    def after(owner, name):
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):
            result = original(*args, **kwargs)
            die()
            return result

        setattr(owner, name, wrapped)

    if step == "message_written":
        from inbox.models import Conversation
        after(Conversation, "add_message")
    elif step == "escalated":
        from inbox.models import Conversation
        after(Conversation, "escalate")
    elif step == "job_recorded":
        from core import outbox
        after(outbox, "enqueue")
    elif step == "committed":
        from core import outbox
        outbox._send = die  # after the commit, before the job reaches the broker
    elif step == "answered":
        from inbox import ingest
        after(ingest, "store")
    Client().post(
        "/api/openclaw/webhook/", body,
        content_type="application/json", HTTP_X_OPENCLAW_SIGNATURE=signature,
    )
    sys.exit(3)  # never reached: every step dies first
    """
)


def _store_and_die(step: str, body: bytes, tmp_path: Path) -> None:
    env = server_env(tmp_path) | {"ALLOWED_HOSTS": "testserver"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, step, sign(body)],
        input=body,
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]


@pytest.mark.parametrize(
    ("step", "committed"),
    [
        ("message_written", False),
        ("escalated", False),
        ("job_recorded", False),
        ("committed", True),
        ("answered", True),
    ],
)
def test_a_sigkill_at_any_step_loses_no_escalation_and_no_job(
    step: str, committed: bool, tmp_path: Path, worker: Any
) -> None:
    Trigger.objects.create(
        name="Refund ticket",
        patterns=["환불"],
        actions=[{"type": "create_ticket", "subject": "Refund", "priority": "normal"}],
    )
    body = encode(
        message_event(text="환불 해주세요, 사람과 얘기하고 싶어요", escalate=True)
    )
    _store_and_die(step, body, tmp_path)

    # What the dead process left: all of it, or nothing.
    assert Message.objects.count() == (1 if committed else 0)
    if committed:
        assert Conversation.objects.get().status == Conversation.Status.ESCALATED
        # The triggers' job, and the bot's pause while queued: both recorded
        # (after the answer, the running worker may have done one already).
        actors = sorted(OutboxJob.objects.values_list("actor", flat=True))
        if step == "committed":
            assert actors == ["process_inbound_message", "sync_send_policy"]
        else:
            assert set(actors) <= {"process_inbound_message", "sync_send_policy"}

    # The gateway got no answer and delivers again.
    again = post_webhook(body=body)
    assert again.status_code == 200
    assert again.json()["status"] == ("duplicate" if committed else "stored")

    # The scheduler's sweep, once the lost job is due.
    later = timezone.now() + timedelta(minutes=5)
    outbox.resend_due(now=later)
    drain(worker, "default", "automations", rounds=3)

    conversation = Conversation.objects.get()
    assert Message.objects.count() == 1
    assert conversation.status == Conversation.Status.ESCALATED
    assert conversation.escalation_reason == "the gateway asked for a human"
    escalations = Activity.objects.filter(
        kind=Activity.Kind.STATUS_CHANGED, data__to="escalated"
    )
    assert escalations.count() == 1
    assert Ticket.objects.count() == 1  # the follow-up ran, once
    assert not OutboxJob.objects.exists()
