"""Django-side chores of the benchmarks, each run in its own child process.

``python -m bench.tasks NAME [ARGS]`` prints one JSON line last. Runs under
``bench.settings`` against the bench database (see ``bench.common.bench_env``).
"""

from __future__ import annotations

import functools
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import django

STAFF = "bench-staff"


def staff_sessions(
    count: str, username: str = STAFF, group: str = ""
) -> dict[str, Any]:
    """A staff user (in ``group``, if given) and ``count`` logged-in sessions,
    one per simulated browser."""
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore

    user, _ = get_user_model().objects.get_or_create(
        username=username, defaults={"is_staff": True}
    )
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    sessions = []
    for _ in range(int(count)):
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        sessions.append(store.session_key)
    return {"user_id": user.pk, "sessions": sessions}


def max_seq() -> dict[str, Any]:
    from inbox.models import Activity

    return {
        "seq": Activity.objects.order_by("-pk").values_list("pk", flat=True).first()
        or 0
    }


def collectstatic() -> dict[str, Any]:
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)
    return {"ok": True}


# --- seeding the inbox at scale ----------------------------------------------------

# Added to the simulator's Korean lines so search has a realistic spread.
MORE_KO = [
    "환불해 주세요.",
    "환불은 언제 처리되나요?",
    "주소를 바꾸고 싶어요",
    "쿠폰이 적용이 안 돼요",
    "교환 가능한가요?",
    "앱이 자꾸 꺼져요",
    "영수증 다시 보내주실 수 있나요?",
    "상담원 연결해 주세요",
    "사이즈가 안 맞아요",
    "포인트는 언제 들어오나요?",
    "네 알겠습니다",
    "오늘 안에 받을 수 있을까요?",
]
EN = [
    "Hi, where is my order?",
    "Can I change my delivery address?",
    "I was charged twice.",
    "How do I reset my password?",
    "This is the worst service, I want a refund.",
    "Thanks, that worked!",
    "Do you ship to Canada?",
    "Is a refund possible for this?",
    "The app keeps crashing on login",
    "My coupon code does not apply",
    "Can I exchange it?",
    "Please connect me to a human",
    "The package arrived damaged",
    "When will I get my points?",
    "ok thanks",
    "Any update on this?",
    "Where can I download the invoice?",
]
BOT = [
    "주문 내역을 확인해 볼게요. 잠시만 기다려 주세요.",
    "배송은 보통 2~3일 걸립니다.",
    "불편을 드려 죄송합니다. 상담원을 연결해 드릴까요?",
    "환불 요청이 접수되었습니다.",
    "Let me look that up for you.",
    "Your order is on its way and should arrive Friday.",
    "I'm sorry about that. I can connect you with a human agent.",
    "Your refund has been issued and should appear in 3-5 business days.",
]
NAMES = [
    "김민준",
    "이서연",
    "박지훈",
    "최유나",
    "정하은",
    "윤도현",
    "강지우",
    "조수아",
    "Alice Park",
    "Carlos Mendes",
    "Dana Whitfield",
    "neon_fox",
    "Erik Lund",
    "Priya Nair",
    "Tom Becker",
]
PLATFORMS = [
    ("telegram", 30),
    ("whatsapp", 25),
    ("webchat", 15),
    ("slack", 10),
    ("discord", 8),
    ("signal", 5),
    ("imessage", 4),
    ("matrix", 2),
    ("googlechat", 1),
]
STATUSES = [("bot", 55), ("human", 10), ("escalated", 5), ("resolved", 30)]


@functools.cache
def _korean() -> list[str]:
    from inbox.simulator import CUSTOMER_TEXTS

    return [text for text in CUSTOMER_TEXTS if not text.isascii()] + MORE_KO


def _customer_text(rng: random.Random) -> str:
    pool = _korean() if rng.random() < 0.55 else EN
    parts = [rng.choice(pool) for _ in range(rng.choice((1, 1, 1, 2, 2, 3)))]
    if rng.random() < 0.15:
        parts.append(f"#{rng.randrange(1000, 99999)}")
    return " ".join(parts)


# Search's worst cases: a word only in the oldest conversations. "recall" is
# in the 250 oldest (about 2,500 messages: the case measured at 2.1 s), and
# "warranty" in the next 2,750 (more than search's "common" threshold of
# 2,000 conversations, all of them old).
COLD_RARE, COLD_COMMON = "recall", "warranty"
COLD_RARE_CONVERSATIONS, COLD_COMMON_CONVERSATIONS = 250, 3_000
LONG_THREAD = 400


def seed_scale(conversations: str, messages: str) -> dict[str, Any]:
    """``conversations`` conversations holding about ``messages`` messages, by COPY.

    Secondary indexes are dropped for the load and rebuilt from their exact
    definitions afterwards (faster than maintaining them row by row), then the
    tables are vacuumed and analysed as autovacuum would have them in a
    long-running inbox.
    """
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    n_conv, n_msg = int(conversations), int(messages)
    rng = random.Random(42)
    started = time.perf_counter()
    agents = [
        get_user_model()
        .objects.get_or_create(username=f"agent{i}", defaults={"is_staff": True})[0]
        .pk
        for i in range(5)
    ]
    platforms, p_weights = zip(*PLATFORMS, strict=True)
    statuses, s_weights = zip(*STATUSES, strict=True)
    avg = max(n_msg / n_conv, 1.0)
    now = datetime.now(UTC)
    # Each conversation's last activity, drawn first so the oldest are known:
    # search's worst cases put a word only in the oldest conversations.
    last_ats = {
        conv_id: now - timedelta(seconds=rng.uniform(0, 180 * 86400))
        for conv_id in range(1, n_conv + 1)
    }
    by_age = sorted(last_ats, key=last_ats.get)
    cold_words = {conv_id: COLD_RARE for conv_id in by_age[:COLD_RARE_CONVERSATIONS]}
    cold_words |= {
        conv_id: COLD_COMMON
        for conv_id in by_age[COLD_RARE_CONVERSATIONS:COLD_COMMON_CONVERSATIONS]
    }
    # The newest conversation is a long thread, for the conversation page.
    long_thread = by_age[-1]
    tables = ("inbox_conversation", "inbox_message", "inbox_activity")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.relname, pg_get_indexdef(ix.indexrelid)
            FROM pg_index ix
            JOIN pg_class i ON i.oid = ix.indexrelid
            JOIN pg_class t ON t.oid = ix.indrelid
            WHERE t.relname = ANY(%s) AND NOT ix.indisunique AND NOT ix.indisprimary
            """,
            [list(tables)],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
    # Messages go in before their conversations (each conversation's preview is
    # its last message): one transaction, so the deferred foreign keys are
    # checked at commit.
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.connection
        conv_rows: list[tuple[Any, ...]] = []
        activities: list[tuple[int, int, datetime]] = []
        cold_messages = {COLD_RARE: 0, COLD_COMMON: 0}
        msg_id = 0
        total_messages = 0
        with raw.cursor().copy(
            "COPY inbox_message (id, conversation_id, gateway_message_id, direction,"
            " kind, author, sender, text, attachments, ai_model, delivery_state,"
            " metadata, attempts, failure_reason,"
            " created_at) FROM STDIN"
        ) as copy:
            for conv_id in range(1, n_conv + 1):
                platform = rng.choices(platforms, p_weights)[0]
                name = f"{rng.choice(NAMES)} {rng.randrange(1, 9999)}"
                # Customers come back: ids from a pool smaller than the
                # conversations, and the long thread's customer has dozens
                # of earlier conversations (its contact panel lists them).
                customer = str(rng.randrange(10**8 + 1, 10**8 + 1 + n_conv * 6 // 10))
                if conv_id == long_thread or conv_id % (n_conv // 40) == 0:
                    platform, customer, name = "telegram", str(10**8), "김민준 단골"
                status = rng.choices(statuses, s_weights)[0]
                last_at = last_ats[conv_id]
                count = max(1, round(rng.uniform(1, 2 * avg - 1)))
                if conv_id == long_thread:
                    count = LONG_THREAD
                inbound = 0
                text = ""
                for j in range(count):
                    msg_id += 1
                    at = last_at - timedelta(
                        minutes=(count - 1 - j) * rng.uniform(0.2, 30)
                    )
                    if j % 2 == 0 or rng.random() < 0.2:
                        inbound += 1
                        text = _customer_text(rng)
                        row = ("inbound", "customer", name, text, "", "received")
                    else:
                        text = rng.choice(BOT)
                        row = (
                            "outbound",
                            "bot",
                            "bot",
                            text,
                            "claude-sonnet-4",
                            "sent",
                        )
                    direction, author, sender, text, model, state = row
                    if conv_id in cold_words:
                        text = f"{text} {cold_words[conv_id]}"
                        cold_messages[cold_words[conv_id]] += 1
                    activities.append((msg_id, conv_id, at))
                    copy.write_row(
                        (
                            msg_id,
                            conv_id,
                            f"m{msg_id}",
                            direction,
                            "text",
                            author,
                            sender,
                            text,
                            "[]",
                            model,
                            state,
                            "{}",
                            0,
                            "",
                            at,
                        )
                    )
                total_messages += count
                assignee = rng.choice(agents) if rng.random() < 0.2 else None
                conv_rows.append(
                    (
                        conv_id,
                        f"agent:main:{platform}:dm:{conv_id:09d}",
                        platform,
                        customer,
                        name,
                        status,
                        assignee,
                        count,
                        inbound,
                        last_at,
                        text[:160],
                        "{}",
                        status != "resolved",
                        "",
                        last_at - timedelta(days=rng.uniform(0, 30)),
                        last_at,
                        False,
                        "",
                        0,
                        "",
                        "",
                    )
                )
        with raw.cursor().copy(
            "COPY inbox_conversation (id, session_id, platform, customer_id,"
            " customer_name, status, assignee_id, message_count, inbound_count,"
            " last_message_at, last_message_preview, metadata, is_active, last_error,"
            " created_at, updated_at, is_locked, escalation_reason,"
            " gateway_seq, gateway_generation, gateway_cursor)"
            " FROM STDIN"
        ) as copy:
            for row in conv_rows:
                copy.write_row(row)
        # The timeline: one "message added" row per message, as storing writes.
        with raw.cursor().copy(
            "COPY inbox_activity (id, conversation_id, kind, message_id, data,"
            " created_at) FROM STDIN"
        ) as copy:
            for n, (message_id, conv_id, at) in enumerate(activities, start=1):
                copy.write_row((n, conv_id, "message_added", message_id, "{}", at))
    loaded = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            cursor.execute(definition)
        for table in tables:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        # Each conversation's search document, as migration 0009 fills it.
        cursor.execute("TRUNCATE inbox_conversationsearch")
        cursor.execute(
            "INSERT INTO inbox_conversationsearch (conversation_id, document) "
            "SELECT m.conversation_id, array_to_tsvector(array_agg(DISTINCT u.lexeme))"
            " FROM inbox_message m,"
            " unnest(to_tsvector('simple'::regconfig, COALESCE(m.text, ''))) u"
            " GROUP BY m.conversation_id"
        )
        # A contact per customer, as storing links them; one in ten tagged.
        cursor.execute("UPDATE inbox_conversation SET contact_id = NULL")
        cursor.execute("DELETE FROM inbox_contact")
        cursor.execute(
            "INSERT INTO inbox_contact (platform, external_id, name, tags, notes,"
            " created_at, updated_at)"
            " SELECT DISTINCT ON (platform, customer_id) platform, customer_id,"
            " customer_name, CASE WHEN hashtext(customer_id) % 10 = 0"
            " THEN '[\"vip\"]'::jsonb ELSE '[]'::jsonb END, '', created_at, created_at"
            " FROM inbox_conversation ORDER BY platform, customer_id, created_at"
        )
        cursor.execute(
            "UPDATE inbox_conversation c SET contact_id = ct.id FROM inbox_contact ct"
            " WHERE ct.platform = c.platform AND ct.external_id = c.customer_id"
        )
    with connection.cursor() as cursor:
        for table in (*tables, "inbox_conversationsearch", "inbox_contact"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]
    return {
        "conversations": n_conv,
        "messages": total_messages,
        "load_s": round(loaded, 1),
        "total_s": round(time.perf_counter() - started, 1),
        "indexes_rebuilt": [name for name, _ in indexes],
        "database_size": size,
        "activities": len(activities),
        "long_thread": {"id": long_thread, "messages": LONG_THREAD},
        # One of the long thread's customer's other conversations (short).
        "returning": n_conv // 40
        if n_conv // 40 != long_thread
        else 2 * (n_conv // 40),
        "cold_words": {
            COLD_RARE: {
                "conversations": COLD_RARE_CONVERSATIONS,
                "messages": cold_messages[COLD_RARE],
            },
            COLD_COMMON: {
                "conversations": COLD_COMMON_CONVERSATIONS - COLD_RARE_CONVERSATIONS,
                "messages": cold_messages[COLD_COMMON],
            },
        },
    }


def query_profile(*paths: str) -> dict[str, Any]:
    """Per URL: queries, their total time and the whole view's time, in-process.

    Uses the test client (no daphne): the difference from the loopback figure
    is the server and network. Also EXPLAIN ANALYZE of the list query.
    """
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user = get_user_model().objects.get(username=STAFF)
    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(user)
    result: dict[str, Any] = {}
    for path in paths:
        runs = []
        for _ in range(7):
            with CaptureQueriesContext(connection) as ctx:
                started = time.perf_counter()
                response = client.get(path)
                elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.status_code
            runs.append(
                (
                    elapsed,
                    sum(float(q["time"]) for q in ctx.captured_queries),
                    ctx.captured_queries,
                )
            )
        runs = runs[2:]  # the first ones warm caches
        slowest_sql = max(runs[-1][2], key=lambda q: float(q["time"]))
        # The page's list query, as executed (parameters inlined by Django).
        list_sql = next(
            (
                q["sql"]
                for q in runs[-1][2]
                if q["sql"].startswith('SELECT "inbox_conversation"."id"')
                and "LIMIT" in q["sql"]
            ),
            slowest_sql["sql"],
        )
        result[path] = {
            "view_ms": statistics.median(r[0] for r in runs) * 1000,
            "query_ms": statistics.median(r[1] for r in runs) * 1000,
            "queries": len(runs[-1][2]),
            "slowest_query_ms": float(slowest_sql["time"]) * 1000,
            "slowest_query": slowest_sql["sql"][:600],
        }
        result[path]["explain"] = _explain(list_sql)
    return result


def search_baseline(*words: str) -> dict[str, Any]:
    """The list query of the search before ConversationSearch, timed on the
    same data: conversations newest first, each probed for a message whose
    ``to_tsvector`` matches (what a common word used to run). Median of 5,
    in milliseconds, against the same page through today's search."""
    from django.contrib.postgres.search import SearchQuery, SearchVector
    from django.db.models import Exists, OuterRef

    from inbox.models import Conversation, Message

    result: dict[str, Any] = {}
    for word in words:
        query = SearchQuery(f"{word}:*", config="simple", search_type="raw")
        hits = Message.objects.annotate(
            search=SearchVector("text", config="simple")
        ).filter(search=query)
        before = Conversation.objects.filter(
            Exists(hits.filter(conversation=OuterRef("pk")))
        ).by_activity()
        now = Conversation.objects.matching(word).by_activity()
        timings = {}
        for name, queryset in (("before", before), ("now", now)):
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                rows = list(queryset.values_list("pk", flat=True)[:51])
                runs.append((time.perf_counter() - started) * 1000)
            timings[name] = {"median_ms": statistics.median(runs), "rows": len(rows)}
        result[word] = timings
    return result


def _explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


TASKS: dict[str, Callable[..., dict[str, Any]]] = {
    "staff_sessions": staff_sessions,
    "max_seq": max_seq,
    "collectstatic": collectstatic,
    "seed_scale": seed_scale,
    "query_profile": query_profile,
    "search_baseline": search_baseline,
}

if __name__ == "__main__":
    django.setup()
    name, *args = sys.argv[1:]
    print(json.dumps(TASKS[name](*args), default=str, ensure_ascii=False))
