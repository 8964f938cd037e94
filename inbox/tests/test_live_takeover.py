"""What a second agent sees live: ownership, presence, typing, escalations."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from core.testing import create_user, message_event, post_webhook, session_key
from inbox.models import Conversation
from inbox.tests.test_live_stream import connect, receive_all

pytestmark = pytest.mark.django_db(transaction=True)


async def _conversation(**data: Any) -> Conversation:
    await sync_to_async(post_webhook)(message_event(session_id=session_key(), **data))
    return await Conversation.objects.alatest("pk")


async def _open(user: Any, conversation: Conversation) -> Any:
    communicator = await connect(user, f"conversation={conversation.pk}")
    connected, _ = await communicator.connect()
    assert connected
    await receive_all(communicator, timeout=0.3)
    return communicator


async def test_a_second_agent_sees_the_take_over_and_the_typing() -> None:
    alice = await sync_to_async(create_user)(role="agent", username="alice")
    bob = await sync_to_async(create_user)(role="agent", username="bob")
    conversation = await _conversation()
    as_alice = await _open(alice, conversation)
    as_bob = await _open(bob, conversation)
    # Each learns the other is here (announce on connect, answer to the ask).
    frames = "".join(await receive_all(as_alice, timeout=0.3))
    assert "Also here: bob" in frames

    await sync_to_async(conversation.take_over)(alice)
    frames = "".join(await receive_all(as_bob))
    assert 'id="conversation-header"' in frames
    assert 'data-status="human"' in frames and f'data-owner-id="{alice.pk}"' in frames
    assert "Owned by <strong>alice</strong>" in frames
    assert "alice took over" in frames  # the audit line in the timeline

    await as_alice.send_to(text_data='{"type": "typing"}')
    frames = "".join(await receive_all(as_bob))
    assert f'id="typing-{conversation.pk}"' in frames
    assert "alice is typing a reply…" in frames
    # The typist's own tab is not told about itself.
    assert "is typing" not in "".join(await receive_all(as_alice, timeout=0.2))

    # Typing again at once is throttled: no second group message.
    await as_alice.send_to(text_data='{"type": "typing"}')
    assert await as_bob.receive_nothing(timeout=0.3)

    # Leaving clears the presence line for the others.
    await as_alice.disconnect()
    frames = "".join(await receive_all(as_bob))
    assert f'<p id="presence-{conversation.pk}" class="presence"' in frames
    assert "alice" not in frames.split(f'id="presence-{conversation.pk}"')[1]
    await as_bob.disconnect()


async def test_typing_expires_by_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    from inbox.consumers import Presence

    monkeypatch.setattr(Presence, "TYPING_FOR", 0.3)
    alice = await sync_to_async(create_user)(role="agent", username="alice")
    bob = await sync_to_async(create_user)(role="agent", username="bob")
    conversation = await _conversation()
    as_alice = await _open(alice, conversation)
    as_bob = await _open(bob, conversation)
    await receive_all(as_alice, timeout=0.2)
    await as_alice.send_to(text_data='{"type": "typing"}')
    first = await as_bob.receive_from(timeout=1)
    assert "alice is typing" in first
    # Nobody sends anything more: bob's tab clears it when it runs out.
    later = await as_bob.receive_from(timeout=2)
    assert f'id="typing-{conversation.pk}"' in later and "is typing" not in later
    await as_alice.disconnect()
    await as_bob.disconnect()


async def test_an_escalation_updates_every_agents_counter() -> None:
    agent = await sync_to_async(create_user)(role="agent")
    conversation = await _conversation()
    communicator = await connect(agent)
    connected, _ = await communicator.connect()
    assert connected
    await receive_all(communicator, timeout=0.2)

    await sync_to_async(conversation.escalate)(reason="negative sentiment: 최악")
    frames = "".join(await receive_all(communicator))
    assert 'id="escalation-count"' in frames
    assert 'data-count="1"' in frames and f'data-new="{conversation.pk}"' in frames
    assert f'id="conv-{conversation.pk}"' in frames and "status-escalated" in frames
    await communicator.disconnect()


async def test_a_user_without_a_role_cannot_subscribe() -> None:
    nobody = await sync_to_async(create_user)()
    communicator = await connect(nobody)
    connected, _ = await communicator.connect()
    assert connected
    output = await communicator.receive_output(timeout=1)
    assert output == {"type": "websocket.close", "code": 4403}


async def test_the_queue_page_gets_only_the_counter() -> None:
    agent = await sync_to_async(create_user)(role="agent")
    conversation = await _conversation()
    communicator = await connect(agent, "page=queue")
    connected, _ = await communicator.connect()
    assert connected
    await receive_all(communicator, timeout=0.2)

    await sync_to_async(post_webhook)(
        message_event(session_id=conversation.session_id, text="another")
    )
    await sync_to_async(conversation.escalate)(reason="help intent")
    frames = "".join(await receive_all(communicator))
    assert 'data-count="1"' in frames and f'data-new="{conversation.pk}"' in frames
    # No rows or thread items: the queue page has no place for them.
    assert "conv-" not in frames and "msg-" not in frames
    await communicator.disconnect()
