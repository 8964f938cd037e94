import pytest

from inbox.models import Conversation, Message, WebhookDelivery
from inbox.simulator import Simulator

pytestmark = pytest.mark.django_db(transaction=True)


def test_simulator_traffic_is_accepted_and_duplicates_are_stored_once(
    live_server, settings
) -> None:  # noqa: ANN001
    simulator = Simulator(
        f"{live_server.url}/api/openclaw/webhook/",
        secret=settings.OPENCLAW_WEBHOOK_SECRETS[0],
        seed=3,
        duplicate_rate=0.2,
        reorder_rate=0.2,
    )
    answers = simulator.run(rate=0, count=120, burst_every=0)
    assert answers == {200: simulator.sent}
    deliveries = WebhookDelivery.objects
    duplicates = deliveries.filter(outcome="duplicate").count()
    assert duplicates >= 5
    assert deliveries.filter(outcome="stored").count() + duplicates == simulator.sent
    # Every stored message is unique per conversation and platform-shaped.
    assert Message.objects.count() == len(
        set(Message.objects.values_list("conversation_id", "gateway_message_id"))
    )
    platforms = set(Conversation.objects.values_list("platform", flat=True))
    assert {"telegram", "whatsapp", "slack", "discord", "webchat"} <= platforms
    assert Message.objects.filter(direction="outbound", author="bot").exists()
    telegram_ids = Message.objects.filter(
        conversation__platform="telegram", kind="text"
    ).values_list("gateway_message_id", flat=True)
    assert all(value.isdigit() for value in telegram_ids)
    assert (
        Conversation.objects.filter(session_id__startswith="agent:main:").count()
        == Conversation.objects.count()
    )


def test_simulator_speaks_both_signature_schemes(live_server, settings) -> None:  # noqa: ANN001
    for scheme in ("openclaw", "standard"):
        simulator = Simulator(
            f"{live_server.url}/api/openclaw/webhook/",
            secret=settings.OPENCLAW_WEBHOOK_SECRETS[0],
            seed=5,
            scheme=scheme,
        )
        assert simulator.run(rate=0, count=5, burst_every=0) == {200: 5}
    schemes = set(WebhookDelivery.objects.values_list("signature_scheme", flat=True))
    assert schemes == {"openclaw-hmac", "standard-webhooks"}


def test_simulate_gateway_follows_the_port_and_reports_refusals_as_failure(
    daphne_server,
) -> None:  # noqa: ANN001
    from io import StringIO
    from urllib.parse import urlsplit

    from django.core.management import CommandError, call_command

    from core.testing import free_port

    port = urlsplit(daphne_server.url).port
    out = StringIO()
    call_command(
        "simulate_gateway", port=port, count=3, rate=50, duration=5, seed=1, stdout=out
    )
    assert f"http://127.0.0.1:{port}/api/openclaw/webhook/" in out.getvalue()
    assert "Sent 3 deliveries" in out.getvalue()
    assert Message.objects.count() >= 1

    # Nothing listens there: said, and a failure (exit status 1), not "Sent 2".
    closed = free_port()
    with pytest.raises(CommandError, match=f"127.0.0.1:{closed}"):
        call_command(
            "simulate_gateway", port=closed, count=2, rate=50, duration=5,
            stdout=StringIO(),
        )  # fmt: skip
