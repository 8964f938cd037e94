"""Django-side chores of the reports benchmark (``bench/reports.py``).

``python -m bench.report_tasks NAME [ARGS]`` prints one JSON line last, like
``bench.tasks``. Runs on the bench database after ``bench.tasks.seed_scale``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import django

LEAD = "bench-lead"


def seed_report_extras() -> dict[str, Any]:
    """What a report counts beyond messages, in SQL over the seeded rows: one
    inbound message in 50 starts an escalation (four reasons), taken over by
    an agent 30 s–30 min later, who replies 20 s after that; half of them are
    resolved 5 min–5 h later; five triggers matched one inbound message in 30."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from automations.models import Trigger

    started = time.perf_counter()
    agents = [
        get_user_model()
        .objects.get_or_create(username=f"agent{i}", defaults={"is_staff": True})[0]
        .pk
        for i in range(5)
    ]
    triggers = [
        Trigger.objects.create(name=f"bench trigger {i}", patterns=[f"word{i}"]).pk
        for i in range(5)
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE TEMP TABLE esc ON COMMIT DROP AS
            SELECT m.conversation_id AS conv,
                   m.created_at + interval '5 seconds' AS escalated_at,
                   m.created_at + interval '5 seconds'
                     + (30 + random() * 1770) * interval '1 second' AS taken_at,
                   (%s::int[])[1 + (m.id %% 5)] AS agent,
                   (ARRAY['refund', 'angry customer', 'asked for a human',
                          'payment problem'])[1 + (m.id %% 4)] AS reason,
                   (m.id %% 2 = 0) AS resolves,
                   (300 + random() * 17700) * interval '1 second' AS resolve_after,
                   m.id AS mid
            FROM inbox_message m
            WHERE m.direction = 'inbound' AND m.id %% 50 = 0
            """,
            [agents],
        )
        cursor.execute(
            """
            INSERT INTO inbox_activity (conversation_id, kind, data, created_at)
            SELECT conv, 'status_changed',
                   jsonb_build_object('from', 'bot', 'to', 'escalated',
                                      'by', 'system', 'reason', reason),
                   escalated_at FROM esc
            UNION ALL
            SELECT conv, 'status_changed',
                   jsonb_build_object('from', 'escalated', 'to', 'human',
                                      'by', 'agent', 'reason', ''),
                   taken_at FROM esc
            UNION ALL
            SELECT conv, 'status_changed',
                   jsonb_build_object('from', 'human', 'to', 'resolved',
                                      'by', 'agent', 'reason', ''),
                   taken_at + resolve_after FROM esc WHERE resolves
            """
        )
        activities = cursor.rowcount
        cursor.execute(
            """
            INSERT INTO inbox_message (conversation_id, gateway_message_id, direction,
                kind, author, sender, text, attachments, ai_model, delivery_state,
                metadata, attempts, failure_reason, created_at, sent_by_id)
            SELECT conv, 'bench-agent-' || mid, 'outbound', 'text', 'agent',
                   'agent', 'Let me check that for you.', '[]', '', 'delivered',
                   '{}', 1, '', taken_at + interval '20 seconds', agent
            FROM esc
            """
        )
        replies = cursor.rowcount
        cursor.execute(
            """
            INSERT INTO automations_triggerrun (trigger_id, message_id,
                conversation_id, trigger_version, matched_pattern, results, error,
                duration_ms, created_at)
            SELECT (%s::int[])[1 + (m.id %% 5)], m.id, m.conversation_id, 1,
                   'word', '[]', '', 0.1, m.created_at
            FROM inbox_message m
            WHERE m.direction = 'inbound' AND m.id %% 30 = 1
            """,
            [triggers],
        )
        runs = cursor.rowcount
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE inbox_activity")
        cursor.execute("ANALYZE inbox_message")
        cursor.execute("ANALYZE automations_triggerrun")
    return {
        "status_activities": activities,
        "agent_replies": replies,
        "trigger_runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }


def lead_session() -> dict[str, Any]:
    """A lead and one logged-in session for the load generator."""
    from bench.tasks import staff_sessions

    return {"session": staff_sessions("1", LEAD, "lead")["sessions"][0]}


def query_profile(*paths: str) -> dict[str, Any]:
    """Per URL, in-process (test client): view time, queries and their time."""
    import statistics

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(get_user_model().objects.get(username=LEAD))
    result: dict[str, Any] = {}
    for path in paths:
        runs = []
        for _ in range(7):
            with CaptureQueriesContext(connection) as ctx:
                began = time.perf_counter()
                response = client.get(path)
                elapsed = time.perf_counter() - began
            assert response.status_code == 200, (path, response.status_code)
            runs.append(
                (elapsed, sum(float(q["time"]) for q in ctx.captured_queries), ctx)
            )
        runs = runs[2:]
        result[path] = {
            "view_ms": statistics.median(r[0] for r in runs) * 1000,
            "query_ms": statistics.median(r[1] for r in runs) * 1000,
            "queries": len(runs[-1][2].captured_queries),
        }
    return result


def rollup_rows() -> dict[str, Any]:
    from reports.models import AgentDailyStat, DailyStat, RollupDay

    return {
        "days": RollupDay.objects.count(),
        "daily_stats": DailyStat.objects.count(),
        "agent_stats": AgentDailyStat.objects.count(),
    }


TASKS: dict[str, Callable[..., dict[str, Any]]] = {
    "seed_report_extras": seed_report_extras,
    "lead_session": lead_session,
    "query_profile": query_profile,
    "rollup_rows": rollup_rows,
}

if __name__ == "__main__":
    django.setup()
    name, *args = sys.argv[1:]
    print(json.dumps(TASKS[name](*args), default=str, ensure_ascii=False))
