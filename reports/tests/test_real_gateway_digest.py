"""The digest through the real OpenClaw gateway (npm openclaw, a fake Telegram):
``send_to`` speaks its ``send`` schema (a target, no session), and the day's
idempotency key keeps a repeated send to one message in the group."""

from __future__ import annotations

import random

import pytest

from inbox import gateway as gateway_module
from reports import tasks
from reports.models import Delivery, Digest
from reports.tests.seed import seed
from reports.tests.test_digest import NINE

pytestmark = [pytest.mark.gateway, pytest.mark.django_db(transaction=True)]


def test_the_digest_reaches_a_telegram_group_once(real_gateway, settings) -> None:  # noqa: ANN001
    group = -1_000_000_000_000 - random.randint(1, 999_999)
    settings.TIME_ZONE = "Asia/Seoul"
    settings.OPENCLAW_GATEWAY_URL = real_gateway.ws_url
    settings.OPENCLAW_GATEWAY_TOKEN = real_gateway.token
    settings.INBOX_DIGEST_CHANNEL = "telegram"
    settings.INBOX_DIGEST_TO = str(group)
    settings.INBOX_DIGEST_EMAILS = []
    gateway_module.reset_client()
    seed()  # no digest for a day before the inbox's first conversation
    try:
        row = tasks.start_digest(NINE)
        assert row is not None
        tasks.send_digest_to_gateway.fn(row.pk)
        assert Digest.objects.get().gateway_state == Delivery.SENT
        sent = real_gateway.telegram.wait_for_sent(
            group, "daily digest for 2026-03-10", timeout=30
        )
        # Telegram renders the Markdown list: "- " arrives as "• ".
        assert sent.text.replace("• ", "- ").split() == row.body.split()
        # A worker that died after the gateway took it: sent again, same key.
        gateway_module.client().send_to(
            "telegram", str(group), row.body, idempotency_key=row.idempotency_key
        )
        assert len(real_gateway.telegram.sent_to(group)) == 1
    finally:
        gateway_module.reset_client()
