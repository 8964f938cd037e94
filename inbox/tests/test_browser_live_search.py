"""Search results stay search results while the inbox is live, in Chromium.

Other conversations get messages while a tab lists ``?q=환불``: none of them
may join the list, a result that gets a message keeps its snippet, and one
that starts matching joins with its own. So j/k and x pick results only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from core.testing import create_user, session_key
from core.tests.browser import BROWSER_TEST, Inbox, expect
from inbox import live

pytestmark = BROWSER_TEST

ROWS = "#conversation-list > li.conversation"
# Each row: its id and its snippet's text and time, if it has them.
SHOWN = """(rows) => [...document.querySelectorAll(rows)].map((li) => [
  li.id,
  li.querySelector(".preview.snippet mark")?.textContent || "",
  li.querySelector(".preview.snippet time")?.getAttribute("datetime") || "",
])"""


@pytest.fixture
def agent(transactional_db: None) -> Any:
    return create_user(is_staff=True)


def test_a_search_list_shows_only_matches_while_others_get_messages(
    agent: Any, post: Callable[..., Any], open_inbox: Callable[[Any], Inbox]
) -> None:
    refund, delivery, fresh, late = (session_key() for _ in range(4))
    post(session_id=refund, text="환불 받을 수 있나요?")
    post(session_id=delivery, text="배송은 언제 오나요?")
    post(session_id=late, text="주문 취소할게요")
    time.sleep(live.GAP_GRACE.total_seconds() + 0.5)  # nothing left to replay

    inbox = open_inbox(agent)
    inbox.log_in()
    page = inbox.page
    ids = {
        session: f"conv-{inbox.conversation_id(session)}"
        for session in (refund, delivery, late)
    }
    page.goto(f"{inbox.server.url}/inbox/?q={quote('환불')}")
    inbox.wait_for_socket(conversation=None)
    rows = page.locator(ROWS)
    expect(rows).to_have_count(1)

    post(session_id=delivery, text="아직도 안 왔어요")  # not a result
    post(session_id=fresh, text="안녕하세요")  # a new conversation, not a result
    post(session_id=refund, text="감사합니다")  # a result, this message is not
    post(session_id=late, text="그냥 환불해주세요")  # now a result
    expect(page.locator(f"#{ids[late]}")).to_be_visible()
    expect(rows).to_have_count(2)
    shown = page.evaluate(SHOWN, ROWS)
    assert [row[0] for row in shown] == [ids[late], ids[refund]]
    for row_id, mark, at in shown:
        assert mark == "환불", f"{row_id} lost its snippet"
        assert at, f"{row_id} lost its snippet's time"

    # The keyboard walks and picks results only.
    page.locator("body").click(position={"x": 5, "y": 5})
    for _ in range(2):
        page.keyboard.press("j")
        page.keyboard.press("x")
    page.keyboard.press("j")  # no row after the last result
    expect(page.locator(f"{ROWS}.cursor")).to_have_id(ids[refund])
    expect(page.locator("#bulk-bar .bulk-count")).to_have_text("2 selected")
    picked = page.eval_on_selector_all(
        f"{ROWS}.picked", "els => els.map((li) => li.id)"
    )
    assert sorted(picked) == sorted([ids[late], ids[refund]])
    inbox.assert_healthy_but_reloaded()
