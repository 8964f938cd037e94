"""A tab listing search results gets only rows that match, with their snippets.

Driven through the real ASGI application: the search tab's socket against a
tab with no search, while customers write in and agents act.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from core.testing import create_user, message_event, post_webhook, session_key
from inbox.models import Conversation
from inbox.tests.test_live_stream import connect, receive_all

pytestmark = pytest.mark.django_db(transaction=True)

SEARCH = "q=%ED%99%98%EB%B6%88"  # ?q=환불


async def post(**fields: Any) -> Conversation:
    await sync_to_async(post_webhook)(message_event(**fields))
    return await Conversation.objects.aget(session_id=fields["session_id"])


async def tab(user: Any, query: str = "") -> Any:
    communicator = await connect(user, query)
    assert (await communicator.connect())[0]
    await receive_all(communicator, timeout=0.3)  # the catch-up
    return communicator


def rows_in(frames: list[str]) -> dict[int, str]:
    """The conversation rows the frames put on the page (inserted or updated)."""
    found = {}
    for text in frames:
        for match in re.finditer(r'<li [^>]*?id="conv-(\d+)".*?</li>', text, re.S):
            found[int(match.group(1))] = match.group(0)
    return found


def deleted_in(frames: list[str]) -> set[int]:
    return {
        int(pk)
        for text in frames
        for pk in re.findall(r'<div id="conv-(\d+)" hx-swap-oob="delete">', text)
    }


async def test_a_search_tab_never_receives_a_row_that_does_not_match() -> None:
    user = await sync_to_async(create_user)(is_staff=True)
    refund, other = session_key(), session_key()
    await post(session_id=refund, text="환불해주세요")
    search, everything = await tab(user, SEARCH), await tab(user)

    elsewhere = await post(session_id=other, text="배송은 언제 오나요?")
    frames = await receive_all(search)
    assert elsewhere.pk not in rows_in(frames)
    assert "afterbegin:#conversation-list" not in "".join(frames)
    # The tab without a search does show it, at the top.
    plain = await receive_all(everything)
    assert elsewhere.pk in rows_in(plain)
    assert "afterbegin:#conversation-list" in "".join(plain)

    await search.disconnect()
    await everything.disconnect()


async def test_a_matching_row_keeps_its_snippet_when_an_unrelated_message_arrives() -> (
    None
):
    user = await sync_to_async(create_user)(is_staff=True)
    session = session_key()
    conversation = await post(session_id=session, text="환불 받을 수 있나요?")
    search = await tab(user, SEARCH)

    await post(session_id=session, text="감사합니다")
    frames = await receive_all(search)
    row = rows_in(frames)[conversation.pk]
    # Moved to the top, still saying why it is a result (the older message).
    assert "afterbegin:#conversation-list" in "".join(frames)
    assert '<span class="preview snippet"><mark>환불</mark> 받을 수 있나요?' in row
    assert re.search(r"<time datetime=\"[^\"]+\" data-stamp>", row)
    assert "감사합니다" not in row

    await search.disconnect()


async def test_a_message_that_makes_a_conversation_match_adds_it_with_its_snippet() -> (
    None
):
    user = await sync_to_async(create_user)(is_staff=True)
    session = session_key()
    conversation = await post(session_id=session, text="주문이 안 왔어요")
    search = await tab(user, SEARCH)

    await post(session_id=session, text="그냥 환불해주세요")
    frames = await receive_all(search)
    row = rows_in(frames)[conversation.pk]
    assert "afterbegin:#conversation-list" in "".join(frames)
    assert "그냥 <mark>환불</mark>해주세요" in row

    await search.disconnect()


async def test_a_status_change_updates_a_result_in_place_with_its_snippet() -> None:
    user = await sync_to_async(create_user)(is_staff=True)
    agent = await sync_to_async(create_user)(is_staff=True)
    refund, other = session_key(), session_key()
    matching = await post(session_id=refund, text="환불 문의")
    elsewhere = await post(session_id=other, text="배송 문의")
    search = await tab(user, SEARCH)

    await sync_to_async(matching.take_over)(agent)
    await sync_to_async(elsewhere.take_over)(agent)
    frames = await receive_all(search)
    rows = rows_in(frames)
    assert set(rows) == {matching.pk}
    assert '<li hx-swap-oob="true" id="conv-' in rows[matching.pk]
    assert "<mark>환불</mark> 문의" in rows[matching.pk]
    assert "status-human" in rows[matching.pk]
    # Not a result: nothing to show; were it on the page, it would go.
    assert elsewhere.pk in deleted_in(frames)

    await search.disconnect()


async def test_a_search_tab_catching_up_gets_only_matching_rows() -> None:
    """The replay on (re)connect goes through the same search as live frames."""
    user = await sync_to_async(create_user)(is_staff=True)
    matching = await post(session_id=session_key(), text="환불 요청")
    elsewhere = await post(session_id=session_key(), text="배송 요청")
    search = await connect(user, f"{SEARCH}&after=0")
    assert (await search.connect())[0]
    frames = await receive_all(search)
    rows = rows_in(frames)
    assert set(rows) == {matching.pk}
    assert "<mark>환불</mark> 요청" in rows[matching.pk]
    assert elsewhere.pk not in rows

    await search.disconnect()
