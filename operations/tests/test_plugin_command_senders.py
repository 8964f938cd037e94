"""The gateway plugin learns the ops-command allowlist (``inbox.commands.sync``)
so the gateway's agent never answers an admin's command: from the connector on
every connect, and from the admin when it changes. Against the simulated
gateway with the plugin; the real one: test_real_gateway_commands.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.testing import drain, start_connector, wait_for
from inbox import gateway as gateway_module
from inbox.simulated_gateway import GatewayServer
from operations import chat, config
from operations.models import ChatCommand, CommandSender

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = "777001"
ADMIN_KEY = f"agent:main:telegram:direct:{ADMIN}"
STRANGER_KEY = "agent:main:telegram:direct:555"


@pytest.fixture
def plugin_gateway(settings: Any) -> Iterator[GatewayServer]:
    settings.OPS_COMMAND_SENDERS = [f"telegram:{ADMIN}"]
    settings.OPS_COMMANDS = {}
    with GatewayServer(token="test-gateway-token", plugin=True) as server:
        settings.OPENCLAW_GATEWAY_URL = server.url
        settings.OPENCLAW_GATEWAY_TOKEN = server.token
        gateway_module.reset_client()
        yield server
    gateway_module.reset_client()


@pytest.fixture
def connected(plugin_gateway: GatewayServer) -> Iterator[Any]:
    thread = start_connector()
    yield thread.connector
    thread.stop()


def model_calls(gateway: GatewayServer, key: str) -> list[str]:
    return [text for session, text in gateway.model_calls if session == key]


def test_the_connector_tells_the_plugin_every_allowed_sender_on_connect(
    plugin_gateway: GatewayServer,
) -> None:
    CommandSender.objects.create(platform="slack", sender_id="U42")
    plugin_gateway.command_senders = {("telegram", "someone-removed-since")}
    thread = start_connector()
    try:
        assert plugin_gateway.command_senders == {
            ("telegram", ADMIN),
            ("slack", "U42"),
        }
    finally:
        thread.stop()


def test_the_agent_stays_out_of_an_admins_command_but_answers_a_strangers(
    plugin_gateway: GatewayServer, connected: Any
) -> None:
    plugin_gateway.customer_writes(ADMIN_KEY, "/digest", sender_id=ADMIN)
    plugin_gateway.customer_writes(STRANGER_KEY, "/digest", sender_id="555")
    wait_for(lambda: ChatCommand.objects.exists(), what="the command")
    assert model_calls(plugin_gateway, ADMIN_KEY) == []
    assert model_calls(plugin_gateway, STRANGER_KEY) == ["/digest"]
    # An admin's ordinary words are the agent's as usual.
    plugin_gateway.customer_writes(ADMIN_KEY, "thanks", sender_id=ADMIN)
    assert model_calls(plugin_gateway, ADMIN_KEY) == ["thanks"]


def test_an_admin_change_reaches_the_plugin_without_a_reconnect(
    plugin_gateway: GatewayServer, connected: Any, worker: Any
) -> None:
    sender = CommandSender.objects.create(platform="telegram", sender_id="888")
    drain(worker, "ops", rounds=2)
    assert ("telegram", "888") in plugin_gateway.command_senders
    sender.delete()
    drain(worker, "ops", rounds=2)
    assert plugin_gateway.command_senders == {("telegram", ADMIN)}
    assert connected.connections == 1


def test_a_gateway_without_the_plugin_is_not_asked(
    gateway: GatewayServer, settings: Any, worker: Any
) -> None:
    settings.OPS_COMMAND_SENDERS = [f"telegram:{ADMIN}"]
    thread = start_connector()
    try:
        CommandSender.objects.create(platform="telegram", sender_id="888")
        drain(worker, "ops", rounds=2)  # the sync job finds no method: done
        assert thread.connector.connections == 1
        assert thread.connector.state == "live"
    finally:
        thread.stop()


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("/ops status", ("status", [])),
        ("/ops logs 5", ("logs", ["5"])),
        ("/OPS Digest", ("digest", [])),
        ("/ops@InboxBot confirm 1234", ("confirm", ["1234"])),
        ("/ops /status", ("status", [])),
        ("/ops", ("help", [])),
        ("/status", ("status", [])),
    ],
)
def test_ops_is_a_namespace_for_every_command(
    text: str, parsed: tuple[str, list[str]]
) -> None:
    assert chat.parse(text) == parsed


def test_ops_cannot_be_an_admins_own_command(settings: Any) -> None:
    settings.OPS_COMMANDS = {"ops": {"argv": ["true"]}}
    with pytest.raises(ImproperlyConfigured, match="built-in"):
        config.commands()


def test_answers_point_to_the_ops_form_the_sender_used(
    plugin_gateway: GatewayServer, connected: Any, worker: Any
) -> None:
    plugin_gateway.customer_writes(ADMIN_KEY, "/ops nope", sender_id=ADMIN)
    plugin_gateway.customer_writes(ADMIN_KEY, "/ops", sender_id=ADMIN)
    plugin_gateway.customer_writes(ADMIN_KEY, "/nope", sender_id=ADMIN)
    wait_for(lambda: ChatCommand.objects.count() == 3, what="the commands")
    drain(worker, "ops", rounds=3)
    answers = [s.text for s in plugin_gateway.received if s.session_key == ADMIN_KEY]
    assert len(answers) == 3
    assert "Unknown command /ops nope. Send /ops help for the list." in answers
    assert "Unknown command /nope. Send /help for the list." in answers
    [listing] = [a for a in answers if "this list" in a]
    assert listing.splitlines()[0].startswith("/ops status: ")
    assert "/ops logs [N]" in listing
    assert model_calls(plugin_gateway, ADMIN_KEY) == []
