"""The staff inbox's websocket: live fragments plus gap-free catch-up.

The browser connects to ``/ws/inbox/?after=<seq>&platform=…&conversation=…``:
``after`` is the last sequence number it applied, the rest describe what the
tab shows. The consumer joins the groups first, then replays what the database
holds after ``after``, so nothing falls between the two. From then on it keeps
a high-water mark: every sequence number at or below it has been sent, and an
event at or below it is dropped.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import OrderedDict
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.contrib.auth import get_user_model
from django.db import connection
from django.http import HttpRequest
from django.utils import timezone, translation

from core.models import Profile
from core.roles import Role, role_of
from inbox import live, metrics
from inbox.models import AgentStatus, Contact, Conversation, ReadMark

SWEEP_SECONDS = 20.0


def _db(function: Any) -> Any:
    """Run ORM work off the event loop.

    On PostgreSQL in the shared thread pool rather than the one thread
    ``database_sync_to_async`` uses by default: hundreds of tabs catching up at
    once must not queue behind each other. SQLite takes one writer at a time
    anyway, so embedded mode keeps the single thread.
    """
    return database_sync_to_async(
        function, thread_sensitive=connection.vendor == "sqlite"
    )


class ReadMarks:
    """This process's copy of how far each agent has read each conversation.

    A conversation the tab knows nothing about costs one query per process,
    shared by every tab that asks at the same moment, not one per tab.
    """

    LIMIT = 10_000

    def __init__(self) -> None:
        self.by_conversation: OrderedDict[int, dict[int, int]] = OrderedDict()
        self.loading: dict[int, asyncio.Future] = {}

    async def seen(self, conversation_id: int, user_id: int) -> int:
        marks = self.by_conversation.get(conversation_id)
        if marks is None:
            future = self.loading.get(conversation_id)
            if future is None:
                future = asyncio.ensure_future(_db(_marks_for)(conversation_id))
                self.loading[conversation_id] = future
                future.add_done_callback(
                    lambda _: self.loading.pop(conversation_id, None)
                )
            loaded: dict[int, int] = await asyncio.shield(future)
            self.by_conversation[conversation_id] = marks = loaded
            while len(self.by_conversation) > self.LIMIT:
                self.by_conversation.popitem(last=False)
        return marks.get(user_id, 0)

    def clear(self) -> None:
        self.by_conversation.clear()

    def record(self, conversation_id: int, user_id: int, seen: int) -> None:
        if conversation_id in self.by_conversation:
            self.by_conversation[conversation_id][user_id] = seen


read_marks = ReadMarks()
STALE_AFTER = 2_000
ITEMS_REMEMBERED = 500
# A frame that would only move the tab's sequence number (an event about a
# conversation this tab does not show, such as another agent's reply going
# "sending", then "sent") waits this long: the tab's next real frame carries
# the newer number anyway. In a burst of 20 replies, two events in three are
# like that for every tab but one.
SEQ_ONLY_DELAY = 1.0


class InboxConsumer(AsyncWebsocketConsumer):
    async def dispatch(self, message: dict[str, Any]) -> None:
        """Call the handler for ``message`` without Channels' hop to the sync thread.

        Channels 4.2+ runs ``close_old_connections`` in the one shared sync
        thread before every message, so every frame of every tab queued
        behind every other (measured: 200 tabs at 20 messages a second, 2.5 s
        behind). This consumer never uses the ORM on the event loop: its
        database work goes through ``_db``, which closes stale connections in
        the thread that uses them.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            # Accepted, then closed with a code the page understands: a socket
            # refused at the handshake looks like a network error to the
            # browser, and a tab whose session expired would retry forever.
            await self.accept()
            await self.close(code=4401)
            return
        if await _db(role_of)(user) < Role.AGENT:
            await self.accept()
            await self.close(code=4403)
            return
        params = {
            k: v[-1] for k, v in parse_qs(self.scope["query_string"].decode()).items()
        }
        self.user = user
        # The tab's language, for its whole life: rows and headers come
        # rendered in every language (live.event_for), the tab takes its own.
        self.language = await _db(_language_of)(user.pk, self.scope)
        self.view = live.View(
            platform=params.get("platform", "")[:16],
            status=params.get("status", "")[:16],
            owner=params.get("owner", "")[:16],
            query=params.get("q", "").strip()[:200],
            user_id=user.pk,
            page=params.get("page", "")[:16],
            tag=params.get("tag", "")[:40].lower(),
            since=_float(params.get("since")),
            until=_float(params.get("until")),
        )
        if self.view.tag:
            self.view.tagged_contacts = await _tagged_contacts(self.view.tag)
        if assignee := params.get("assignee", "")[:150]:
            # An unknown name matches nobody's conversations (-1), not everyone's.
            self.view.assignee_id = await _user_id(assignee) or -1
        self.presence = Presence(self)
        self.ahead: set[int] = set()
        self.unread_seen: dict[int, int] = {}
        # Thread item id -> (sequence number, html) of its newest version sent.
        self.items: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self.lock = asyncio.Lock()
        self.gap_task: asyncio.Task | None = None
        self.seq_task: asyncio.Task | None = None
        self.seq_sent = 0  # the number the browser was last sent
        self.seen_task: asyncio.Task | None = None
        self.seen_since: Any = None
        self.groups_joined: list[str] = [live.INBOX_GROUP, live.user_group(user.pk)]
        conversation = _int(params.get("conversation"))
        if conversation is not None and await _conversation_exists(conversation):
            self.view.conversation = conversation
            self.groups_joined.append(live.conversation_group(conversation))
        after = _int(params.get("after"))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        try:
            await self._start(after)
        except BaseException:
            # No disconnect follows a failed connect (the database down, say):
            # clean up here, or the layer keeps this channel's name in its
            # groups and the client count stays up for good.
            await self.disconnect(1011)
            raise

    async def _start(self, after: int | None) -> None:
        user = self.user
        await self.accept()
        metrics.WEBSOCKET_CLIENTS.inc()
        self.counted = True
        self.hwm = after if after is not None else await _db(live.current_seq)()
        await _db(AgentStatus.seen)(user)
        self.unread_seen = await _db(_recent_read_marks)(user)
        if await _db(live.backlog_exceeds)(self.hwm, STALE_AFTER):
            # Away too long (a laptop closed overnight): a fresh page is
            # cheaper than replaying thousands of fragments.
            await self.send(live.STALE_FRAME)
            await self.close(code=4000)
            return
        await self.catch_up()
        self.sweeper = asyncio.ensure_future(self._sweep())
        if self.view.conversation is not None:
            await self.presence.announce(ask=True)

    async def disconnect(self, code: int) -> None:
        presence = getattr(self, "presence", None)
        if presence is not None:
            await presence.leave()
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        for name in ("sweeper", "gap_task", "seq_task"):
            if (task := getattr(self, name, None)) is not None:
                task.cancel()
        # A read mark still waiting is written now, not lost with the tab.
        seen_task = getattr(self, "seen_task", None)
        if seen_task is not None and not seen_task.done():
            seen_task.cancel()
            await _db(_mark_seen)(self.user, self.view.conversation, self.seen_since)
        if getattr(self, "counted", False):
            metrics.WEBSOCKET_CLIENTS.dec()
            self.counted = False

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        # The browser mostly listens: a ping keeps proxies from closing idle
        # sockets, and the composer says when its agent is typing.
        if not text_data or len(text_data) > 200:
            return
        if '"ping"' in text_data:
            await self.send('<div id="live-pong" hx-swap-oob="true"></div>')
        elif '"typing"' in text_data and self.view.conversation is not None:
            await self.presence.typing()

    # -- presence: who is viewing, who is typing ---------------------------------

    async def presence_here(self, message: dict[str, Any]) -> None:
        await self.presence.on_here(message)

    async def presence_gone(self, message: dict[str, Any]) -> None:
        await self.presence.on_gone(message)

    async def presence_typing(self, message: dict[str, Any]) -> None:
        await self.presence.on_typing(message)

    # -- group messages --------------------------------------------------------

    async def inbox_bell(self, message: dict[str, Any]) -> None:
        """This agent's notification count (every tab of theirs gets it)."""
        await self.send(message["html"])

    async def inbox_events(self, message: dict[str, Any]) -> None:
        live.remember(message["events"])
        async with self.lock:
            fresh = [
                e
                for e in message["events"]
                if e["seq"] > self.hwm and e["seq"] not in self.ahead
            ]
            if not fresh:
                return
            gap = fresh[0]["seq"] != self.hwm + 1 or any(
                b["seq"] != a["seq"] + 1 for a, b in zip(fresh, fresh[1:], strict=False)
            )
            for event in fresh:
                self.ahead.add(event["seq"])
            self._advance()
            await self._send(fresh)
        if gap:
            self._schedule_gap_fill()

    # -- catch-up ---------------------------------------------------------------

    async def catch_up(self) -> None:
        """Send what the database holds after the high-water mark, then advance it.

        The database is read without holding the lock, so live frames keep
        flowing while a tab catches up; what was sent meanwhile is skipped.
        """
        while True:
            events = await _db(live.load_events)(self.hwm)
            if not events:
                break
            async with self.lock:
                missing = [
                    e
                    for e in events
                    if e["seq"] > self.hwm and e["seq"] not in self.ahead
                ]
                now = timezone.now()
                for event in missing:
                    self.ahead.add(event["seq"])
                    # A hole before an old row is a rolled-back transaction.
                    if (
                        event["seq"] > self.hwm + 1
                        and now - event["created_at"] > live.GAP_GRACE
                    ):
                        self.hwm = event["seq"] - 1
                        self.ahead = {seq for seq in self.ahead if seq > self.hwm}
                    self._advance()
                if missing:
                    await self._send(missing)
            if len(events) < 500:
                break
        if self.ahead:
            self._schedule_gap_fill()

    def _advance(self) -> None:
        while self.hwm + 1 in self.ahead:
            self.hwm += 1
            self.ahead.discard(self.hwm)

    def _schedule_gap_fill(self) -> None:
        if self.gap_task is None or self.gap_task.done():
            self.gap_task = asyncio.ensure_future(self._fill_gap_later())

    async def _fill_gap_later(self) -> None:
        # Usually the missing number was committed a moment later and arrives by
        # itself; only a hole that is still there costs a database read.
        await asyncio.sleep(0.25)
        if not self.ahead:
            return
        await self.catch_up()
        if self.ahead:
            await asyncio.sleep(1.0)
            self.gap_task = None
            self._schedule_gap_fill()

    async def _sweep(self) -> None:
        # A group message lost for good (a full channel, a restarted Redis) still
        # reaches the screen: every tab looks at the database now and then.
        while True:
            await asyncio.sleep(SWEEP_SECONDS * random.uniform(0.75, 1.25))
            await self.catch_up()
            await _db(AgentStatus.seen)(self.user)
            if self.view.conversation is not None:
                await self.presence.announce()

    # -- sending ------------------------------------------------------------------

    async def _send(self, events: list[dict[str, Any]]) -> None:
        """Send the events as one frame. Hold the lock."""
        events = [live.localized(event, self.language) for event in events]
        events = self._newest_items(events)
        unread = await self._unread_for(events)
        searched = None
        if self.view.query:
            searched = await _db(live.search_rows)(
                events, self.view, language=self.language
            )
        text = live.frame(
            events,
            view=self.view,
            seq=self.hwm,
            unread=unread,
            language=self.language,
            searched=searched,
        )
        if text == live.seq_marker(self.hwm):
            if self.seq_task is None or self.seq_task.done():
                self.seq_task = asyncio.ensure_future(self._send_seq_later())
            return
        self.seq_sent = self.hwm
        await self.send(text)

    async def _send_seq_later(self) -> None:
        await asyncio.sleep(SEQ_ONLY_DELAY)
        async with self.lock:
            if self.seq_sent < self.hwm:
                self.seq_sent = self.hwm
                await self.send(live.seq_marker(self.hwm))

    def _newest_items(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Thread items as of the newest event this tab has seen for each.

        Events can arrive out of order (a reply's "sent" pushed by one
        process before its "queued" by another): the late, older one must
        not put the older state back on screen.
        """
        newest = []
        for event in events:
            key = event["item_key"]
            if not key or event["conversation"] != self.view.conversation:
                newest.append(event)
                continue
            known = self.items.get(key)
            if known is not None and known[0] > event["seq"]:
                event = event | {"item": known[1]}
            else:
                self.items[key] = (event["seq"], event["item"])
                self.items.move_to_end(key)
                while len(self.items) > ITEMS_REMEMBERED:
                    self.items.popitem(last=False)
            newest.append(event)
        return newest

    def _mark_seen_soon(self, conversation_id: int) -> None:
        if self.seen_task is None or self.seen_task.done():
            # An explicit "mark unread" after this moment wins over the mark.
            self.seen_since = timezone.now()
            self.seen_task = asyncio.ensure_future(
                self._mark_seen_later(conversation_id)
            )

    async def _mark_seen_later(self, conversation_id: int) -> None:
        await asyncio.sleep(1.0)
        await _db(_mark_seen)(self.user, conversation_id, self.seen_since)

    async def _unread_for(self, events: list[dict[str, Any]]) -> dict[int, int]:
        result: dict[int, int] = {}
        for event in events:
            pk = event["conversation"]
            if not event["row"]:
                continue  # a delivery state: no count changed
            if pk == self.view.conversation:
                # The agent is looking at it: what arrives is read. The mark is
                # written once a second at most, not once per message per tab.
                if event["from_customer"]:
                    self._mark_seen_soon(pk)
                self.unread_seen[pk] = event["inbound"]
                read_marks.record(pk, self.user.pk, event["inbound"])
            elif pk not in self.unread_seen:
                if event["kind"] == "conversation_created":
                    self.unread_seen[pk] = 0
                else:
                    self.unread_seen[pk] = await read_marks.seen(pk, self.user.pk)
            result[pk] = max(event["inbound"] - self.unread_seen[pk], 0)
        return result


class Presence:
    """Who else has this tab's conversation open, and who is typing in it.

    Nothing is stored: every tab announces itself to the conversation's group
    on connect and on each sweep, and forgets others it has not heard from in
    a while, so a closed laptop drops out by itself.
    """

    SEEN_FOR = SWEEP_SECONDS * 2.5
    TYPING_FOR = 6.0
    TYPING_EVERY = 2.0

    def __init__(self, consumer: InboxConsumer) -> None:
        self.consumer = consumer
        self.viewers: dict[int, tuple[str, float]] = {}
        self.typists: dict[int, tuple[str, float]] = {}
        self.last_typing = 0.0
        self.expiry: asyncio.TimerHandle | None = None

    @property
    def conversation(self) -> int:
        """The open conversation: a Presence exists only for a tab showing one."""
        pk = self.consumer.view.conversation
        assert pk is not None
        return pk

    @property
    def group(self) -> str:
        return live.conversation_group(self.conversation)

    def _me(self) -> dict[str, Any]:
        user = self.consumer.user
        return {
            "user_id": user.pk,
            "name": user.get_username(),
            "channel": self.consumer.channel_name,
        }

    async def announce(self, *, ask: bool = False) -> None:
        await self.consumer.channel_layer.group_send(
            self.group, {"type": "presence.here", "ask": ask, **self._me()}
        )

    async def leave(self) -> None:
        if self.consumer.view.conversation is None:
            return
        if self.expiry is not None:
            self.expiry.cancel()
        await self.consumer.channel_layer.group_send(
            self.group, {"type": "presence.gone", **self._me()}
        )

    async def typing(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self.last_typing < self.TYPING_EVERY:
            return  # throttled: one group message per agent every 2 s at most
        self.last_typing = now
        await self.consumer.channel_layer.group_send(
            self.group, {"type": "presence.typing", **self._me()}
        )

    async def on_here(self, message: dict[str, Any]) -> None:
        if message["channel"] == self.consumer.channel_name:
            return
        if message.get("ask"):
            # A tab that just opened the conversation learns who is here.
            await self.consumer.channel_layer.send(
                message["channel"],
                {"type": "presence.here", "ask": False, **self._me()},
            )
        if message["user_id"] == self.consumer.user.pk:
            return  # the same agent in another tab
        now = asyncio.get_running_loop().time()
        known = message["user_id"] in self.viewers
        self.viewers[message["user_id"]] = (message["name"], now + self.SEEN_FOR)
        if not known:
            await self.render()

    async def on_gone(self, message: dict[str, Any]) -> None:
        if message["user_id"] == self.consumer.user.pk:
            return
        viewing = self.viewers.pop(message["user_id"], None)
        typing = self.typists.pop(message["user_id"], None)
        if viewing or typing:
            await self.render()

    async def on_typing(self, message: dict[str, Any]) -> None:
        if message["user_id"] == self.consumer.user.pk:
            return
        now = asyncio.get_running_loop().time()
        self.typists[message["user_id"]] = (message["name"], now + self.TYPING_FOR)
        self.viewers[message["user_id"]] = (message["name"], now + self.SEEN_FOR)
        await self.render()

    async def render(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for people in (self.viewers, self.typists):
            for user_id in [u for u, (_, until) in people.items() if until <= now]:
                del people[user_id]
        await self.consumer.send(
            live.render_presence(
                self.conversation,
                viewers=sorted(name for name, _ in self.viewers.values()),
                typing=sorted(name for name, _ in self.typists.values()),
                language=self.consumer.language,
            )
        )
        # Expire by itself: re-render when the next name runs out.
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        deadlines = [
            until for _, until in (*self.viewers.values(), *self.typists.values())
        ]
        if deadlines:
            self.expiry = loop.call_later(
                max(min(deadlines) - now, 0) + 0.05,
                lambda: asyncio.ensure_future(self.render()),
            )


class NavConsumer(AsyncWebsocketConsumer):
    """The navigation's socket on pages without the inbox stream (reports,
    automations, monitors, system): only this user's bell count."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=4401)  # as InboxConsumer: the page stops retrying
            return
        if await _db(role_of)(user) < Role.AGENT:
            await self.close(code=4403)
            return
        self.group = live.user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if (group := getattr(self, "group", None)) is not None:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def inbox_bell(self, message: dict[str, Any]) -> None:
        await self.send(message["html"])


def _language_of(user_id: int, scope: dict[str, Any]) -> str:
    """The agent's saved language (cached: core.models.Profile), else the
    handshake's Accept-Language or language cookie, as LocaleMiddleware reads
    them for pages, else ``LANGUAGE_CODE``."""
    chosen = Profile.preferences_of(user_id).language
    if chosen:
        try:
            return translation.get_supported_language_variant(chosen)
        except LookupError:
            pass  # a language since removed from LANGUAGES
    request = HttpRequest()
    for name, value in scope.get("headers", []):
        if name == b"accept-language":
            request.META["HTTP_ACCEPT_LANGUAGE"] = value.decode("latin-1")
    request.COOKIES = dict(scope.get("cookies") or {})
    return translation.get_language_from_request(request)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        number = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


@database_sync_to_async
def _tagged_contacts(tag: str) -> frozenset[int]:
    return frozenset(
        Contact.objects.with_tag(tag).values_list("pk", flat=True)[:10_000]
    )


@database_sync_to_async
def _user_id(username: str) -> int | None:
    return (
        get_user_model()
        .objects.filter(username=username)
        .values_list("pk", flat=True)
        .first()
    )


@database_sync_to_async
def _conversation_exists(pk: int) -> bool:
    return Conversation.objects.filter(pk=pk).exists()


def _recent_read_marks(user: Any) -> dict[int, int]:
    since = timezone.now() - timedelta(days=7)
    marks = ReadMark.objects.filter(user=user, conversation__last_message_at__gte=since)
    return dict(marks.values_list("conversation_id", "inbound_seen"))


def _marks_for(conversation_id: int) -> dict[int, int]:
    marks = ReadMark.objects.filter(conversation_id=conversation_id)
    return dict(marks.values_list("user_id", "inbound_seen"))


def _mark_seen(user: Any, conversation_id: int, since: Any = None) -> None:
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is not None:
        ReadMark.mark_seen(user, conversation, unless_changed_since=since)
