import dramatiq
import pytest
from dramatiq import Worker

from core.testing import message_event, post_webhook, session_key
from inbox.models import Message
from inbox.signals import message_stored
from inbox.tasks import process_inbound_message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker():  # noqa: ANN201
    broker = dramatiq.get_broker()
    broker.emit_after("process_boot")
    worker = Worker(broker, worker_timeout=100, worker_threads=1)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def stored_signals():  # noqa: ANN201
    seen: list[int] = []

    def receiver(sender, message, **kwargs) -> None:  # noqa: ANN001, ANN003
        seen.append(message.pk)

    message_stored.connect(receiver)
    yield seen
    message_stored.disconnect(receiver)


def test_inbound_message_is_handed_to_the_worker_after_commit(worker, stored_signals) -> None:  # noqa: ANN001
    post_webhook(message_event(message_id=1))
    dramatiq.get_broker().join(process_inbound_message.queue_name, timeout=10_000)
    worker.join()
    assert stored_signals == [Message.objects.get().pk]


def test_duplicates_and_bot_replies_enqueue_nothing(worker, stored_signals) -> None:  # noqa: ANN001
    session = session_key()
    payload = message_event(session_id=session, message_id=1)
    post_webhook(payload)
    post_webhook(payload)
    post_webhook(message_event(session_id=session, message_id=2, direction="outbound", text="bot"))
    dramatiq.get_broker().join(process_inbound_message.queue_name, timeout=10_000)
    worker.join()
    assert stored_signals == [Message.objects.get(gateway_message_id="1").pk]


def test_a_redelivered_job_for_a_missing_message_does_nothing(stored_signals) -> None:  # noqa: ANN001
    process_inbound_message.fn(999_999)
    assert stored_signals == []
