import re
from datetime import timedelta

import pytest
from django.utils import timezone

from core.testing import create_user, message_event, post_webhook, session_key
from inbox.models import Activity, Conversation, Message, ReadMark

pytestmark = pytest.mark.django_db

XSS = "<img src=x onerror=alert(1)>"


def test_inbox_needs_a_login(client) -> None:  # noqa: ANN001
    response = client.get("/inbox/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_list_shows_conversations_newest_first_with_escaped_preview(
    staff_client,
) -> None:  # noqa: ANN001
    post_webhook(message_event(session_id=session_key(), text="older one"))
    post_webhook(message_event(session_id=session_key(), text=XSS))
    response = staff_client.get("/inbox/")
    html = response.content.decode()
    assert response.status_code == 200
    assert XSS not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert html.index("onerror") < html.index("older one")
    assert 'ws-connect="/ws/inbox/"' in html
    assert "/static/django_htmx/ext/hx-ws-2.min.js" in html


def test_unread_badge_is_per_agent_and_opening_clears_it(staff, staff_client) -> None:  # noqa: ANN001
    session = session_key()
    for i in range(3):
        post_webhook(message_event(session_id=session, message_id=i))
    conversation = Conversation.objects.get()
    badge = f'id="unread-{conversation.pk}"'
    html = staff_client.get("/inbox/").content.decode()
    assert re.search(badge + r'[^>]*aria-label="3 unread">3<', html)

    staff_client.get(f"/inbox/c/{conversation.pk}/")
    assert ReadMark.objects.get(user=staff).inbound_seen == 3
    html = staff_client.get("/inbox/").content.decode()
    assert re.search(badge + r"[^>]*hidden", html)

    # Another agent has not read it.
    other = create_user(role="agent")
    from django.test import Client

    other_client = Client()
    other_client.force_login(other)
    html = other_client.get("/inbox/").content.decode()
    assert re.search(badge + r'[^>]*aria-label="3 unread">3<', html)


def test_filters_by_platform_status_and_owner(staff, staff_client) -> None:  # noqa: ANN001
    post_webhook(
        message_event(
            channel="telegram", session_id=session_key(chat="telegram"), text="tg"
        )
    )
    post_webhook(
        message_event(
            channel="whatsapp", session_id=session_key(chat="whatsapp"), text="wa"
        )
    )
    html = staff_client.get("/inbox/?platform=whatsapp").content.decode()
    assert "conversation status-bot" in html
    rows = re.findall(r'<li id="conv-(\d+)"', html)
    assert len(rows) == 1
    assert Conversation.objects.get(pk=rows[0]).platform == "whatsapp"

    Conversation.objects.filter(platform="telegram").update(assignee=staff)
    mine = re.findall(
        r'<li id="conv-(\d+)"', staff_client.get("/inbox/?owner=mine").content.decode()
    )
    assert [Conversation.objects.get(pk=pk).platform for pk in mine] == ["telegram"]
    unassigned = re.findall(
        r'<li id="conv-(\d+)"',
        staff_client.get("/inbox/?owner=unassigned").content.decode(),
    )
    assert [Conversation.objects.get(pk=pk).platform for pk in unassigned] == [
        "whatsapp"
    ]
    assert not re.findall(
        r'<li id="conv-', staff_client.get("/inbox/?status=resolved").content.decode()
    )


def test_search_finds_message_text_in_korean_and_english(staff_client) -> None:  # noqa: ANN001
    hit = session_key()
    post_webhook(
        message_event(session_id=hit, message_id=1, text="환불해주세요, 요청합니다")
    )
    post_webhook(message_event(session_id=hit, message_id=2, text="thanks"))
    post_webhook(message_event(session_id=session_key(), text="where is my parcel"))
    for query in ("환불", "parcel", "PARCEL", "환불 요청", "'환불' & | !"):
        rows = re.findall(
            r'<li id="conv-(\d+)"',
            staff_client.get(f"/inbox/?q={query}").content.decode(),
        )
        assert len(rows) == 1, query
    rows = re.findall(
        r'<li id="conv-(\d+)"',
        staff_client.get("/inbox/?q=nothing-like-this").content.decode(),
    )
    assert rows == []


def test_cursor_pagination_walks_every_conversation_once(staff_client) -> None:  # noqa: ANN001
    now = timezone.now()
    same_time = now - timedelta(minutes=5)
    Conversation.objects.bulk_create(
        Conversation(
            session_id=f"agent:main:telegram:dm:{i}",
            platform="telegram",
            # Ties on the sort key must not lose or repeat rows.
            last_message_at=same_time if i % 3 == 0 else now - timedelta(seconds=i),
        )
        for i in range(120)
    )
    seen: list[str] = []
    url = "/inbox/"
    for _ in range(5):
        html = staff_client.get(
            url, headers={"HX-Request": "true"} if "cursor" in url else {}
        ).content.decode()
        seen += re.findall(r'<li id="conv-(\d+)"', html)
        more = re.search(r'hx-get="([^"]*cursor=[^"]*)"', html)
        if not more:
            break
        url = more.group(1).replace("&amp;", "&")
    assert len(seen) == 120 == len(set(seen))


def test_conversation_view_shows_thread_escaped_with_reset_divider(
    staff_client,
) -> None:  # noqa: ANN001
    session = session_key()
    post_webhook(message_event(session_id=session, message_id=1, text=XSS))
    post_webhook({"event": "status", "data": {"sessionId": session, "status": "reset"}})
    post_webhook(
        message_event(
            session_id=session,
            message_id=2,
            text="bot says hi",
            direction="outbound",
            aiModel="claude-sonnet-4",
        )
    )
    post_webhook(
        {
            "event": "media",
            "data": {
                "sessionId": session,
                "messageId": "3",
                "mediaUrl": "https://media.example.com/x.jpg",
                "mediaType": "image/jpeg",
            },
        }
    )
    conversation = Conversation.objects.get()
    html = staff_client.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'class="divider"' in html
    assert "message outbound author-bot" in html and "claude-sonnet-4" in html
    assert (
        'href="https://media.example.com/x.jpg" rel="noopener noreferrer nofollow"'
        in html
    )
    assert f'id="thread-{conversation.pk}"' in html


def test_htmx_open_returns_only_the_thread_pane(staff_client) -> None:  # noqa: ANN001
    post_webhook(message_event())
    conversation = Conversation.objects.get()
    response = staff_client.get(
        f"/inbox/c/{conversation.pk}/",
        headers={"HX-Request": "true", "HX-Target": "thread-pane"},
    )
    html = response.content.decode()
    assert f'id="thread-{conversation.pk}"' in html
    assert "<html" not in html and 'id="conversation-list"' not in html


def test_older_messages_load_in_pages(staff_client) -> None:  # noqa: ANN001
    post_webhook(message_event(message_id=0))
    conversation = Conversation.objects.get()
    messages = Message.objects.bulk_create(
        Message(
            conversation=conversation,
            gateway_message_id=f"m{i}",
            direction="inbound",
            text=f"line {i}",
        )
        for i in range(1, 120)
    )
    # The thread is the conversation's timeline: one activity per message.
    Activity.objects.bulk_create(
        Activity(conversation=conversation, kind="message_added", message=message)
        for message in messages
    )
    html = staff_client.get(f"/inbox/c/{conversation.pk}/").content.decode()
    shown = re.findall(r'<li id="msg-(\d+)" class="message', html)
    assert len(shown) == 50
    older = re.search(r'hx-get="(/inbox/c/\d+/older/\?before=\d+)"', html).group(1)
    page = staff_client.get(older, headers={"HX-Request": "true"}).content.decode()
    older_shown = re.findall(r'<li id="msg-(\d+)" class="message', page)
    assert len(older_shown) == 50
    assert max(map(int, older_shown)) < min(map(int, shown))
    assert (
        staff_client.get(f"/inbox/c/{conversation.pk}/older/?before=x").status_code
        == 400
    )


def test_bad_filter_values_are_dropped_not_errors(staff_client) -> None:  # noqa: ANN001
    post_webhook(message_event())
    for query in ("cursor=garbage", "platform=myspace", "status=?", "owner=root"):
        response = staff_client.get(f"/inbox/?{query}")
        assert response.status_code == 200, query
        assert len(re.findall(r'<li id="conv-(\d+)"', response.content.decode())) == 1


def test_a_customer_message_without_a_sender_shows_the_customer_name(
    staff_client, django_assert_max_num_queries
) -> None:  # noqa: ANN001
    session = session_key()
    post_webhook(message_event(session_id=session, message_id=1))
    post_webhook(
        {
            "event": "media",
            "data": {
                "sessionId": session,
                "messageId": "2",
                "mediaUrl": "https://media.example.com/r.jpg",
            },
        }
    )
    conversation = Conversation.objects.get()
    # Session, user, role, conversation, read mark (4 with its savepoints),
    # its notifications read, escalation count, the timeline page, the contact
    # panel (aliases, history), the list page with saved views and assignees,
    # the bell: a fixed number, not one per message.
    with django_assert_max_num_queries(20):
        html = staff_client.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert html.count('<span class="sender">김민준</span>') == 2


@pytest.mark.postgres
@pytest.mark.parametrize("path", ["list", "by primary key", "walk"])
def test_search_finds_the_same_conversations_for_rare_and_common_words(
    staff_client, monkeypatch, path: str
) -> None:  # noqa: ANN001
    from inbox import models

    # Each path is chosen by how many conversations match; force each.
    monkeypatch.setattr(models, "COMMON_MATCHES", 10**9 if path == "list" else -1)
    monkeypatch.setattr(models, "WALK_MATCHES", -1 if path == "walk" else 10**9)
    hit, also, miss = session_key(), session_key(), session_key()
    post_webhook(
        message_event(session_id=hit, message_id=1, text="환불해주세요, 요청합니다")
    )
    post_webhook(
        message_event(session_id=also, message_id=1, text="refund 환불 please")
    )
    post_webhook(
        message_event(session_id=miss, message_id=1, text="where is my parcel")
    )
    found = re.findall(
        r'<li id="conv-(\d+)"', staff_client.get("/inbox/?q=환불").content.decode()
    )
    expected = Conversation.objects.filter(session_id__in=[hit, also]).by_activity()
    assert [int(pk) for pk in found] == [c.pk for c in expected]
    assert (
        len(
            re.findall(
                r'<li id="conv-',
                staff_client.get("/inbox/?q=환불 refund").content.decode(),
            )
        )
        == 1
    )


@pytest.mark.postgres
def test_customer_search_uses_the_trigram_indexes(staff_client) -> None:  # noqa: ANN001
    from django.db import connection

    Conversation.objects.bulk_create(
        Conversation(
            session_id=f"agent:main:telegram:dm:{i}",
            platform="telegram",
            customer_id=f"{i}",
            customer_name=f"고객 {i} Kimberly" if i == 7 else f"Customer {i}",
        )
        for i in range(50)
    )
    query = Conversation.objects.matching("imberl").values_list("pk", flat=True)
    with connection.cursor() as cursor:
        # Tiny table: make the planner show whether the index can serve it.
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "inbox_conv_name_trgm" in plan
    assert "inbox_conv_customer_id_trgm" in plan
    rows = re.findall(
        r'<li id="conv-(\d+)"',
        staff_client.get("/inbox/?q=imberl").content.decode(),
    )
    assert [int(pk) for pk in rows] == list(query)
    assert len(rows) == 1


@pytest.mark.parametrize(
    ("path", "view"),
    [
        ("/inbox/", 'id="live-view" data-platform="'),
        ("/inbox/queue/", '<div id="live-view" data-page="queue"></div>'),
    ],
)
def test_live_pages_carry_the_socket_region_inbox_js_reads(
    staff_client,  # noqa: ANN001
    path: str,
    view: str,
) -> None:
    html = staff_client.get(path).content.decode()
    assert 'src="/static/inbox/inbox.js"' in html
    assert 'id="live-status"' in html
    # ws: the socket; inbox-live (inbox.js): drops fragments with nothing to swap.
    live = '<div id="live" hx-ext="ws,inbox-live" ws-connect="/ws/inbox/">'
    region = html[html.index(live) :]
    assert region.index('id="live-seq"') < region.index('id="live-stale"')
    assert html.count('id="live-pong"') == 1
    assert view in html


def test_each_page_loads_htmx_once_and_no_debug_page_swapper(
    staff_client, settings
) -> None:  # noqa: ANN001
    # django-htmx.js, in DEBUG, replaces the page with any 400/403/404 answer:
    # the forms' own errors would wipe the page (issue 13).
    settings.DEBUG = True
    html = staff_client.get("/inbox/").content.decode()
    assert "django-htmx.js" not in html
    assert len(re.findall(r"django_htmx/htmx[-.\w]*\.js", html)) == 1


@pytest.mark.postgres
def test_each_conversation_keeps_one_search_document_of_its_words(
    staff, staff_client, monkeypatch
) -> None:  # noqa: ANN001
    from django.db import connection

    from inbox.models import ConversationSearch

    session = session_key()
    post_webhook(
        message_event(session_id=session, message_id=1, text="배송 언제 와요?")
    )
    post_webhook(message_event(session_id=session, message_id=2, text="Parcel LOST"))
    conversation = Conversation.objects.get()
    conversation.take_over(staff)
    conversation.reply(staff, "Refund issued 환불완료")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tsvector_to_array(document) FROM inbox_conversationsearch "
            "WHERE conversation_id = %s",
            [conversation.pk],
        )
        words = set(cursor.fetchone()[0])
    assert {"배송", "언제", "parcel", "lost", "refund", "issued", "환불완료"} <= words
    # The agent's reply is found by search too, through the document.
    found = staff_client.get("/inbox/?q=환불완").content.decode()
    assert f'id="conv-{conversation.pk}"' in found

    # The common-word path reads stored documents, never message text.
    from inbox import models

    monkeypatch.setattr(models, "COMMON_MATCHES", -1)
    monkeypatch.setattr(models, "WALK_MATCHES", -1)
    sql, params = Conversation.objects.matching("parcel").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "inbox_conversationsearch" in plan and "inbox_message" not in plan

    # A document at its cap takes no more words; storing goes on regardless.
    monkeypatch.setattr(ConversationSearch, "MAX_LEXEMES", 3)
    assert (
        post_webhook(
            message_event(session_id=session, message_id=3, text="zebra")
        ).status_code
        == 200
    )
    assert Conversation.objects.matching("zebra").count() == 0
    assert Message.objects.filter(text="zebra").count() == 1


def test_search_results_show_the_matching_message_with_its_hits_marked(
    staff_client,
) -> None:  # noqa: ANN001
    session = session_key()
    post_webhook(
        message_event(session_id=session, message_id=1, text="환불 해주세요 <b>now</b>")
    )
    post_webhook(
        message_event(session_id=session, message_id=2, text="where is my parcel")
    )
    html = staff_client.get("/inbox/?q=환불").content.decode()
    snippet = re.search(r'<span class="preview snippet">(.*?)</span>', html, re.S)
    assert snippet, html[:2000]
    # The older message that matched, not the newest one; escaped, hit marked.
    assert "<mark>환불</mark> 해주세요 &lt;b&gt;now&lt;/b&gt;" in snippet.group(1)
    assert "parcel" not in snippet.group(1)
    assert re.search(
        r"· <time datetime=\"[^\"]+\" data-stamp>\w{3} \d+, \d\d:\d\d</time>",
        snippet.group(1),
    )
    # Without a search, the row shows the last message as before.
    plain = staff_client.get("/inbox/").content.decode()
    assert "preview snippet" not in plain and "where is my parcel" in plain


def test_a_long_snippet_is_cut_around_its_first_hit() -> None:
    from inbox.models import _highlight

    text = "a" * 300 + " Refund please " + "b" * 300
    html = _highlight(text, ["refund"])
    assert html.startswith("…") and html.endswith("…")
    assert "<mark>Refund</mark>" in html and len(html) < 200


def test_kept_rows_follow_every_change_they_show(staff_client) -> None:  # noqa: ANN001
    """The list keeps rendered rows (inbox.live.render_row), keyed by what they
    print: a change made with a queryset update (no updated_at), a new unread
    count, the open conversation and the language each draw it afresh."""
    session = session_key()
    post_webhook(message_event(session_id=session, message_id=1, senderName="Kim"))
    conversation = Conversation.objects.get()
    row = f'id="conv-{conversation.pk}"'

    def page(path: str = "/inbox/", **headers: str) -> str:
        html = staff_client.get(path, headers=headers).content.decode()
        return html[html.index(row) : html.index("</li>", html.index(row))]

    first = page()
    assert "Kim" in first and 'aria-label="1 unread">1</span>' in first
    assert page() == first  # kept, and the same
    Conversation.objects.filter(pk=conversation.pk).update(customer_name="Lee")
    assert "Lee" in page() and "Kim" not in page()
    post_webhook(message_event(session_id=session, message_id=2, text="again"))
    assert 'aria-label="2 unread">2</span>' in page()
    opened = page(f"/inbox/c/{conversation.pk}/")
    assert 'class="conversation status-bot selected"' in opened
    assert "selected" not in page()
    assert "선택" in page(**{"Accept-Language": "ko"})


def test_platform_labels_that_are_words_read_in_the_agents_language() -> None:
    """The labels "Web chat" and "Other" are words, not product names: a Korean agent
    reads them in Korean in the list, the header and the queue's counts."""
    from django.test import Client

    from core.models import Profile

    agent = create_user(role="agent")
    Profile.objects.create(user=agent, language="ko")
    session = session_key(chat="webchat")
    post_webhook(message_event(session_id=session, channel="webchat", text="hi"))
    conversation = Conversation.objects.get(session_id=session)
    assert conversation.platform == "webchat"
    conversation.escalate(reason="")
    client = Client()
    client.force_login(agent)
    thread = client.get(f"/inbox/c/{conversation.pk}/").content.decode()
    queue = client.get("/inbox/queue/").content.decode()
    assert re.search(r'class="platform platform-webchat"[^>]*>웹 채팅<', thread)
    assert "웹 채팅: <strong>1</strong>" in queue
    assert "Web chat" not in thread + queue
