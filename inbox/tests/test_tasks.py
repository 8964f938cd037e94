import dramatiq
import pytest

from core.testing import message_event, post_webhook, session_key
from inbox.models import Message
from inbox.signals import message_stored
from inbox.tasks import process_inbound_message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stored_signals():  # noqa: ANN201
    seen: list[int] = []

    def receiver(sender, message, **kwargs) -> None:  # noqa: ANN001, ANN003
        seen.append(message.pk)

    message_stored.connect(receiver)
    yield seen
    message_stored.disconnect(receiver)


def test_inbound_message_is_handed_to_the_worker_after_commit(
    worker, stored_signals
) -> None:  # noqa: ANN001
    post_webhook(message_event(message_id=1))
    dramatiq.get_broker().join(process_inbound_message.queue_name, timeout=10_000)
    worker.join()
    assert stored_signals == [Message.objects.get().pk]


def test_duplicates_and_bot_replies_enqueue_nothing(worker, stored_signals) -> None:  # noqa: ANN001
    session = session_key()
    payload = message_event(session_id=session, message_id=1)
    post_webhook(payload)
    post_webhook(payload)
    post_webhook(
        message_event(
            session_id=session, message_id=2, direction="outbound", text="bot"
        )
    )
    dramatiq.get_broker().join(process_inbound_message.queue_name, timeout=10_000)
    worker.join()
    assert stored_signals == [Message.objects.get(gateway_message_id="1").pk]


def test_a_redelivered_job_for_a_missing_message_does_nothing(stored_signals) -> None:  # noqa: ANN001
    process_inbound_message.fn(999_999)
    assert stored_signals == []


def test_old_delivery_logs_are_pruned_and_recent_ones_kept(settings) -> None:  # noqa: ANN001
    from datetime import timedelta

    from django.utils import timezone

    from inbox.models import WebhookDelivery
    from inbox.tasks import prune_webhook_deliveries

    settings.OPENCLAW_DELIVERY_RETENTION_DAYS = 30
    old = timezone.now() - timedelta(days=31)
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(outcome="stored", status_code=200, received_at=old)
        for _ in range(7)
    )
    post_webhook(message_event())
    prune_webhook_deliveries.fn()
    assert list(WebhookDelivery.objects.values_list("outcome", flat=True)) == ["stored"]
    assert Message.objects.count() == 1
