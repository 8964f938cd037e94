"""The gateway connector: the OpenClaw gateway's live transcript into the inbox.

One asyncio task holds one operator WebSocket to the gateway. It answers the
handshake (with this inbox's device identity), subscribes to every session's
transcript (``sessions.subscribe``) and hands each ``session.message`` to
``inbox.ingest.store``, the same function signed webhooks use.

Nothing is lost:

* each conversation keeps the last stored ``messageSeq`` (in the same
  transaction as the message) and a ``chat.history`` cursor;
* after any disconnect, ``sessions.list`` by activity finds the sessions that
  moved since the last row stored, and ``chat.history`` fetches what each
  missed; a seq gap seen live, or a session reset, fetches the same way;
* every row is stored under its ``messageId``, so overlap is a duplicate.

Exactly one connector per gateway ingests (``Leadership``: a PostgreSQL
advisory lock in production, a file lock on the embedded default); a standby
polls and takes over within seconds when the active one dies. The connection
is watched with the gateway's ticks (silence for two intervals → reconnect)
and reopened with jittered exponential backoff.

Database work runs on a few threads of its own (``OPENCLAW_CONNECTOR_SHARDS``,
one on SQLite); each session always on the same one, so in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import random
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.db import close_old_connections as django_close_old_connections
from django.db.models import Q
from django.utils import timezone
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, WebSocketException

from inbox import ingest, metrics, protocol, signals
from inbox.models import Conversation, GatewayLink, Message, Platform

log = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
# A connection that lasted this long was healthy: the next failure starts
# the backoff from the beginning again.
HEALTHY_AFTER = 30.0
STANDBY_POLL = 2.0
LEADERSHIP_CHECK = 3.0
CALL_TIMEOUT = 20.0
# Sessions that moved this long before the last row we stored are caught up
# too: clocks and the order of writes are not exact.
CATCH_UP_MARGIN = timedelta(seconds=60)
CATCH_UP_SESSIONS = 500
HISTORY_LIMIT = 200
_MAX_FRAME = 26 * 1024 * 1024


# --- what the gateway's transcript rows become ---------------------------------------


def _clean(text: str, limit: int) -> tuple[str, dict[str, Any]]:
    """Text the database can hold, capped; the cap is noted in the metadata.

    PostgreSQL text takes neither NUL nor a lone surrogate (which JSON can
    carry): each becomes U+FFFD, the replacement character.
    """
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode().replace("?", "\ufffd")
    if len(text) > limit:
        return text[:limit], {"truncated_from": len(text)}
    return text, {}


def event_from(row: protocol.TranscriptMessage) -> ingest.Event | None:
    """An ``ingest.Event`` for one transcript row; ``None`` for rows the inbox
    does not show (tool calls and results, system rows)."""
    if row.role not in ("user", "assistant"):
        return None
    channel = row.channel or protocol.channel_of(row.session_key)
    platform = Platform.parse(channel)
    text, metadata = _clean(row.text, settings.OPENCLAW_MAX_TEXT_CHARS)
    customer = row.role == "user"
    event = ingest.Event(
        type="message",
        source="gateway",
        session_id=row.session_key,
        platform=platform,
        message_id=row.message_id,
        seq=row.seq,
        generation=row.generation,
        recorded_at=row.recorded_at,
    )
    event.fields["conversation"] = {
        "platform": platform,
        "customer_id": row.sender_id[:255] if customer else "",
        "customer_name": row.sender_name[:255] if customer else "",
        "metadata": {},
    }
    if row.is_our_echo:
        event.type = "echo"
        # chat.inject writes "[label]\n\n<text>": the reply as we sent it.
        sent = text.split("\n\n", 1)[1] if text.startswith("[") else text
        event.fields["echo_key"] = row.idempotency_key
        event.fields["echo_text"] = sent
    if customer:
        author, direction = Message.Author.CUSTOMER, Message.Direction.INBOUND
        sender = row.sender_name or row.sender_id
        state = Message.DeliveryState.RECEIVED
    elif row.is_our_echo:
        # Sent by another operator client, not from this inbox.
        author, direction = Message.Author.AGENT, Message.Direction.OUTBOUND
        sender = "gateway operator"
        state = Message.DeliveryState.DELIVERED
    else:
        author, direction = Message.Author.BOT, Message.Direction.OUTBOUND
        sender = "bot"
        # Written while the inbox held the session: the customer never saw it.
        state = (
            Message.DeliveryState.SUPPRESSED
            if row.send_policy == "deny"
            else Message.DeliveryState.SENT
        )
    if not text and not row.attachments:
        return None if not row.is_our_echo else event
    event.fields["message"] = {
        "gateway_message_id": row.message_id,
        "direction": direction,
        "kind": Message.Kind.MEDIA if row.attachments else Message.Kind.TEXT,
        "author": author,
        "sender": sender[:255],
        "text": text,
        "attachments": row.attachments,
        "ai_model": row.model[:128] if author == Message.Author.BOT else "",
        "tokens_used": row.tokens if author == Message.Author.BOT else None,
        "delivery_state": state,
        "sent_at": row.timestamp,
        "metadata": metadata,
    }
    return event


# --- one active connector per gateway -----------------------------------------------


class Leadership:
    """Who may ingest from one gateway: exactly one process at a time."""

    def try_acquire(self) -> bool:
        raise NotImplementedError

    def still_held(self) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError


def _lock_key(url: str) -> int:
    digest = hashlib.sha256(f"openclaw-connector:{url}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresLeadership(Leadership):
    """A session-level advisory lock on a connection of its own.

    PostgreSQL drops the lock the moment the holder's connection closes (the
    process died, the machine went away), so a standby gets it on its next
    poll. The holder checks its connection every few seconds while it
    ingests (``still_held``) and stops if it is gone.
    """

    def __init__(self, url: str) -> None:
        self.key = _lock_key(url)
        self._connection: Any = None
        self._held = False

    def try_acquire(self) -> bool:
        import psycopg

        if self._held:
            return self.still_held()  # held since an earlier gateway connection
        try:
            if self._connection is None:
                params = connections["default"].get_connection_params()
                params.pop("cursor_factory", None)
                params.pop("context", None)
                self._connection = psycopg.connect(**params, autocommit=True)
            row = self._connection.execute(
                "SELECT pg_try_advisory_lock(%s)", [self.key]
            ).fetchone()
        except psycopg.Error:
            self.release()
            return False
        self._held = bool(row and row[0])
        return self._held

    def still_held(self) -> bool:
        import psycopg

        if not self._held or self._connection is None:
            return False
        try:
            self._connection.execute("SELECT 1")
        except psycopg.Error:
            self.release()
            return False
        return True

    def release(self) -> None:
        connection, self._connection = self._connection, None
        self._held = False
        if connection is not None:
            try:
                connection.close()  # closing the session releases the lock
            except Exception:  # noqa: BLE001 - already broken
                log.debug("closing the leadership connection failed", exc_info=True)


class FileLeadership(Leadership):
    """An exclusive ``flock`` on a file beside the SQLite database."""

    def __init__(self, url: str) -> None:
        # One lock per database and gateway: two test databases never collide.
        name = str(settings.DATABASES["default"]["NAME"])
        key = hashlib.sha256(f"{name}|{url}".encode()).hexdigest()[:16]
        self.path = Path(tempfile.gettempdir()) / f"openclaw-connector-{key}.lock"
        self._file: Any = None

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True  # held since an earlier connection
        handle = self.path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def still_held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            handle.close()


def leadership_for(url: str) -> Leadership:
    if connections["default"].vendor == "postgresql":
        return PostgresLeadership(url)
    return FileLeadership(url)


# --- the connection -------------------------------------------------------------------


class _Disconnect(Exception):
    """Why a connection ended, for the log and the reconnect counter."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Connector:
    """Keeps one gateway's transcript flowing into the inbox until ``stop``."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        leadership: Leadership | None = None,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        self.url = protocol.ws_url(url or settings.OPENCLAW_GATEWAY_URL)
        self.token = settings.OPENCLAW_GATEWAY_TOKEN if token is None else token
        self.leadership = leadership
        self.on_state = on_state or (lambda state: None)
        self.state = "starting"
        self.stored = 0
        self.recovered = 0
        self.connections = 0
        # Shard 0 also does the connector's own bookkeeping.
        self._db = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"connector-db-{n}")
            for n in range(store_shards())
        ]
        self._newest: datetime | None = None  # the newest row stored, not yet saved
        self._newest_saved_at = 0.0
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._hello: protocol.Hello | None = None

    def _set_state(self, state: str) -> None:
        self.state = state
        self.on_state(state)

    # -- the outer loop -------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Lead (or stand by), connect, ingest; reconnect with backoff till ``stop``."""
        if self.leadership is None:
            self.leadership = await self._in_db(leadership_for, self.url)
        failures = 0
        try:
            while not stop.is_set():
                if not await self._in_db(self.leadership.try_acquire):
                    self._set_state("standby")
                    await _sleep(stop, STANDBY_POLL)
                    continue
                started = time.monotonic()
                reason = "stopped"
                try:
                    await self._connect_and_ingest(stop)
                except _Disconnect as exc:
                    reason = exc.reason
                    log.warning("gateway connection ended: %s", exc)
                except ConnectionClosed as exc:
                    reason = "closed"
                    log.warning("gateway closed the connection: %s", exc)
                except (
                    OSError,
                    TimeoutError,
                    InvalidHandshake,
                    WebSocketException,
                    protocol.ProtocolError,
                ) as exc:
                    reason = "unreachable"
                    log.warning("gateway unreachable at %s: %s", self.url, exc)
                except protocol.RpcError as exc:
                    reason = "refused"
                    log.warning("the gateway refused a call: %s", exc)
                except (OperationalError, InterfaceError) as exc:
                    reason = "database"
                    log.warning("database unavailable, reconnecting: %s", exc)
                    # The lock's connection may be gone with it: re-acquire.
                    await self._in_db(self.leadership.release)
                except Exception:
                    # A bug must not end ingestion for good: log it, reconnect
                    # (catch-up fetches whatever was not stored).
                    reason = "error"
                    log.exception("the connector failed; reconnecting")
                finally:
                    self._ws = None
                    metrics.CONNECTOR_CONNECTED.set(0)
                    with contextlib.suppress(DatabaseError):  # it may be the cause
                        await self._in_db(self._record_disconnected, reason)
                        await self._save_newest(force=True)
                if stop.is_set():
                    break
                metrics.CONNECTOR_RECONNECTS.labels(reason=reason).inc()
                self._set_state(f"reconnecting ({reason})")
                failures = 0 if time.monotonic() - started > HEALTHY_AFTER else failures
                failures += 1
                cap = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1))
                await _sleep(stop, random.uniform(cap / 2, cap))
        finally:
            await self._in_db(self.leadership.release)
            for shard in range(len(self._db)):
                await self._in_db(connections.close_all, shard=shard)
            for executor in self._db:
                executor.shutdown(wait=True)
            self._set_state("stopped")

    async def _connect_and_ingest(self, stop: asyncio.Event) -> None:
        device, device_token = await self._in_db(self._device)
        async with connect(
            self.url,
            open_timeout=10,
            max_size=_MAX_FRAME,
            compression=None,  # the gateway never negotiates it
            ping_interval=None,  # the gateway's ticks are the keepalive
            user_agent_header="openclaw-inbox-connector",
        ) as ws:
            self._ws = ws
            hello = await self._handshake(ws, device, device_token)
            self._hello = hello
            self.connections += 1
            tasks = [
                asyncio.create_task(self._read(ws, hello.tick_interval)),
                asyncio.create_task(self._work(hello)),
                asyncio.create_task(self._keep_leading()),
            ]
            stopper = asyncio.create_task(stop.wait())
            try:
                done, _ = await asyncio.wait(
                    {*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    failure = None if task is stopper else task.exception()
                    if failure is not None:
                        raise _first_cause(failure)  # why it ended
            finally:
                for task in (*tasks, stopper):
                    task.cancel()
                await asyncio.gather(*tasks, stopper, return_exceptions=True)
                for future in self._pending.values():
                    future.cancel()
                self._pending.clear()
                self._events = asyncio.Queue()

    async def _handshake(
        self,
        ws: ClientConnection,
        device: protocol.DeviceIdentity,
        device_token: str,
    ) -> protocol.Hello:
        challenge = protocol.parse_frame(await asyncio.wait_for(ws.recv(), 10))
        if challenge.get("event") != "connect.challenge":
            raise _Disconnect("protocol", "the gateway did not send connect.challenge")
        params = protocol.connect_params(
            challenge.get("payload") or {},
            token=self.token or device_token,
            device=device,
        )
        request_id, frame = protocol.request("connect", params)
        await ws.send(frame)
        while True:
            reply = protocol.parse_frame(await asyncio.wait_for(ws.recv(), 10))
            if reply.get("type") == "res" and reply.get("id") == request_id:
                break
        try:
            hello = protocol.Hello.parse(protocol.result("connect", reply))
        except protocol.RpcError as exc:
            hint = ""
            if exc.code == "NOT_PAIRED" or "PAIRING" in exc.detail_code:
                hint = (
                    f" (approve this inbox's device {device.id[:16]}… on the "
                    "gateway: openclaw devices list / approve)"
                )
            await self._in_db(self._record_error, f"{exc}{hint}")
            raise _Disconnect("refused", f"{exc}{hint}") from exc
        await self._in_db(self._record_connected, hello)
        metrics.CONNECTOR_CONNECTED.set(1)
        self._set_state("connected")
        log.info(
            "connected to gateway %s (version %s, plugin %s)",
            self.url,
            hello.server_version or "?",
            "yes" if hello.has_plugin else "no",
        )
        return hello

    async def _keep_leading(self) -> None:
        """End the connection if the lock is lost (its database connection
        died): another connector may lead by now."""
        assert self.leadership is not None
        while True:
            await asyncio.sleep(LEADERSHIP_CHECK)
            if not await self._in_db(self.leadership.still_held):
                raise _Disconnect("leadership", "lost the connector lock")

    async def _read(self, ws: ClientConnection, tick_interval: float) -> None:
        """Route answers to their calls and events to the worker; watch ticks."""
        silence = tick_interval * protocol.TICK_MISSES
        while True:
            try:
                text = await asyncio.wait_for(ws.recv(), silence)
            except TimeoutError:
                await ws.close(4000, "tick timeout")
                raise _Disconnect(
                    "tick-timeout", f"no frame from the gateway for {silence:g} s"
                ) from None
            try:
                frame = protocol.parse_frame(text)
            except protocol.ProtocolError as exc:
                log.warning("unreadable frame from the gateway: %s", exc)
                continue
            if frame["type"] == "res":
                future = self._pending.pop(str(frame.get("id")), None)
                if future is not None and not future.done():
                    future.set_result(frame)
            elif frame["type"] == "event" and frame.get("event") == "session.message":
                self._events.put_nowait(frame)

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        ws = self._ws
        if ws is None:
            raise _Disconnect("closed", "not connected")
        request_id, frame = protocol.request(method, params)
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[request_id] = future
        await ws.send(frame)
        try:
            reply = await asyncio.wait_for(future, CALL_TIMEOUT)
        except TimeoutError:
            self._pending.pop(request_id, None)
            raise _Disconnect("timeout", f"{method} had no answer") from None
        return protocol.result(method, reply)

    # -- the work ---------------------------------------------------------------------

    async def _work(self, hello: protocol.Hello) -> None:
        """Subscribe, catch up, then store the live feed until the socket ends.

        Rows are stored by ``store_shards()`` tasks, each with a database
        thread of its own; a session always goes to the same one, so its rows
        are stored in the order the gateway sent them.
        """
        await self.call("sessions.subscribe", {})
        if protocol.COMMANDS_METHOD in hello.methods:
            senders = await self._in_db(command_senders)
            await self.call(protocol.COMMANDS_METHOD, {"senders": senders})
        if hello.has_plugin:
            owned = await self._in_db(_human_owned_sessions)
            answer = await self.call("inbox.takeover.sync", {"sessions": owned})
            enforcing = answer.get("enforcing") is not False
            await self._in_db(GatewayLink.note_enforcing, self.url, enforcing)
            if not enforcing:
                log.warning(
                    "the gateway's inbox plugin cannot stop the bot: set "
                    "plugins.entries.inbox-takeover.hooks.allowConversationAccess"
                    " true on the gateway"
                )
        await self.catch_up()
        self._set_state("live")
        queues: list[asyncio.Queue[protocol.TranscriptMessage]] = [
            asyncio.Queue() for _ in self._db
        ]
        async with asyncio.TaskGroup() as group:
            for shard, queue in enumerate(queues):
                group.create_task(self._store_live(queue, shard))
            while True:
                frame = await self._events.get()
                payload = frame.get("payload")
                row = protocol.transcript_message(
                    payload if isinstance(payload, dict) else {}
                )
                if row is not None:
                    queues[self._shard_of(row.session_key)].put_nowait(row)

    async def _store_live(
        self, queue: asyncio.Queue[protocol.TranscriptMessage], shard: int
    ) -> None:
        while True:
            row = await queue.get()
            outcome = await self._store(row, source="live", shard=shard)
            if outcome is not None and outcome.gap:
                await self.fetch_missed(row.session_key, shard=shard)
            await self._save_newest()

    def _shard_of(self, session_key: str) -> int:
        digest = hashlib.blake2b(session_key.encode(), digest_size=2).digest()
        return int.from_bytes(digest, "big") % len(self._db)

    async def catch_up(self) -> None:
        """Fetch what every session that moved since the last stored row missed."""
        since = await self._in_db(_last_event_at, self.url)
        listing = await self.call(
            "sessions.list", {"sortBy": "activity", "limit": CATCH_UP_SESSIONS}
        )
        moved: list[list[str]] = [[] for _ in self._db]
        rows = listing.get("sessions")
        for session in rows if isinstance(rows, list) else ():
            if not isinstance(session, dict) or not isinstance(session.get("key"), str):
                continue
            updated = protocol.millis(session.get("updatedAt"))
            if since is not None and updated is not None and updated < since:
                break  # sorted by activity: every later one is older still
            moved[self._shard_of(session["key"])].append(session["key"])

        async def fetch(keys: list[str], shard: int) -> None:
            for key in keys:
                await self.fetch_missed(key, shard=shard)

        async with asyncio.TaskGroup() as group:
            for shard, keys in enumerate(moved):
                group.create_task(fetch(keys, shard))
        await self._save_newest(force=True)

    async def fetch_missed(self, session_key: str, *, shard: int = 0) -> None:
        """Store the rows of one session the inbox has not seen (``chat.history``)."""
        cursor = await self._in_db(_cursor_of, session_key, shard=shard)
        rows: list[protocol.TranscriptMessage] = []
        next_cursor = ""
        if cursor:
            answer = await self._history({"sessionKey": session_key, "cursor": cursor})
            if answer.get("kind") == "delta":
                next_cursor = str(answer.get("deltaCursor") or "")
                for payload in answer.get("messages") or ():
                    row = protocol.transcript_message(payload, session_key=session_key)
                    if row is not None:
                        rows.append(row)
            else:
                cursor = ""  # the cursor went stale: read the tail again
        if not cursor:
            answer = await self._history(
                {"sessionKey": session_key, "limit": HISTORY_LIMIT}
            )
            next_cursor = str(answer.get("deltaCursor") or "")
            tail_generation = str(answer.get("sessionId") or "")
            for message in answer.get("messages") or ():
                row = protocol.transcript_message(message, session_key=session_key)
                if row is not None:
                    row.generation = row.generation or tail_generation
                    rows.append(row)
        for row in rows:
            # Rows stored already come back as duplicates (their messageId).
            await self._store(row, source="history", shard=shard)
        if next_cursor:
            await self._in_db(_save_cursor, session_key, next_cursor, shard=shard)

    async def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.call("chat.history", params)
        except protocol.RpcError as exc:
            log.warning("chat.history refused for %s: %s", params["sessionKey"], exc)
            return {}

    async def _store(
        self, row: protocol.TranscriptMessage, *, source: str, shard: int = 0
    ) -> ingest.Outcome | None:
        event = event_from(row)
        if event is None:
            metrics.CONNECTOR_EVENTS.labels(role=row.role, outcome="skipped").inc()
            return None
        try:
            outcome = await self._in_db(ingest.store, event, shard=shard)
        except (OperationalError, InterfaceError):
            raise  # the database is away: reconnect and catch up later
        except DatabaseError:
            # A row the database refuses will be refused again: log it and move
            # on rather than stall every session behind it.
            log.exception("could not store %s of %s", row.message_id, row.session_key)
            metrics.CONNECTOR_EVENTS.labels(role=row.role, outcome="error").inc()
            return None
        metrics.CONNECTOR_EVENTS.labels(role=row.role, outcome=outcome.status).inc()
        if row.recorded_at is not None:
            lag = (timezone.now() - row.recorded_at).total_seconds()
            metrics.CONNECTOR_LAG.observe(max(lag, 0.0))
            if self._newest is None or row.recorded_at > self._newest:
                self._newest = row.recorded_at
        if outcome.status == "stored":
            self.stored += 1
            if source == "history":
                self.recovered += 1
                metrics.CONNECTOR_RECOVERED.inc()
        return outcome

    # -- database (always on the connector's own thread) ----------------------------

    async def _in_db(self, function: Callable[..., T], *args: Any, shard: int = 0) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._db[shard], _with_connection, function, args
        )

    async def _save_newest(self, *, force: bool = False) -> None:
        """Write the newest row's record time (catch-up starts there), at most
        once a second: a crash loses less than the catch-up margin."""
        now = time.monotonic()
        newest = self._newest
        if newest is None or (not force and now - self._newest_saved_at < 1.0):
            return
        self._newest_saved_at = now
        await self._in_db(_save_last_event_at, self.url, newest)

    def _device(self) -> tuple[protocol.DeviceIdentity, str]:
        link = GatewayLink.for_url(self.url)
        return link.identity(), link.device_token

    def _record_connected(self, hello: protocol.Hello) -> None:
        link = GatewayLink.for_url(self.url)
        link.is_connected = True
        link.connected_at = timezone.now()
        link.server_version = hello.server_version[:64]
        link.has_plugin = hello.has_plugin
        link.last_error = ""
        if hello.device_token:
            link.device_token = hello.device_token
        link.save()

    def _record_disconnected(self, reason: str) -> None:
        GatewayLink.objects.filter(url=self.url).update(
            is_connected=False, updated_at=timezone.now()
        )

    def _record_error(self, error: str) -> None:
        GatewayLink.objects.filter(url=self.url).update(
            last_error=error[:500], is_connected=False, updated_at=timezone.now()
        )


def _first_cause(exc: BaseException) -> BaseException:
    """The first error inside task groups' exception groups, or ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _with_connection(function: Callable[..., T], args: tuple) -> T:
    # A long-lived thread: drop a connection the database closed meanwhile.
    django_close_old_connections()
    return function(*args)


def _save_last_event_at(url: str, recorded_at: datetime) -> None:
    GatewayLink.objects.filter(url=url).filter(
        Q(last_event_at__lt=recorded_at) | Q(last_event_at=None)
    ).update(last_event_at=recorded_at)


def store_shards() -> int:
    """How many sessions the connector stores at once. SQLite takes one writer."""
    if connections["default"].vendor != "postgresql":
        return 1
    return max(1, settings.OPENCLAW_CONNECTOR_SHARDS)


def _last_event_at(url: str) -> Any:
    link = GatewayLink.objects.filter(url=url).first()
    if link is None or link.last_event_at is None:
        return None
    return link.last_event_at - CATCH_UP_MARGIN


def _cursor_of(session_key: str) -> str:
    cursor = (
        Conversation.objects.filter(session_id=session_key)
        .values_list("gateway_cursor", flat=True)
        .first()
    )
    return cursor or ""


def _save_cursor(session_key: str, cursor: str) -> None:
    Conversation.objects.filter(session_id=session_key).update(
        gateway_cursor=cursor[:1024]
    )


def _human_owned_sessions() -> list[dict[str, str]]:
    """Every session whose bot the inbox holds (``Conversation.is_bot_paused``)."""
    return [
        {"sessionKey": key, "owner": owner or "escalation queue"}
        for key, owner in Conversation.objects.filter(
            Conversation.bot_paused_q()
        ).values_list("session_id", "assignee__username")
    ]


def command_senders() -> list[dict[str, str]]:
    """The ops-command allowlist, as the plugin's ``inbox.commands.sync`` takes
    it: the answers to ``command_senders_wanted``."""
    pairs: set[tuple[str, str]] = set()
    for _, answer in signals.command_senders_wanted.send(sender=None):
        # django-stubs types an answer as a string; ours are (platform, id) pairs.
        listed = cast("list[tuple[str, str]]", answer or [])
        pairs.update((str(platform), str(sender_id)) for platform, sender_id in listed)
    return [{"channel": p, "senderId": s} for p, s in sorted(pairs)]


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


# --- running it -----------------------------------------------------------------------


class ConnectorThread(threading.Thread):
    """The connector on an event loop of its own, for ``manage.py serve`` and tests."""

    def __init__(self, connector: Connector) -> None:
        super().__init__(name="gateway-connector", daemon=True)
        self.connector = connector
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._ready.set()
        await self.connector.run(self._stop_event)

    def stop(self, timeout: float = 10.0) -> None:
        self._ready.wait(timeout)
        if not self.is_alive():
            return
        if self._loop is not None and self._stop_event is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop_event.set)
            except RuntimeError:
                return  # the loop ended meanwhile
        self.join(timeout)
