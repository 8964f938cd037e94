"""Live updates: render inbox fragments and push them to the staff's browsers.

A published event is only a hint. Every event carries its activity sequence
number; ``inbox.consumers`` turns events into ``hx-swap-oob`` frames, keeps a
high-water mark per connection and fills any gap (a dropped group message, a
reconnect) from the ``Activity`` table, so the browser ends up with the same
DOM whichever way an update reached it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import models
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.translation import gettext, ngettext

from inbox.models import Activity, Conversation, Message, search_snippets

log = logging.getLogger(__name__)

INBOX_GROUP = "inbox"
# Sequence numbers are handed out at INSERT, rows become visible at COMMIT, so a
# lower number can appear after a higher one. Holes younger than this are
# waited for; older ones belong to rolled-back transactions and are skipped.
GAP_GRACE = timedelta(seconds=3)
TEMPLATE = "inbox/inbox.html"


def conversation_group(conversation_id: int) -> str:
    return f"conversation-{conversation_id}"


def render_row(
    conversation: Conversation, *, unread: int | None = None, selected: bool = False
) -> str:
    """The list's row for ``conversation``, in the active language and zone.

    A page draws 50 and every agent's page the same ones: each is rendered
    once per everything it prints (the key below) and kept, so a page pays
    the template for rows that changed only. The key holds the values
    themselves, not ``updated_at``: a queryset ``update()`` skips that.
    A search result carries its snippet and is always rendered.
    """
    context = {"conversation": conversation, "unread": unread, "selected": selected}
    if conversation.snippet is not None:
        return render_to_string(f"{TEMPLATE}#conversation-row", context)
    key = (
        conversation.pk,
        conversation.status,
        conversation.is_active,
        conversation.platform,
        conversation.last_message_at,
        conversation.customer_name,
        conversation.customer_id,
        conversation.session_id,
        conversation.last_message_preview,
        conversation.assignee.get_username() if conversation.assignee else "",
        conversation.last_error,
        unread,
        selected,
        translation.get_language(),
        timezone.get_current_timezone_name(),
    )
    with _rows_lock:
        html = _rows.get(key)
        if html is not None:
            _rows.move_to_end(key)
            return html
    html = render_to_string(f"{TEMPLATE}#conversation-row", context)
    with _rows_lock:
        _rows[key] = html
        while len(_rows) > ROWS_KEPT:
            _rows.popitem(last=False)
    return html


# Rendered rows by what they show (render_row); about 1.5 KB each.
ROWS_KEPT = 20_000
_rows: OrderedDict[tuple[Any, ...], str] = OrderedDict()
_rows_lock = threading.Lock()


def render_badge(conversation_id: int, unread: int) -> str:
    """The ``unread-badge`` partial, live: formatted, not rendered.

    Built for every tab on every event, so it skips the template engine;
    ``test_live_badge_matches_the_partial`` keeps the two identical. Both
    values are integers: nothing here needs escaping.
    """
    unread = int(unread)
    hidden = "" if unread else " hidden"
    return (
        f'<span id="unread-{int(conversation_id)}" class="unread" hx-swap-oob="true"'
        f'{hidden} aria-label="{unread} unread">{unread or ""}</span>'
    )


def render_message(message: Message) -> str:
    return render_to_string(f"{TEMPLATE}#thread-item", {"message": message})


def render_audit(activity: Activity) -> str:
    return render_to_string(f"{TEMPLATE}#audit-item", {"activity": activity})


def escalation_count() -> int:
    return Conversation.objects.filter(status=Conversation.Status.ESCALATED).count()


def render_header(conversation: Conversation) -> str:
    return render_to_string(
        f"{TEMPLATE}#conversation-header", {"conversation": conversation, "oob": True}
    )


def _assigned_by(activity: Activity, conversation: Conversation) -> str:
    """Who gave the conversation to its owner, when that was someone else
    (a lead's assignment, the round-robin); "" for a take-over or a wake."""
    data = activity.data
    if (
        data.get("to") != Conversation.Status.HUMAN
        or data.get("from") == Conversation.Status.SNOOZED
        or conversation.assignee_id is None
        or activity.user_id == conversation.assignee_id
    ):
        return ""
    by = str(data.get("by") or "")
    return AUTO_ASSIGN if by in ("", "system") else by


AUTO_ASSIGN = "Auto-assign"


def languages() -> list[str]:
    """Every language a tab may speak (``LANGUAGES``), the default first."""
    default = translation.get_supported_language_variant(settings.LANGUAGE_CODE)
    return [default, *(code for code, _ in settings.LANGUAGES if code != default)]


def _fragments(activity: Activity) -> dict[str, str]:
    """The parts of an event that have words in them, in the active language."""
    conversation = activity.conversation
    parts = {
        # A reply's delivery state changes nothing in the list: no row, so
        # every tab but the conversation's gets just the sequence number.
        "row": ""
        if activity.kind == Activity.Kind.MESSAGE_UPDATED
        else render_row(conversation),
        # The thread's entry: appended (a new message or audit line) or, for
        # a reply's delivery state, replaced where it stands.
        "item": "",
        "header": "",
    }
    if activity.message is not None:
        parts["item"] = render_message(activity.message)
    elif activity.kind in (Activity.Kind.STATUS_CHANGED, Activity.Kind.EVENT):
        parts["item"] = render_audit(activity)
    if activity.kind not in (
        Activity.Kind.MESSAGE_ADDED,
        Activity.Kind.MESSAGE_UPDATED,
    ):
        parts["header"] = render_header(conversation)
    return parts


def localized(event: dict[str, Any], language: str) -> dict[str, Any]:
    """``event`` with its fragments in ``language`` (the default's if it has none)."""
    parts = event.get("i18n", {}).get(language)
    return event | parts if parts else event


def event_for(activity: Activity) -> dict[str, Any]:
    """The channel-layer message for one activity, rendered once for every client.

    Once per language, that is: the default's fragments at the top level, the
    others' under ``i18n`` (plain strings: the message crosses Redis), and
    each tab takes its own (``localized``). Renders = events x languages.
    """
    conversation = activity.conversation
    default, *others = languages()
    with translation.override(default):
        fragments = _fragments(activity)
    i18n = {}
    for code in others:
        with translation.override(code):
            i18n[code] = _fragments(activity)
    moves_to_top = activity.kind == Activity.Kind.CONVERSATION_CREATED or (
        activity.kind == Activity.Kind.MESSAGE_ADDED
        and activity.message is not None
        and activity.message.kind != Message.Kind.RESET
    )
    event: dict[str, Any] = {
        "seq": activity.pk,
        # With the number, identifies the row even if a restored database
        # hands the same number out again.
        "at": activity.created_at.timestamp(),
        "kind": activity.kind,
        "conversation": conversation.pk,
        "platform": conversation.platform,
        "status": conversation.status,
        "assignee": conversation.assignee_id,
        "inbound": conversation.inbound_count,
        "to_top": moves_to_top,
        **fragments,
        "i18n": i18n,
        "item_key": "",
        "replace": activity.kind == Activity.Kind.MESSAGE_UPDATED,
        "from_customer": False,
        "escalated": False,
        "escalations": None,
        # An assignment tells its assignee (set below for status changes).
        "assigned_by": "",
        "auto_assigned": False,
        "customer": conversation.customer_name or conversation.customer_id,
        # For tabs filtered by tag or by days (View.shows).
        "tags": conversation.tags,
        "contact": conversation.contact_id,
        "last_at": conversation.last_message_at.timestamp(),
    }
    if activity.message is not None:
        event["item_key"] = f"msg-{activity.message.pk}"
        event["from_customer"] = activity.message.is_from_customer
    elif activity.kind in (Activity.Kind.STATUS_CHANGED, Activity.Kind.EVENT):
        event["item_key"] = f"act-{activity.pk}"
    if activity.kind == Activity.Kind.STATUS_CHANGED:
        event["escalated"] = activity.data.get("to") == Conversation.Status.ESCALATED
        event["escalations"] = escalation_count()
        event["assigned_by"] = _assigned_by(activity, conversation)
        # Worded in each tab's language (_notices).
        event["auto_assigned"] = bool(event["assigned_by"]) and str(
            activity.data.get("by") or ""
        ) in ("", "system")
    return event


def on_committed(sender: Any, activities: list[Activity], **kwargs: Any) -> None:
    """Receiver of ``inbox.signals.activities_committed``."""
    publish(activities)


def publish(activities: list[Activity]) -> None:
    """Push committed activities to every connected inbox: one channel-layer call.

    Runs after commit (``inbox.signals.publish_on_commit``). It never waits
    for the worker queue.
    """
    if not activities:
        return
    events = [event_for(activity) for activity in activities]
    _group_send(INBOX_GROUP, {"type": "inbox.events", "events": events})


def user_group(user_id: int) -> str:
    """Every tab of one staff member (their bell)."""
    return f"user-{int(user_id)}"


def on_bell(sender: Any, user_ids: list[int], kind: str, **kwargs: Any) -> None:
    """Receiver of ``inbox.signals.bell_changed``: each user's new count."""
    from inbox.models import Notification

    counts = dict.fromkeys(user_ids, 0) | dict(
        Notification.objects.unread()
        .filter(user_id__in=user_ids)
        .values_list("user_id")
        .annotate(n=models.Count("pk"))
    )
    for user_id, count in counts.items():
        _group_send(
            user_group(user_id),
            {"type": "inbox.bell", "html": render_bell_count(count, kind)},
        )


def render_bell_count(count: int, new: str = "") -> str:
    """The nav's bell counter; ``new`` names what just arrived (the page may
    play a sound for it)."""
    count = int(count)
    hidden = "" if count else " hidden"
    new = new if new in ("assigned", "mention", "sla", "monitor", "operations") else ""
    return (
        f'<span id="bell-count" class="count" hx-swap-oob="true"{hidden}'
        f' data-count="{count}" data-new="{new}">{count}</span>'
    )


def _group_send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    loop = _server_loop()
    if loop is not None:
        # In the web server: hand the send to its event loop and return, so
        # the webhook's answer does not wait on Redis (measured: 5-6 ms of a
        # ~16 ms delivery). A send that fails is found by the consumers'
        # gap fill and sweep, which read the activity rows.
        loop.call_soon_threadsafe(_send_soon, loop, layer, group, message)
        return
    # Elsewhere (a worker, a management command): on this process's publisher
    # loop. ``async_to_sync`` would start a new event loop per call, and the
    # Redis layer a new connection per loop (measured: ~4 ms a publish).
    sending = None
    try:
        sending = asyncio.run_coroutine_threadsafe(
            layer.group_send(group, message), _publisher_loop()
        )
        sending.result(timeout=PUBLISH_TIMEOUT)
    except Exception as exc:  # a lost frame: the tabs fill the gap from the database
        if sending is not None:
            sending.cancel()  # a hung Redis must not pile up late sends
        log.warning("live publish failed: %r", exc)


PUBLISH_TIMEOUT = 5.0
_publisher: tuple[asyncio.AbstractEventLoop, threading.Thread, int] | None = None
_publisher_lock = threading.Lock()


def _publisher_loop() -> asyncio.AbstractEventLoop:
    """An event loop on its own thread: one per process, made again after a fork."""
    global _publisher
    with _publisher_lock:
        if (
            _publisher is None
            or _publisher[2] != os.getpid()
            or not _publisher[1].is_alive()
        ):
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="live-publisher", daemon=True
            )
            thread.start()
            _publisher = (loop, thread, os.getpid())
        return _publisher[0]


_sending: set[asyncio.Task] = set()


# The event loop of the ASGI server whose request this thread is serving, if
# any: core.asgi sets it per request and the view's thread runs in a copy of
# that context (contextvars, a public API; no server internals).
server_loop: ContextVar[asyncio.AbstractEventLoop | None] = ContextVar(
    "server_loop", default=None
)


def _server_loop() -> asyncio.AbstractEventLoop | None:
    loop = server_loop.get()
    return loop if loop is not None and loop.is_running() else None


def _send_soon(
    loop: asyncio.AbstractEventLoop, layer: Any, group: str, message: dict
) -> None:
    task = loop.create_task(layer.group_send(group, message))
    _sending.add(task)  # keep a reference until it is done
    task.add_done_callback(_sent)


def _sent(task: asyncio.Task) -> None:
    _sending.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("live publish failed: %s", task.exception())


def current_seq() -> int:
    """The sequence number a freshly rendered page can safely resume from.

    Anything newer than the grace period is replayed on connect (frames are
    idempotent), so a row committed just after the page read the database is
    not skipped.
    """
    cutoff = timezone.now() - GAP_GRACE
    row = (
        Activity.objects.filter(created_at__lt=cutoff)
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )
    return row or 0


@dataclass
class View:
    """What one browser tab shows: its list filters and open conversation."""

    platform: str = ""
    status: str = ""
    owner: str = ""
    query: str = ""
    conversation: int | None = None
    user_id: int | None = None
    # "queue": the escalation queue page, which shows no rows or threads and
    # only needs the counter (it reloads its list when the count changes).
    page: str = ""
    tag: str = ""
    # Contacts carrying ``tag`` when the tab connected (a tag added to a
    # customer later shows on the next page load).
    tagged_contacts: frozenset[int] = frozenset()
    assignee_id: int | None = None
    # The list's activity window, as epoch seconds (None: open-ended).
    since: float | None = None
    until: float | None = None

    def lacks_tag(self, event: dict[str, Any]) -> bool:
        """The tab lists one tag and this event's conversation does not carry
        it, as far as the event knows. Messages never remove a tag, and an
        event rendered before a merge or a tag edit may name the old contact:
        such an event adds nothing to the list, and takes nothing away."""
        return bool(self.tag) and not (
            self.tag in event.get("tags", ())
            or event.get("contact") in self.tagged_contacts
        )

    def shows(self, event: dict[str, Any]) -> bool:
        if self.platform and event["platform"] != self.platform:
            return False
        if self.lacks_tag(event):
            return False
        if self.assignee_id is not None and event["assignee"] != self.assignee_id:
            return False
        last = event.get("last_at", event["at"])
        if self.since is not None and last < self.since:
            return False
        if self.until is not None and last >= self.until:
            return False
        if self.status and event["status"] != self.status:
            return False
        if self.owner == "mine" and event["assignee"] != self.user_id:
            return False
        if self.owner == "unassigned" and event["assignee"] is not None:
            return False
        return True


def seq_marker(seq: int) -> str:
    """The fragment that moves a tab's resume point; every frame starts with it."""
    return f'<div id="live-seq" data-seq="{int(seq)}" hx-swap-oob="true"></div>'


def search_rows(
    events: list[dict[str, Any]], view: View, *, language: str = ""
) -> dict[int, str]:
    """For a tab listing search results: the rows of the events' conversations
    that match its query now, each with its snippet, in ``language``.

    The list page's own search (``matching``, ``search_snippets``), asked of
    these conversations only; one absent from the answer does not match.
    Reads the database: the consumer calls it off the event loop.
    """
    query = view.query
    ids = {e["conversation"] for e in events if e["row"] and view.shows(e)}
    if not ids or not query.strip():
        return {}
    found = list(
        Conversation.objects.matching(query, among=ids).select_related("assignee")
    )
    snippets = search_snippets([c.pk for c in found], query)
    rows = {}
    with translation.override(language or None):
        for conversation in found:
            conversation.snippet = snippets.get(conversation.pk)
            rows[conversation.pk] = render_row(conversation)
    return rows


def frame(
    events: list[dict[str, Any]],
    *,
    view: View,
    seq: int,
    unread: dict[int, int],
    language: str = "",
    searched: dict[int, str] | None = None,
) -> str:
    """One websocket frame of ``hx-swap-oob`` fragments; applying it twice is harmless.

    Rows are removed then inserted at the top (so a replayed row does not
    appear twice); thread items likewise by their ``msg-<pk>`` id. The events'
    fragments are taken as given (``localized`` picks a tab's); ``language``
    words the notice. A search tab's rows are ``searched`` (``search_rows``):
    an event's own row has no snippet and may not match.
    """
    parts = [seq_marker(seq)]
    if view.page == "queue":
        return "".join(parts) + _escalation_fragment(events)
    # One row per conversation, in its newest state, moved up if any event says so.
    last_row = {event["conversation"]: event for event in events if event["row"]}
    moved = {event["conversation"] for event in events if event["to_top"]}
    for event in events:
        pk = event["conversation"]
        if last_row.get(pk) is event:
            parts.append(
                _row_fragment(event, view, to_top=pk in moved, searched=searched)
            )
            if pk in unread:
                parts.append(render_badge(pk, unread[pk]))
        if pk == view.conversation:
            if event["item"] and event["replace"]:
                parts.append(
                    event["item"].replace("<li ", '<li hx-swap-oob="true" ', 1)
                )
            elif event["item"]:
                key = event["item_key"]
                parts.append(f'<div id="{key}" hx-swap-oob="delete"></div>')
                parts.append(
                    f'<div hx-swap-oob="beforeend:#thread-{pk}">{event["item"]}</div>'
                )
            if event["header"]:
                parts.append(event["header"])
    with translation.override(language or None):
        notices = _notices(events, view)
    return "".join(parts) + _escalation_fragment(events) + notices


def _notices(events: list[dict[str, Any]], view: View) -> str:
    """ "<lead> assigned you <customer>", for the agent a lead just gave it to."""
    for event in reversed(events):
        if (
            event["kind"] == Activity.Kind.STATUS_CHANGED
            and view.user_id is not None
            and event["assignee"] == view.user_id
            and event.get("assigned_by")
        ):
            pk = int(event["conversation"])
            who = escape(event["customer"] or gettext("a customer"))
            words = {
                "by": escape(event["assigned_by"]),
                "customer": f'<a href="/inbox/c/{pk}/">{who}</a>',
            }
            if event.get("auto_assigned"):
                text = gettext("Auto-assign assigned you %(customer)s") % words
            else:
                text = gettext("%(by)s assigned you %(customer)s") % words
            return (
                f'<p id="notice" class="notice" role="status" aria-live="polite"'
                f' hx-swap-oob="true" data-conversation="{pk}">{text}</p>'
            )
    return ""


def _escalation_fragment(events: list[dict[str, Any]]) -> str:
    """The navigation's escalation counter at the newest count in this frame."""
    counts = [e for e in events if e.get("escalations") is not None]
    if not counts:
        return ""
    escalated = ",".join(str(e["conversation"]) for e in events if e.get("escalated"))
    return render_escalation_count(counts[-1]["escalations"], escalated)


def render_escalation_count(count: int, new: str = "") -> str:
    """The nav's "Escalations" badge; ``new`` lists conversations that just escalated
    (the page script raises a browser notification for them)."""
    count = int(count)
    hidden = "" if count else " hidden"
    return (
        f'<span id="escalation-count" class="count" hx-swap-oob="true"{hidden}'
        f' data-count="{count}" data-new="{new}">{count}</span>'
    )


def _row_fragment(
    event: dict[str, Any],
    view: View,
    *,
    to_top: bool,
    searched: dict[int, str] | None = None,
) -> str:
    pk = event["conversation"]
    if view.lacks_tag(event):
        return ""
    row = event["row"]
    if view.query:
        # Only what the search finds, with why it matched; a conversation
        # that no longer matches (a renamed customer) leaves the results.
        row = (searched or {}).get(pk, "")
    if not row or not view.shows(event):
        return f'<div id="conv-{pk}" hx-swap-oob="delete"></div>'
    if to_top:
        return (
            f'<div id="conv-{pk}" hx-swap-oob="delete"></div>'
            f'<div hx-swap-oob="afterbegin:#conversation-list">{row}</div>'
        )
    # A change that does not reorder: update in place.
    return row.replace("<li ", '<li hx-swap-oob="true" ', 1)


def render_presence(
    conversation_id: int, *, viewers: list[str], typing: list[str], language: str = ""
) -> str:
    """Who else is here and who is typing, for one tab in its language (names
    are escaped)."""
    pk = int(conversation_id)
    others = ", ".join(escape(name) for name in viewers)
    typists = ", ".join(escape(name) for name in typing)
    with translation.override(language or None):
        here = gettext("Also here: %(names)s") % {"names": others} if others else ""
        busy = (
            ngettext(
                "%(names)s is typing a reply…",
                "%(names)s are typing a reply…",
                len(typing),
            )
            % {"names": typists}
            if typists
            else ""
        )
    return (
        f'<p id="presence-{pk}" class="presence" hx-swap-oob="true">'
        + here
        + "</p>"
        + f'<p id="typing-{pk}" class="typing-warning" role="status"'
        + ' hx-swap-oob="true">'
        + busy
        + "</p>"
    )


STALE_FRAME = '<div id="live-stale" hx-swap-oob="true" data-stale="1"></div>'


def backlog_exceeds(after: int, limit: int) -> bool:
    return Activity.objects.after(after)[limit : limit + 1].exists()


# Events this process has seen published, by sequence number: a tab filling a
# gap or catching up after a reconnect takes them from here instead of
# rendering them again from the database.
_recent: OrderedDict[int, dict[str, Any]] = OrderedDict()
RECENT_EVENTS = 5_000
_rendering = threading.Lock()


def forget() -> None:
    """Drop the process's event memory (tests, where numbers restart)."""
    _recent.clear()
    with _rows_lock:
        _rows.clear()


def remember(events: list[dict[str, Any]]) -> None:
    for event in events:
        if event["seq"] not in _recent:
            _recent[event["seq"]] = event
    while len(_recent) > RECENT_EVENTS:
        _recent.popitem(last=False)


def load_events(after: int, *, limit: int = 500) -> list[dict[str, Any]]:
    """Events for the activities after ``after``, oldest first, for catch-up."""
    rows = list(Activity.objects.after(after).values_list("pk", "created_at")[:limit])
    for pk, created_at in rows:
        cached = _recent.get(pk)
        if cached is not None and cached["at"] != created_at.timestamp():
            _recent.pop(pk, None)
    if any(pk not in _recent for pk, _ in rows):
        # Many tabs fill the same gap at once: one renders, the rest wait
        # for it and find the events remembered.
        with _rendering:
            missing = [pk for pk, _ in rows if pk not in _recent]
            if missing:
                activities = Activity.objects.filter(pk__in=missing).select_related(
                    "conversation",
                    "conversation__assignee",
                    "message__conversation",
                    "user",
                )
                remember([event_for(activity) for activity in activities])
    # .get: the event loop thread may evict entries while this thread reads.
    return [
        event | {"created_at": created_at}
        for pk, created_at in rows
        if (event := _recent.get(pk)) is not None
        and event["at"] == created_at.timestamp()
    ]
