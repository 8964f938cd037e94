from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.core.cache import cache
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Exists, ExpressionWrapper, F, OuterRef, Q, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, Substr
from django.utils import timezone
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, gettext_lazy, gettext_noop

from core import masking, outbox
from core.templatetags.clock import stamp
from inbox.protocol import INTERNAL_CHANNELS, DeviceIdentity, channel_of, ws_url
from inbox.signals import bell_on_commit, publish_on_commit, reply_queued_on_commit

# Choice labels, worded when shown. Typed as str: other apps build dicts of
# them and format them, which a lazy string does as a str.
_ = cast(Callable[[str], str], gettext_lazy)

PREVIEW_CHARS = 160
PLUGIN_CACHE_SECONDS = 10


class Platform(models.TextChoices):
    TELEGRAM = "telegram", "Telegram"
    WHATSAPP = "whatsapp", "WhatsApp"
    SLACK = "slack", "Slack"
    DISCORD = "discord", "Discord"
    SIGNAL = "signal", "Signal"
    IMESSAGE = "imessage", "iMessage"
    GOOGLECHAT = "googlechat", "Google Chat"
    MATRIX = "matrix", "Matrix"
    # Product names read the same in every language; these two are words.
    WEBCHAT = "webchat", gettext_lazy("Web chat")
    OTHER = "other", gettext_lazy("Other")

    @classmethod
    def parse(cls, value: str) -> Platform:
        value = (value or "").strip().lower().replace("-", "").replace("_", "")
        aliases = {
            "web": cls.WEBCHAT,
            "google": cls.GOOGLECHAT,
            "gchat": cls.GOOGLECHAT,
        }
        if value in aliases:
            return aliases[value]
        try:
            return cls(value)
        except ValueError:
            return cls.OTHER


def activity_window(since: str, until: str) -> tuple[datetime | None, datetime | None]:
    """Days (ISO dates, inclusive) as instants in the active time zone."""
    zone = timezone.get_current_timezone()

    def midnight(day: str, plus: int = 0) -> datetime | None:
        if not day:
            return None
        start = datetime.fromisoformat(day).date() + timedelta(days=plus)
        return datetime.combine(start, datetime.min.time(), tzinfo=zone)

    return midnight(since), midnight(until, 1)


def wake_at(
    *, minutes: int | None = None, until: datetime | None = None
) -> datetime | None:
    """When a snooze ends: at ``until``, after ``minutes``, or (neither) when
    the customer replies. The one rule the page, bulk work and the API use."""
    if until is not None:
        return until
    if minutes is not None:
        return timezone.now() + timedelta(minutes=minutes)
    return None


def json_list_has(field: str, value: str) -> Q:
    """``field``, a JSON list, holds ``value``. SQLite has no JSON
    containment: there, the quoted value inside the stored list."""
    if _is_postgres():
        return Q(**{f"{field}__contains": [value]})
    return Q(**{f"{field}__icontains": f'"{value}"'})


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def active(self) -> ConversationQuerySet:
        return self.filter(is_active=True)

    def by_activity(self) -> ConversationQuerySet:
        """Newest activity first; ``id`` breaks ties so the cursor is total."""
        return self.order_by("-last_message_at", "-id")

    def filtered(
        self,
        *,
        platform: str = "",
        status: str = "",
        owner: str = "",
        user: Any = None,
        query: str = "",
        tag: str = "",
        assignee: str = "",
        since: str = "",
        until: str = "",
    ) -> ConversationQuerySet:
        qs: ConversationQuerySet = self
        if tag:
            qs = qs.tagged(tag)
        if assignee:
            qs = qs.filter(assignee__username=assignee)
        start, end = activity_window(since, until)
        if start is not None:
            qs = qs.filter(last_message_at__gte=start)
        if end is not None:
            qs = qs.filter(last_message_at__lt=end)
        if platform:
            qs = qs.filter(platform=platform)
        if status:
            qs = qs.filter(status=status)
        if owner == "mine" and user is not None:
            qs = qs.filter(assignee=user)
        elif owner == "unassigned":
            qs = qs.filter(assignee__isnull=True)
        if query:
            qs = qs.matching(query)
        return qs

    def tagged(self, tag: str) -> ConversationQuerySet:
        """Conversations tagged ``tag``, or whose customer is."""
        return self.filter(
            json_list_has("metadata__tags", tag)
            | Q(contact__in=Contact.objects.with_tag(tag))
        )

    def of_customer(self, identities: list[Contact]) -> ConversationQuerySet:
        """A customer's conversations, under any of their (merged) contacts."""
        return self.filter(contact_id__in=[c.pk for c in identities]).by_activity()

    def matching(
        self, query: str, *, among: Collection[int] | None = None
    ) -> ConversationQuerySet:
        """Conversations whose customer or any message matches ``query``.

        PostgreSQL uses the full-text index on message text; SQLite (embedded
        mode) falls back to a case-insensitive substring scan. ``among``: only
        these few conversations (the live stream asks which of an event's
        match a tab's search), each checked against its own words.
        """
        query = query.strip()[:200]
        if not query:
            return self
        qs = self if among is None else self.filter(pk__in=among)
        name_match = Q(customer_name__icontains=query) | Q(customer_id__icontains=query)
        terms = _search_terms(query)
        if _is_postgres() and terms:
            from django.contrib.postgres.search import SearchQuery

            # Prefix terms: Korean attaches particles and endings to the word
            # ("환불해주세요"), so "환불" must match the start of a token.
            # Asked of one document per conversation (ConversationSearch,
            # GIN-indexed), never of every message.
            words = SearchQuery(
                " & ".join(f"{term}:*" for term in terms),
                config="simple",
                search_type="raw",
            )
            documents = ConversationSearch.objects.filter(document=words)
            if among is not None:
                # A few known conversations: each one's document, by key.
                own = documents.filter(conversation_id=OuterRef("pk"))
                return qs.filter(name_match | Exists(own))
            # One bounded read through the GIN index counts the matching
            # conversations (PostgreSQL's estimate for a prefix is no guide).
            sample = list(
                documents.values_list("conversation_id", flat=True)[
                    : max(WALK_MATCHES + 1, 0)
                ]
            )
            if len(sample) <= COMMON_MATCHES:
                # A rare word: its few conversations as a list, names OR-ed
                # in (both served by indexes). Left as a subquery, PostgreSQL
                # may probe it row by row for 100k conversations (seconds).
                return self.filter(name_match | Q(pk__in=set(sample)))
            if len(sample) <= WALK_MATCHES:
                # Thousands of conversations: fetch them by primary key and
                # keep the newest, wherever they sit in time (a walk newest
                # first would pass every newer conversation: measured 180 ms
                # when 2,750 matches were all old, 7 ms this way). Names are
                # left out of the two common paths: OR-ing them in makes
                # PostgreSQL scan for them.
                return self.filter(
                    pk__in=RawSQL("SELECT unnest(%s::bigint[])", [sample])
                )
            # Most conversations: walking them newest first, each checked
            # against its stored document (a primary-key probe), meets a
            # page of matches within a few rows.
            return self.filter(Exists(documents.filter(conversation_id=OuterRef("pk"))))
        # Embedded mode (SQLite): every word as a case-insensitive substring.
        scan = Message.objects.all() if terms else Message.objects.none()
        if among is not None:
            scan = scan.filter(conversation_id__in=among)
        for term in terms:
            scan = scan.filter(text__icontains=term)
        return qs.filter(name_match | Q(pk__in=scan.values("conversation_id")))

    def with_unread_for(self, user: Any) -> ConversationQuerySet:
        """Annotate ``unread``: inbound messages this agent has not seen."""
        seen = ReadMark.objects.filter(user=user, conversation=OuterRef("pk")).values(
            "inbound_seen"
        )[:1]
        return self.annotate(
            unread=ExpressionWrapper(
                F("inbound_count") - Coalesce(Subquery(seen), 0),
                output_field=models.IntegerField(),
            )
        )

    def before_cursor(
        self, cursor: tuple[datetime, int] | None
    ) -> ConversationQuerySet:
        """Keyset page after ``cursor`` (the last row's sort key): fast at any depth."""
        if cursor is None:
            return self
        at, pk = cursor
        return self.filter(Q(last_message_at__lt=at) | Q(last_message_at=at, pk__lt=pk))


SNIPPET_CHARS = 140


def search_snippets(conversation_ids: list[int], query: str) -> dict[int, Any]:
    """For each conversation, its newest message matching ``query``, as
    ``{"html": escaped excerpt with <mark>ed hits, "at": datetime}``.

    Asked of one page of search results only. On PostgreSQL each conversation
    is read through its own messages (newest first), never through the
    word's index, whose hits for a common word run to hundreds of thousands.
    """
    terms = _search_terms(query)
    if not conversation_ids or not terms:
        return {}
    found: dict[int, tuple[str, datetime]] = {}
    if _is_postgres():
        words = " & ".join(f"{term}:*" for term in terms)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.id, m.text, m.created_at"
                " FROM unnest(%s::bigint[]) AS c(id) CROSS JOIN LATERAL ("
                "  SELECT text, created_at FROM inbox_message"
                "  WHERE conversation_id = c.id"
                # Not the indexed expression on purpose (see above).
                "  AND to_tsvector('simple'::regconfig, COALESCE(text, '') || ' ')"
                "      @@ to_tsquery('simple'::regconfig, %s)"
                "  ORDER BY id DESC LIMIT 1) m",
                [list(conversation_ids), words],
            )
            found = {pk: (text, at) for pk, text, at in cursor.fetchall()}
    else:
        rows = Message.objects.filter(conversation_id__in=conversation_ids)
        for term in terms:
            rows = rows.filter(text__icontains=term)
        for pk, text, at in rows.order_by("-id").values_list(
            "conversation_id", "text", "created_at"
        )[:2000]:
            found.setdefault(pk, (text, at))
    return {
        pk: {"html": _highlight(text, terms), "at": at}
        for pk, (text, at) in found.items()
    }


def _highlight(text: str, terms: list[str]) -> str:
    """An escaped excerpt of ``text`` around its first hit, hits in <mark>."""
    from django.utils.html import escape

    pattern = re.compile("|".join(re.escape(term) for term in terms), re.IGNORECASE)
    first = pattern.search(text)
    start = max(0, (first.start() if first else 0) - SNIPPET_CHARS // 3)
    end = min(len(text), start + SNIPPET_CHARS)
    excerpt = text[start:end]
    pieces, at = [], 0
    for hit in pattern.finditer(excerpt):
        pieces += [
            escape(excerpt[at : hit.start()]),
            f"<mark>{escape(hit.group())}</mark>",
        ]
        at = hit.end()
    pieces.append(escape(excerpt[at:]))
    return ("…" if start else "") + "".join(pieces) + ("…" if end < len(text) else "")


def _search_terms(query: str) -> list[str]:
    """Words of ``query`` safe to put in a raw tsquery (its operators removed)."""
    cleaned = "".join(ch if ch.isalnum() else " " for ch in query.lower())
    return cleaned.split()[:8]


# Search by how many conversations match (ConversationQuerySet.matching): up
# to COMMON_MATCHES a list with names OR-ed in, up to WALK_MATCHES fetched by
# primary key, above that a walk newest first.
COMMON_MATCHES = 2_000
# Above this many matching conversations, search walks them newest first.
WALK_MATCHES = 20_000


def _is_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


class TransitionError(Exception):
    """A state change that cannot happen; ``str()`` is shown to the agent, in
    the language active when it is shown (the API's answers are English)."""

    def __init__(self, message: str, **params: Any) -> None:
        # ``message``: the English text, marked with gettext_noop.
        self.message, self.params = message, params
        super().__init__(message % params if params else message)

    def __str__(self) -> str:
        text = gettext(self.message)
        return text % self.params if self.params else text


class AlreadyTaken(TransitionError):
    def __init__(self, owner: Any) -> None:
        self.owner = owner
        if owner is None:
            super().__init__(gettext_noop("already taken by someone else"))
        else:
            super().__init__(
                gettext_noop("already taken by %(name)s"), name=owner.get_username()
            )


class ContactQuerySet(models.QuerySet["Contact"]):
    def with_tag(self, tag: str) -> ContactQuerySet:
        return self.filter(json_list_has("tags", tag))

    def named(self, query: str) -> ContactQuerySet:
        query = query.strip()[:100]
        return self.filter(Q(name__icontains=query) | Q(external_id__icontains=query))


class Contact(models.Model):
    """A customer: one per platform sender id, however many conversations.

    Merging points one contact at another (``merged_into``); the merged one
    stays as an alias so its platform id keeps resolving to the survivor,
    and its conversations move over.
    """

    NOTES_CHARS = 10_000

    platform = models.CharField(
        max_length=16, choices=Platform.choices, default=Platform.OTHER
    )
    # The platform's id for the sender (Telegram chat id, WhatsApp number...).
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    tags = models.JSONField(default=list, blank=True)
    notes = models.TextField(blank=True, max_length=NOTES_CHARS)
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="aliases",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ContactQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "external_id"], name="contact_platform_id_uniq"
            )
        ]

    def __str__(self) -> str:
        return self.name or self.external_id

    @classmethod
    def for_customer(cls, platform: str, external_id: str, name: str = "") -> Contact:
        """The contact for a platform sender id, made on first sight.

        Concurrent first messages race on the unique pair: ``get_or_create``
        retries the read in its savepoint. A merged contact answers with the
        one it was merged into.
        """
        contact, created = cls.objects.get_or_create(
            platform=platform, external_id=external_id[:255], defaults={"name": name}
        )
        if not created and not contact.name and name:
            contact.name = name[:255]
            contact.save(update_fields=["name", "updated_at"])
        return contact.merged_into if contact.merged_into else contact

    def identities(self) -> list[Contact]:
        """This contact and every contact merged into it."""
        return [self, *self.aliases.all()]

    def merge(self, other: Contact) -> None:
        """Fold ``other`` (and its aliases) into this contact.

        Tags are joined, notes appended, conversations moved. Both rows are
        locked, lower id first, so two agents merging the pair both ways
        cannot deadlock; the second finds them merged and refuses.
        """
        if other.pk == self.pk:
            raise ValueError(gettext("a contact cannot be merged into itself"))
        with transaction.atomic():
            first, second = sorted([self.pk, other.pk])
            rows = {
                row.pk: row
                for row in Contact.objects.select_for_update().filter(
                    pk__in=[first, second]
                )
            }
            keep, gone = rows[self.pk], rows[other.pk]
            if keep.merged_into_id or gone.merged_into_id:
                raise ValueError(gettext("already merged"))
            ids = [gone.pk, *gone.aliases.values_list("pk", flat=True)]
            Contact.objects.filter(merged_into=gone).update(merged_into=keep)
            gone.merged_into = keep
            gone.save(update_fields=["merged_into", "updated_at"])
            Conversation.objects.filter(contact_id__in=ids).update(contact=keep)
            keep.tags = sorted({*keep.tags, *gone.tags})
            if gone.notes:
                keep.notes = "\n\n".join(n for n in (keep.notes, gone.notes) if n)[
                    : self.NOTES_CHARS
                ]
            keep.name = keep.name or gone.name
            keep.save(update_fields=["tags", "notes", "name", "updated_at"])
        self.refresh_from_db()


class Conversation(models.Model):
    # A search page's "why it matched" (search_snippets); not a column.
    snippet: dict[str, Any] | None = None
    # The list's rendered row (inbox.live.render_row); not a column.
    row_html: str = ""

    class Status(models.TextChoices):
        BOT = "bot", _("Bot")
        ESCALATED = "escalated", _("Escalated")
        HUMAN = "human", _("Human")
        SNOOZED = "snoozed", _("Snoozed")
        RESOLVED = "resolved", _("Resolved")

    session_id = models.CharField(max_length=255, unique=True)
    platform = models.CharField(
        max_length=16, choices=Platform.choices, default=Platform.OTHER
    )
    customer_id = models.CharField(max_length=255, blank=True)
    customer_name = models.CharField(max_length=255, blank=True)
    # Set once the customer's platform id is known (store() links it).
    contact = models.ForeignKey(
        Contact,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="conversation_set",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BOT)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_conversations",
    )
    # Set when a lead assigns the conversation: only that agent (or a lead)
    # may act on it until it is handed back or resolved.
    is_locked = models.BooleanField(default=False)
    # When the customer started waiting for a human (the queue's timer).
    escalated_at = models.DateTimeField(null=True, blank=True)
    escalation_reason = models.CharField(max_length=255, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    message_count = models.PositiveIntegerField(default=0)
    # Inbound messages ever received; an agent's unread count is this minus
    # what their ReadMark says they have seen.
    inbound_count = models.PositiveIntegerField(default=0)
    # Sort key of the inbox; starts at creation so it is never null.
    last_message_at = models.DateTimeField(default=timezone.now)
    last_message_preview = models.CharField(max_length=PREVIEW_CHARS, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    # Where the connector stands in the gateway's transcript of this session:
    # the last messageSeq stored, in the session generation it belongs to
    # (the gateway's sessionId; a reset starts a new one at 1), and the
    # chat.history cursor that fetches what came after.
    gateway_seq = models.PositiveIntegerField(default=0)
    gateway_generation = models.CharField(max_length=64, blank=True)
    gateway_cursor = models.CharField(max_length=1024, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["-last_message_at", "-id"], name="conv_activity_idx"),
            models.Index(
                fields=["platform", "-last_message_at", "-id"], name="conv_platform_idx"
            ),
            models.Index(
                fields=["status", "-last_message_at", "-id"], name="conv_status_idx"
            ),
            models.Index(
                fields=["assignee", "-last_message_at", "-id"], name="conv_assignee_idx"
            ),
            models.Index(
                fields=["escalated_at"],
                condition=Q(status="escalated"),
                name="conv_queue_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.customer_name or self.session_id

    def link_contact(self) -> None:
        """Point at the customer's contact once their platform id is known.

        Needs the row lock (``store()`` holds it).
        """
        if self.contact_id is None and self.customer_id:
            self.contact = Contact.for_customer(
                self.platform, self.customer_id, self.customer_name
            )
            self.save(update_fields=["contact", "updated_at"])

    @classmethod
    def lock_for_session(
        cls, session_id: str, *, defaults: dict[str, Any]
    ) -> tuple[Conversation, bool]:
        """Return the conversation for ``session_id``, row-locked, creating it if new.

        Call inside ``transaction.atomic()``. Most deliveries belong to a known
        conversation, so the locking read comes first. Concurrent first
        deliveries for one session race on the unique ``session_id``: the
        loser's insert fails in its savepoint and it locks the winner's row.

        ``no_key``: FOR NO KEY UPDATE still queues every other writer of the
        row, but lets rows that merely point at it (a reply's activity row,
        written by a worker holding that reply's lock) be inserted meanwhile.
        With FOR UPDATE, a reply's echo arriving while its worker marks it
        "sent" deadlocked: conversation → message here, message →
        conversation there.
        """
        locked = cls.objects.select_for_update(no_key=True)
        conversation = locked.filter(session_id=session_id).first()
        if conversation is not None:
            return conversation, False
        try:
            with transaction.atomic():
                return cls.objects.create(session_id=session_id, **defaults), True
        except IntegrityError:
            return locked.get(session_id=session_id), False

    def add_message(
        self,
        *,
        fresh_id: bool = False,
        also_save: list[str] | None = None,
        **fields: Any,
    ) -> Message | None:
        """Store one message and its activity row; ``None`` if it is a duplicate.

        Needs the row lock from ``lock_for_session``. Uniqueness is the database's
        (conversation, gateway_message_id) constraint, so redeliveries that race
        or arrive a day later both end here as duplicates. ``fresh_id``: the
        id was just made here and cannot be a duplicate, so the INSERT needs
        no savepoint to recover from one (two round trips fewer).
        ``also_save``: fields the caller changed, written in the same UPDATE.
        """
        try:
            with transaction.atomic(savepoint=not fresh_id):
                message = Message.objects.create(conversation=self, **fields)
        except IntegrityError:
            return None
        # The row is locked, so its values in memory are current: update them
        # here and write them back, no re-read needed.
        now = message.created_at
        self.message_count += 1
        self.updated_at = now
        changed = ["message_count", "updated_at", *(also_save or ())]
        if message.kind not in (Message.Kind.RESET, Message.Kind.NOTE):
            self.last_message_at = now
            self.last_message_preview = message.preview
            changed += ["last_message_at", "last_message_preview"]
        reopened_from = None
        woken = False
        if message.direction == Message.Direction.INBOUND:
            self.inbound_count += 1
            changed.append("inbound_count")
            if self.status == self.Status.SNOOZED and self.is_active:
                # The customer wrote: a snooze ends early, back to its owner
                # (or the queue), as when its time runs out.
                was_paused = self.is_bot_paused
                reopened_from, woken = self.status, True
                self.status = (
                    self.Status.HUMAN
                    if self.assignee_id is not None
                    else self.Status.ESCALATED
                )
                if self.status == self.Status.ESCALATED:
                    self.escalated_at = now
                self.snoozed_until = None
                changed += ["status", "snoozed_until", "escalated_at"]
                if self.is_bot_paused != was_paused:
                    outbox.enqueue("sync_send_policy", self.pk)
            elif not self.is_active or self.status == self.Status.RESOLVED:
                # A customer writing again reopens the conversation: to the
                # agent who had it when so configured, otherwise to the bot.
                reopened_from = self.status
                self.is_active = True
                changed += ["is_active", "status", "assignee", "is_locked"]
                if settings.INBOX_REOPEN_TO_AGENT and self.assignee_id:
                    self.status = self.Status.HUMAN
                else:
                    self.status = self.Status.BOT
                    self.assignee = None
                    self.is_locked = False
        self.save(update_fields=changed)
        ConversationSearch.add_text(self.pk, message.text)
        message.activity = Activity.objects.create(
            conversation=self, kind=Activity.Kind.MESSAGE_ADDED, message=message
        )
        if reopened_from is not None:
            message.status_activity = self._record_status(
                reopened_from,
                None,
                reason="customer replied" if woken else "customer wrote again",
            )
        return message

    def close(self) -> Activity | None:
        """Mark the conversation ended by the gateway; ``None`` if it already was.

        Needs the row lock.
        """
        if not self.is_active and self.status == self.Status.RESOLVED:
            return None
        previous = self.status
        self.is_active = False
        self.status = self.Status.RESOLVED
        self.is_locked = False
        self.escalated_at = None
        self.save(
            update_fields=[
                "is_active", "status", "is_locked", "escalated_at", "updated_at"
            ]
        )  # fmt: skip
        return self._record_status(previous, None, reason="ended by the gateway")

    # --- ownership and status: each locks the row, records who did it ----------
    #
    # Every transition below runs in its own transaction, re-reads this row with
    # ``select_for_update`` (two agents clicking at once queue on the lock, the
    # second sees the first one's result) and writes an activity row that is
    # published after commit. ``self`` is refreshed with the new state.

    def take_over(
        self, agent: Any, *, from_owner: int | None = None
    ) -> Activity | None:
        """``agent`` owns the conversation and the bot stops answering.

        Raises ``AlreadyTaken`` when another agent owns it, unless the agent
        asks to take it from that very owner (``from_owner``: what their page
        showed) and no lead locked it: of two agents doing so at once, one
        wins and the other learns who. ``None`` when ``agent`` already did.
        """

        def change(row: Conversation) -> dict[str, Any] | None:
            # A snoozed conversation keeps its owner: still theirs to take back.
            owned = row.status in (self.Status.HUMAN, self.Status.SNOOZED)
            if owned and row.assignee_id is not None:
                if row.assignee_id != agent.pk and (
                    row.is_locked or from_owner != row.assignee_id
                ):
                    raise AlreadyTaken(row.assignee)
                if row.assignee_id == agent.pk and row.status == self.Status.HUMAN:
                    return None
            # Taking over a conversation the gateway ended reopens it for the
            # agent: the customer writing back must not hand it to the bot.
            return {"status": self.Status.HUMAN, "assignee": agent, "is_active": True}

        return self._transition(agent, change)

    def assign(self, lead: Any, agent: Any) -> Activity | None:
        """A lead gives the conversation to ``agent`` and locks it to them."""

        def change(row: Conversation) -> dict[str, Any] | None:
            if row.assignee_id == agent.pk and row.is_locked:
                return None
            return {
                "status": self.Status.HUMAN,
                "assignee": agent,
                "is_locked": True,
                "is_active": True,
            }

        with transaction.atomic():
            activity = self._transition(lead, change)
            if activity is not None and agent.pk != getattr(lead, "pk", None):
                self._tell_assignee(
                    agent, activity, f"{lead.get_username()} assigned you {self}"
                )
        return activity

    def hand_back(self, agent: Any, *, to: str = "bot") -> Activity | None:
        """Give the conversation back to the bot, or (``to="queue"``) to the queue."""
        target = self.Status.ESCALATED if to == "queue" else self.Status.BOT

        def change(row: Conversation) -> dict[str, Any] | None:
            if row.status == target and row.assignee_id is None:
                return None
            if row.status == self.Status.RESOLVED:
                raise TransitionError(gettext_noop("it is resolved"))
            return {"status": target, "assignee": None, "is_locked": False}

        return self._transition(agent, change)

    def escalate(self, by: Any = None, *, reason: str = "") -> Activity | None:
        """Put a bot conversation in the human queue; ``None`` if a human has it."""

        def change(row: Conversation) -> dict[str, Any] | None:
            if row.status in (self.Status.ESCALATED, self.Status.HUMAN):
                return None
            return {"status": self.Status.ESCALATED, "assignee": None}

        return self._transition(by, change, reason=reason)

    def snooze(self, agent: Any, until: datetime | None) -> Activity | None:
        """Out of sight until ``until`` (``None``: until the customer writes);
        then back to its owner (who keeps it, and a lead's lock, meanwhile:
        the bot stays stopped), or to the queue when nobody owned it. A
        customer writing wakes it early either way (``add_message``)."""

        def change(row: Conversation) -> dict[str, Any] | None:
            if row.status == self.Status.RESOLVED:
                raise TransitionError(gettext_noop("it is resolved"))
            return {"status": self.Status.SNOOZED, "snoozed_until": until}

        # Stored in UTC, shown in each agent's zone (``Activity.summary_html``).
        reason = (
            f"until {until.astimezone(UTC):%Y-%m-%d %H:%M}"
            if until
            else "until the customer replies"
        )
        return self._transition(agent, change, reason=reason)

    def wake(self) -> Activity | None:
        """A snooze that has run out goes back to its owner, or to the queue
        (run by the scheduler)."""

        def change(row: Conversation) -> dict[str, Any] | None:
            if row.status != self.Status.SNOOZED or (
                row.snoozed_until and row.snoozed_until > timezone.now()
            ):
                return None
            if row.assignee_id is not None:
                return {"status": self.Status.HUMAN}
            return {"status": self.Status.ESCALATED}

        return self._transition(None, change, reason="snooze ended")

    def auto_assign(self, agent: Any) -> Activity | None:
        """The round-robin gives a waiting conversation to ``agent``; ``None`` if
        someone took it meanwhile."""

        def change(row: Conversation) -> dict[str, Any] | None:
            if row.status != self.Status.ESCALATED:
                return None
            return {"status": self.Status.HUMAN, "assignee": agent}

        with transaction.atomic():
            activity = self._transition(None, change, reason="auto-assigned")
            if activity is not None:
                self._tell_assignee(agent, activity, f"Auto-assign gave you {self}")
        return activity

    def _tell_assignee(self, agent: Any, activity: Activity, text: str) -> None:
        """Ring the bell of the agent an assignment (``activity``) gave this to."""
        Notification.send(
            [agent],
            kind=Notification.Kind.ASSIGNED,
            conversation=self,
            key=str(activity.pk),
            text=text,
        )

    def resolve(self, agent: Any) -> Activity | None:
        def change(row: Conversation) -> dict[str, Any] | None:
            if row.status == self.Status.RESOLVED:
                return None
            return {"status": self.Status.RESOLVED, "is_locked": False}

        return self._transition(agent, change)

    def _transition(
        self,
        user: Any,
        change: Any,
        *,
        reason: str = "",
    ) -> Activity | None:
        with transaction.atomic():
            # No select_related: a join in a locking read that waited gives
            # the re-checked row with the joined user as it was before the
            # wait (PostgreSQL), so the owner is read after the lock.
            row = Conversation.objects.select_for_update(no_key=True).get(pk=self.pk)
            updates = change(row)
            if updates is None:
                self._copy_state(row)
                return None
            previous = row.status
            bot_was_paused = row.is_bot_paused
            for name, value in updates.items():
                setattr(row, name, value)
            if row.status == self.Status.ESCALATED:
                if previous != self.Status.ESCALATED:
                    row.escalated_at = timezone.now()
                    row.escalation_reason = reason[:255]
            else:
                row.escalated_at = None
            if row.status != self.Status.SNOOZED:
                row.snoozed_until = None
            if row.status not in (self.Status.HUMAN, self.Status.SNOOZED):
                row.is_locked = False
            row.save()
            activity = row._record_status(previous, user, reason=reason)
            if bot_was_paused != row.is_bot_paused:
                outbox.enqueue("sync_send_policy", row.pk)
            publish_on_commit([activity])
            if row.status == self.Status.ESCALATED and settings.INBOX_AUTO_ASSIGN:
                outbox.enqueue("auto_assign_escalations")
        self._copy_state(row)
        return activity

    def _copy_state(self, row: Conversation) -> None:
        for name in (
            "status", "assignee_id", "is_locked", "escalated_at",
            "escalation_reason", "snoozed_until", "is_active", "updated_at",
        ):  # fmt: skip
            setattr(self, name, getattr(row, name))
        if Conversation._meta.get_field("assignee").is_cached(row):
            self.assignee = row.assignee

    def _record_status(self, previous: str, user: Any, *, reason: str = "") -> Activity:
        """The audit row for a status or owner change. Needs the row lock."""
        return Activity.objects.create(
            conversation=self,
            kind=Activity.Kind.STATUS_CHANGED,
            user=user if user is not None and user.pk else None,
            data={
                "from": previous,
                "to": self.status,
                "by": user.get_username() if user is not None else "system",
                "owner": self.assignee.get_username() if self.assignee else None,
                "reason": reason,
            },
        )

    def reply(
        self,
        agent: Any,
        text: str,
        *,
        note: bool = False,
        attachments: list[dict[str, Any]] | None = None,
    ) -> Message:
        """Write an agent's reply (queued for the gateway) or an internal note.

        Replying to a conversation the bot or the queue has takes it over
        first, so the bot stops answering; one another agent owns raises
        ``AlreadyTaken``. Notes are never sent and change no owner.
        """
        owner = self.status == self.Status.HUMAN and self.assignee_id == agent.pk
        if not note and not owner:
            self.take_over(agent)
        with transaction.atomic():
            row = Conversation.objects.select_for_update(no_key=True).get(pk=self.pk)
            if not note and row.owned_by_other(agent):
                raise AlreadyTaken(row.assignee)
            if not note and row.status != self.Status.HUMAN:
                # Handed back or resolved since this page was drawn.
                raise TransitionError(
                    gettext_noop("it changed meanwhile; take it over again")
                )
            if row.assignee_id == agent.pk:
                row.assignee = agent  # the live row names the owner: no query for it
            message = row._write_outbound(
                send=not note,
                kind=Message.Kind.NOTE if note else Message.Kind.TEXT,
                author=Message.Author.AGENT,
                sender=agent.get_username(),
                sent_by=agent,
                text=text,
                attachments=attachments or [],
            )
            if note:
                row.notify_mentions(agent, message)
        self._copy_state(row)
        return message

    def notify_mentions(self, author: Any, note: Message) -> None:
        """Tell each staff member @named in an internal note."""
        from core.roles import staff_users

        names = {name.rstrip(".") for name in MENTION.findall(note.text)}
        if not names:
            return
        named = staff_users().filter(username__in=names).exclude(pk=author.pk)
        Notification.send(
            list(named),
            kind=Notification.Kind.MENTION,
            conversation=self,
            key=str(note.pk),
            text=f"{author.get_username()} mentioned you: {note.text[:200]}",
        )

    def auto_reply(
        self, text: str, *, sender: str, metadata: dict[str, Any]
    ) -> Message:
        """Queue a reply written by an automation; it changes no owner.

        Sent like an agent's reply (same states, same idempotency key), so
        the customer gets it once. ``metadata`` says which rule wrote it: the
        loop guard of whoever reads the thread later.
        """
        with transaction.atomic():
            row = Conversation.objects.select_for_update(no_key=True).get(pk=self.pk)
            message = row._write_outbound(
                send=True,
                author=Message.Author.AUTOMATION,
                sender=sender[:255],
                text=text,
                metadata=metadata,
            )
        self._copy_state(row)
        return message

    def _write_outbound(self, *, send: bool, **fields: Any) -> Message:
        """Store a message from our side under a fresh ``inbox-…`` id.

        Needs the row lock. ``send``: queued for the gateway (the id is its
        Idempotency-Key), else kept among staff (a note). Published, and
        handed to the sender, after commit.
        """
        message = self.add_message(
            fresh_id=True,
            gateway_message_id=f"inbox-{uuid.uuid4().hex}",
            direction=Message.Direction.OUTBOUND,
            delivery_state=Message.DeliveryState.QUEUED
            if send
            else Message.DeliveryState.RECEIVED,
            next_attempt_at=timezone.now() if send else None,
            **fields,
        )
        assert message is not None  # a fresh uuid is never a duplicate
        activity = message.activity
        publish_on_commit([activity])
        if send:
            reply_queued_on_commit(message.pk)
        return message

    def record_event(self, summary: str, **data: Any) -> Activity:
        """A line in the timeline for something done elsewhere ("ticket #4 opened").

        Published live after commit like every other change.
        """
        with transaction.atomic():
            activity = Activity.objects.create(
                conversation=self,
                kind=Activity.Kind.EVENT,
                data={"summary": summary[:500], **data},
            )
            publish_on_commit([activity])
        return activity

    @property
    def escalation_reason_shown(self) -> str:
        """Why it waits, in the active language; an automation's by its
        trigger's name, never the pattern older rows stored with it."""
        return _reason(self.escalation_reason)

    @property
    def is_bot_paused(self) -> bool:
        """The gateway is told to stop the agent while a human owns the chat
        (a snooze keeps the owner), and while it waits in the escalation
        queue unless ``INBOX_PAUSE_BOT_WHILE_QUEUED`` is off. The same rule
        as a query: ``bot_paused_q``."""
        return (
            self.status == self.Status.HUMAN
            or (self.status == self.Status.SNOOZED and self.assignee_id is not None)
            or (
                self.status == self.Status.ESCALATED
                and settings.INBOX_PAUSE_BOT_WHILE_QUEUED
            )
        )

    @classmethod
    def bot_paused_q(cls) -> Q:
        """``is_bot_paused`` as a filter."""
        held = Q(status=cls.Status.HUMAN) | Q(
            status=cls.Status.SNOOZED, assignee__isnull=False
        )
        if settings.INBOX_PAUSE_BOT_WHILE_QUEUED:
            held |= Q(status=cls.Status.ESCALATED)
        return held

    @property
    def holder(self) -> str:
        """Who the gateway is told holds the chat: its owner, or the queue."""
        if self.assignee_id is not None and self.assignee is not None:
            return self.assignee.get_username()
        return "escalation queue"

    @property
    def pause_mode(self) -> str:
        """How the gateway stops the bot here while a human owns it: ``plugin``
        (no model call), ``deny`` (it still drafts, nothing is sent) or
        ``none`` (webchat without the plugin: it cannot be stopped)."""
        if GatewayLink.plugin_active():
            return "plugin"
        if channel_of(self.session_id) in INTERNAL_CHANNELS:
            return "none"
        return "deny"

    def owned_by_other(self, user: Any) -> bool:
        return self.assignee_id is not None and self.assignee_id != user.pk

    def why_not(self, user: Any) -> str:
        """Why ``user`` may not change this conversation, or ``""`` when they
        may: the one rule the pages and the API apply.

        Leads and admins may act on anything; an agent not on a conversation
        another agent owns (taken over, or locked to them by a lead).
        """
        from core.roles import Role, role_of

        if role_of(user) >= Role.LEAD or not self.owned_by_other(user):
            return ""
        owner = self.assignee.get_username() if self.assignee else "?"
        if self.is_locked:
            return gettext("a lead assigned this conversation to %(owner)s") % {
                "owner": owner
            }
        return gettext("already taken by %(name)s") % {"name": owner}

    @property
    def tags(self) -> list[str]:
        return list(self.metadata.get("tags") or [])

    def add_tag(self, tag: str, *, by: str = "") -> bool:
        """Tag the conversation (once); ``False`` if it already was."""
        with transaction.atomic():
            row = Conversation.objects.select_for_update(no_key=True).get(pk=self.pk)
            if tag in row.tags:
                return False
            row.metadata = {**row.metadata, "tags": [*row.tags, tag]}
            row.save(update_fields=["metadata", "updated_at"])
            self.metadata = row.metadata
            summary = f"Tagged “{tag}”" + (f" by {by}" if by else "")
            # ``by`` too: the timeline words it in each reader's language.
            self.record_event(summary, tag=tag, by=by)
        return True

    def record_error(self, text: str) -> Activity:
        """Remember the gateway's latest error here. Needs the row lock."""
        self.last_error = text
        self.last_error_at = timezone.now()
        self.save(update_fields=["last_error", "last_error_at", "updated_at"])
        return Activity.objects.create(
            conversation=self, kind=Activity.Kind.ERROR_RECORDED, data={"error": text}
        )

    def unread_for(self, seen: int) -> int:
        return max(self.inbound_count - seen, 0)


class Message(models.Model):
    class Direction(models.TextChoices):
        INBOUND = "inbound", _("From customer")
        OUTBOUND = "outbound", _("To customer")

    class Kind(models.TextChoices):
        TEXT = "text", _("Text")
        MEDIA = "media", _("Media")
        RESET = "reset", _("Session reset")
        ERROR = "error", _("Gateway error")
        NOTE = "note", _("Internal note")

    class DeliveryState(models.TextChoices):
        RECEIVED = "received", _("Received")
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending…")
        RETRYING = "retrying", _("Retrying")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")
        # A bot reply the gateway wrote while its send policy was "deny": the
        # customer never got it.
        SUPPRESSED = "suppressed", _("Suppressed draft")

    class Author(models.TextChoices):
        CUSTOMER = "customer", _("Customer")
        BOT = "bot", _("Bot")
        AGENT = "agent", _("Agent")
        AUTOMATION = "automation", _("Automation")
        SYSTEM = "system", _("System")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    # The platform's own id, unique only within its chat: the idempotency key
    # is (conversation, gateway_message_id).
    gateway_message_id = models.CharField(max_length=255)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.TEXT)
    author = models.CharField(
        max_length=10, choices=Author.choices, default=Author.CUSTOMER
    )
    sender = models.CharField(max_length=255, blank=True)
    text = models.TextField(blank=True)
    attachments = models.JSONField(default=list, blank=True)
    ai_model = models.CharField(max_length=128, blank=True)
    processing_time_ms = models.PositiveIntegerField(null=True, blank=True)
    tokens_used = models.PositiveIntegerField(null=True, blank=True)
    delivery_state = models.CharField(
        max_length=10, choices=DeliveryState.choices, default=DeliveryState.RECEIVED
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(
        null=True, blank=True, help_text="Gateway's timestamp"
    )
    # Replies written in the inbox: who wrote them and how sending went.
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    failure_reason = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    # Set by Conversation.add_message: the rows it wrote, for publishing.
    activity: Activity | None = None
    status_activity: Activity | None = None

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "gateway_message_id"],
                name="message_unique_per_conversation",
            )
        ]
        indexes = [
            models.Index(fields=["conversation", "id"], name="msg_thread_idx"),
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(delivery_state__in=["queued", "sending", "retrying"]),
                name="msg_outbox_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.gateway_message_id}: {self.preview}"

    IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp")

    @property
    def attachment_items(self) -> list[dict[str, Any]]:
        """Attachments for the thread: web URLs only (a ``javascript:`` or
        ``data:`` URL is shown as a name, never linked), images marked for a
        preview the browser loads itself."""
        items = []
        for raw in self.attachments if isinstance(self.attachments, list) else []:
            item = raw if isinstance(raw, dict) else {"url": str(raw)}
            url = str(item.get("url") or "")
            kind = str(item.get("type") or "")
            name = str(item.get("name") or "") or url.rsplit("/", 1)[-1][:80]
            safe = url.lower().startswith(("https://", "http://"))
            path = url.split("?", 1)[0].lower()
            image = safe and (
                kind in ("image/png", "image/jpeg", "image/gif", "image/webp")
                or (not kind and path.endswith(self.IMAGE_EXTENSIONS))
            )
            items.append(
                {
                    "url": url if safe else "",
                    "name": name or kind or "attachment",
                    "is_image": image,
                    "size": item.get("size"),
                }
            )
        return items

    @property
    def is_note(self) -> bool:
        return self.kind == self.Kind.NOTE

    @property
    def state_label(self) -> str:
        if self.delivery_state == self.DeliveryState.RETRYING:
            return gettext("retrying (%(n)s)…") % {"n": self.attempts}
        return self.get_delivery_state_display()

    # --- sending a reply: each step locks the row and is published live --------

    def mark_sending(self) -> bool:
        """Claim a queued or retrying reply for one attempt; ``False`` if it is done."""
        return self._set_state(
            self.DeliveryState.SENDING,
            allowed_from=(
                self.DeliveryState.QUEUED,
                self.DeliveryState.RETRYING,
                # A worker killed mid-send leaves it here; the retry resends
                # under the same idempotency key, so the gateway sends once.
                self.DeliveryState.SENDING,
            ),
            count_attempt=True,
            # When it was claimed: a send still here minutes later lost its
            # worker, and the scheduler hands it to another.
            next_attempt_at=timezone.now(),
        )

    def mark_sent(self, gateway_id: str = "") -> bool:
        extra = {"gateway_id": gateway_id} if gateway_id else {}
        return self._set_state(
            self.DeliveryState.SENT,
            allowed_from=(
                self.DeliveryState.QUEUED,
                self.DeliveryState.SENDING,
                self.DeliveryState.RETRYING,
                self.DeliveryState.FAILED,
            ),
            metadata=extra,
            clear_failure=True,
        )

    def remember_gateway_id(self, gateway_id: str, *, key: str = "gateway_id") -> None:
        """Note an id the gateway gave this reply: ``gateway_id`` the channel's
        message id from the send, ``transcript_id`` the transcript row's."""
        with transaction.atomic():
            row = Message.objects.select_for_update().get(pk=self.pk)
            row.metadata = {**row.metadata, key: gateway_id}
            row.save(update_fields=["metadata"])
        self.metadata = row.metadata

    def mark_delivered(self) -> bool:
        """The gateway confirmed the customer's device has it (a status webhook)."""
        return self._set_state(
            self.DeliveryState.DELIVERED,
            allowed_from=(
                self.DeliveryState.QUEUED,
                self.DeliveryState.SENDING,
                self.DeliveryState.RETRYING,
                self.DeliveryState.SENT,
                self.DeliveryState.FAILED,
            ),
            clear_failure=True,
        )

    def mark_retrying(self, reason: str, next_attempt_at: datetime) -> bool:
        return self._set_state(
            self.DeliveryState.RETRYING,
            allowed_from=(self.DeliveryState.SENDING,),
            reason=reason,
            next_attempt_at=next_attempt_at,
        )

    def mark_failed(self, reason: str) -> bool:
        return self._set_state(
            self.DeliveryState.FAILED,
            allowed_from=(
                self.DeliveryState.QUEUED,
                self.DeliveryState.SENDING,
                self.DeliveryState.RETRYING,
            ),
            reason=reason,
        )

    def mark_undelivered(self, reason: str) -> bool:
        """The gateway's receipt says a reply it accepted never arrived.

        Only from "sent": a receipt is about a send the gateway accepted, and a
        replayed one (the hex signature has no timestamp) must not move a
        delivered reply, or one being retried, back to failed.
        """
        return self._set_state(
            self.DeliveryState.FAILED,
            allowed_from=(self.DeliveryState.SENT,),
            reason=reason,
        )

    def requeue(self) -> bool:
        """The "Retry" button: a failed reply gets a fresh set of attempts."""
        return self._set_state(
            self.DeliveryState.QUEUED,
            allowed_from=(self.DeliveryState.FAILED,),
            reset_attempts=True,
            next_attempt_at=timezone.now(),
        )

    def _set_state(
        self,
        state: str,
        *,
        allowed_from: tuple[str, ...],
        reason: str = "",
        next_attempt_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
        count_attempt: bool = False,
        reset_attempts: bool = False,
        clear_failure: bool = False,
    ) -> bool:
        with transaction.atomic():
            row = Message.objects.select_for_update().get(pk=self.pk)
            if row.delivery_state not in allowed_from:
                self._copy_delivery(row)
                return False
            row.delivery_state = state
            if reset_attempts:
                row.attempts = 0
            if count_attempt:
                row.attempts += 1
            if reason:
                row.failure_reason = reason[:2000]
            elif clear_failure:
                row.failure_reason = ""
            row.next_attempt_at = next_attempt_at
            if state == self.DeliveryState.DELIVERED:
                row.delivered_at = timezone.now()
            if state == self.DeliveryState.SENT:
                row.sent_at = timezone.now()
            if metadata:
                row.metadata = {**row.metadata, **metadata}
            row.save(
                update_fields=[
                    "delivery_state", "attempts", "failure_reason", "next_attempt_at",
                    "delivered_at", "sent_at", "metadata",
                ]
            )  # fmt: skip
            activity = Activity.objects.create(
                conversation_id=row.conversation_id,
                kind=Activity.Kind.MESSAGE_UPDATED,
                message=row,
                data={"state": state},
            )
            if Message.conversation.is_cached(self):
                # A delivery state renders nothing of the conversation: spare
                # the publisher a query for it.
                activity.conversation = self.conversation
            publish_on_commit([activity])
        self._copy_delivery(row)
        return True

    def _copy_delivery(self, row: Message) -> None:
        for name in (
            "delivery_state", "attempts", "failure_reason", "next_attempt_at",
            "delivered_at", "sent_at", "metadata",
        ):  # fmt: skip
            setattr(self, name, getattr(row, name))

    @property
    def preview(self) -> str:
        if self.kind == self.Kind.MEDIA and not self.text:
            return "📎 attachment"
        text = " ".join(self.text.split())
        return text[: PREVIEW_CHARS - 1] + "…" if len(text) > PREVIEW_CHARS else text

    @property
    def is_from_customer(self) -> bool:
        return self.direction == self.Direction.INBOUND


class ActivityQuerySet(models.QuerySet["Activity"]):
    def after(self, seq: int) -> ActivityQuerySet:
        return self.filter(pk__gt=seq).order_by("pk")


class ConversationSearch(models.Model):
    """A conversation's words, for search (PostgreSQL only).

    The distinct lexemes of all its messages, as one ``tsvector`` with a GIN
    index, kept up by ``Conversation.add_message``. Search asks this one row
    per conversation instead of every message, so a common word whose
    matches all sit in old conversations costs a walk of stored vectors, not
    a ``to_tsvector`` per message (measured: 2.1 s, now bounded by the
    conversations table). Past ``MAX_LEXEMES`` a conversation's new words
    are not added (the message-level index still has them).
    """

    MAX_LEXEMES = 50_000

    conversation = models.OneToOneField(
        Conversation, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    document = SearchVectorField(null=True)

    def __str__(self) -> str:
        return f"words of conversation {self.conversation_id}"

    @classmethod
    def add_text(cls, conversation_id: int, text: str) -> None:
        """Add ``text``'s words to the conversation's document (one upsert)."""
        if not text or connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO inbox_conversationsearch AS s (conversation_id, document)"
                " VALUES (%s, strip(to_tsvector('simple'::regconfig, %s)))"
                " ON CONFLICT (conversation_id) DO UPDATE SET document = CASE"
                " WHEN length(s.document) >= %s THEN s.document"
                " ELSE strip(s.document || EXCLUDED.document) END",
                [conversation_id, text, cls.MAX_LEXEMES],
            )


class Activity(models.Model):
    """One row per change the inbox shows; its id is the live stream's sequence."""

    class Kind(models.TextChoices):
        CONVERSATION_CREATED = "conversation_created", "Conversation created"
        MESSAGE_ADDED = "message_added", "Message added"
        STATUS_CHANGED = "status_changed", "Status changed"
        ERROR_RECORDED = "error_recorded", "Error recorded"
        MESSAGE_UPDATED = "message_updated", "Message updated"
        EVENT = "event", "Event"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="activities"
    )
    kind = models.CharField(max_length=24, choices=Kind.choices)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE
    )
    # Who made a status change (empty for the gateway and the scheduler).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ActivityQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "activities"
        indexes = [
            models.Index(fields=["conversation", "id"], name="activity_conv_idx")
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind}"

    @property
    def summary(self) -> str:
        """A status change in words, for the conversation's timeline, in the
        active language: built from ``data`` when it is read, so rows stored
        before a translation existed read in the agent's language too."""
        data = self.data
        if self.kind == self.Kind.EVENT:
            return _event_summary(data)
        by, to, owner = data.get("by") or "system", data.get("to"), data.get("owner")
        if by == "system":
            by = gettext("system")
        words = {"by": by, "owner": owner, "reason": _reason(data.get("reason"))}
        Status = Conversation.Status
        if to == Status.HUMAN:
            if data.get("from") == Status.SNOOZED and data.get("by") == "system":
                return gettext("snooze ended, back to %(owner)s") % words
            if data.get("reason") == "auto-assigned":
                return gettext("auto-assigned to %(owner)s") % words
            if owner and owner != by:
                if words["reason"]:
                    return (
                        gettext("%(by)s assigned it to %(owner)s (%(reason)s)") % words
                    )
                return gettext("%(by)s assigned it to %(owner)s") % words
            if data.get("from") == Status.RESOLVED:
                if words["reason"]:
                    return gettext("reopened for %(owner)s (%(reason)s)") % words
                return gettext("reopened for %(owner)s") % words
            return gettext("%(by)s took over") % words
        if to == Status.ESCALATED:
            if words["reason"]:
                return gettext("escalated to the queue by %(by)s (%(reason)s)") % words
            return gettext("escalated to the queue by %(by)s") % words
        if to == Status.BOT:
            if data.get("from") == Status.RESOLVED:
                if words["reason"]:
                    return gettext("reopened for the bot (%(reason)s)") % words
                return gettext("reopened for the bot") % words
            return gettext("%(by)s handed it back to the bot") % words
        if to == Status.SNOOZED:
            if words["reason"]:
                return gettext("%(by)s snoozed it (%(reason)s)") % words
            return gettext("%(by)s snoozed it") % words
        if to == Status.RESOLVED:
            if words["reason"]:
                return gettext("resolved by %(by)s (%(reason)s)") % words
            return gettext("resolved by %(by)s") % words
        reason = f" ({words['reason']})" if words["reason"] else ""
        return f"{by}: {data.get('from')} → {to}{reason}"

    @property
    def summary_html(self) -> SafeString:
        """``summary`` for the timeline, a snooze's end as ``<time data-stamp>``:
        a live line is rendered once for every agent, and the browser puts
        that time in each one's zone (static/core/clock.js)."""
        text = conditional_escape(self.summary)
        found = SNOOZE_UNTIL.fullmatch(str(self.data.get("reason") or ""))
        if self.kind != self.Kind.STATUS_CHANGED or not found:
            return text
        until = _utc(found.group(1))
        shown = stamp(until)
        tag = format_html(
            '<time datetime="{}" data-stamp>{}</time>', until.isoformat(), shown
        )
        return mark_safe(text.replace(conditional_escape(shown), tag, 1))


# Reasons the inbox itself stores with a status change (free text from the
# gateway, the bot or an automation is shown as it came).
SNOOZE_UNTIL = re.compile(r"until (\d{4}-\d\d-\d\d \d\d:\d\d)")
ESCALATED_BY = re.compile(r"escalated by (.+)", re.DOTALL)


def _utc(text: str) -> datetime:
    """A snooze's end as ``Conversation.snooze`` words it (UTC, to the minute)."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


# An automation's (automations.actions._escalate): the trigger's name; before
# December also the pattern that matched, which agents are never shown.
BY_TRIGGER = re.compile(r"trigger “(.+?)”(?:: .*)?", re.DOTALL)


def _reason(reason: Any) -> str:
    """A stored English reason in the active language."""
    reason = str(reason or "")
    if reason == "until the customer replies":
        return gettext("until the customer replies")
    if reason == "snooze ended":
        return gettext("snooze ended")
    if reason == "auto-assigned":
        return gettext("auto-assigned")
    if found := SNOOZE_UNTIL.fullmatch(reason):
        return gettext("until %(time)s") % {"time": stamp(_utc(found.group(1)))}
    if found := ESCALATED_BY.fullmatch(reason):
        return gettext("escalated by %(name)s") % {"name": found.group(1)}
    if found := BY_TRIGGER.fullmatch(reason):
        return gettext("trigger “%(name)s”") % {"name": found.group(1)}
    return reason


def _event_summary(data: dict[str, Any]) -> str:
    """A timeline event in the active language when the inbox wrote it (a tag
    added with its author stored), else the text it was stored with."""
    stored = str(data.get("summary", ""))
    tag = data.get("tag")
    if isinstance(tag, str) and "by" in data and stored.startswith("Tagged “"):
        if data["by"]:
            return gettext("Tagged “%(tag)s” by %(by)s") % data
        return gettext("Tagged “%(tag)s”") % data
    if {"merged", "gone", "keep", "by"} <= data.keys():
        return gettext("Merged contact “%(gone)s” into “%(keep)s” by %(by)s") % data
    return stored


MENTION = re.compile(r"(?<![\w@])@([\w.+-]{1,150})")


class NotificationQuerySet(models.QuerySet["Notification"]):
    def unread(self) -> NotificationQuerySet:
        return self.filter(read_at__isnull=True)


class Notification(models.Model):
    """Something one staff member should see: the bell's list.

    At most one per (user, kind, conversation, key): the SLA sweep and a
    redelivered job can run twice and still notify once. ``key`` tells
    occasions apart (the escalation's start, the note's id).
    """

    class Kind(models.TextChoices):
        ASSIGNED = "assigned", _("Assigned to you")
        MENTION = "mention", _("Mentioned you")
        SLA = "sla", _("Waiting past the SLA")
        MONITOR = "monitor", _("Website monitor")
        OPERATIONS = "operations", _("Operations")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # None for what is not about a conversation (a monitor's alert): ``link``
    # then says where to look.
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    link = models.CharField(max_length=300, blank=True)
    key = models.CharField(max_length=64)
    text = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "kind", "conversation", "key"],
                name="notification_once",
            ),
            # NULLs are distinct in a unique constraint: this one covers them.
            models.UniqueConstraint(
                fields=["user", "kind", "key"],
                condition=Q(conversation__isnull=True),
                name="notification_once_without_conversation",
            ),
        ]
        indexes = [
            models.Index(
                fields=["user", "-created_at"],
                condition=Q(read_at__isnull=True),
                name="notification_unread_idx",
            ),
            models.Index(fields=["user", "-created_at"], name="notification_user_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.text}"

    @classmethod
    def send(
        cls,
        users: list[Any],
        *,
        kind: str,
        conversation: Conversation | None = None,
        key: str,
        text: str,
        link: str = "",
    ) -> None:
        """Notify ``users`` (once per occasion); the bells ring after commit.

        Without a conversation, ``link`` (a path in this site) is where the
        entry leads."""
        rows = [
            cls(
                user=u,
                kind=kind,
                conversation=conversation,
                link=link[:300],
                key=key,
                text=text[:300],
            )
            for u in users
        ]
        if not rows:
            return
        cls.objects.bulk_create(rows, ignore_conflicts=True)
        bell_on_commit([u.pk for u in users], kind)

    @classmethod
    def mark_read(cls, user: Any, conversation_id: int | None = None) -> int:
        unread = cls.objects.unread().filter(user=user)
        if conversation_id is not None:
            unread = unread.filter(conversation_id=conversation_id)
        done = unread.update(read_at=timezone.now())
        if done:
            bell_on_commit([user.pk], "")
        return done


class SavedView(models.Model):
    """An agent's named list filters ("my escalated WhatsApp")."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views"
    )
    name = models.CharField(max_length=60)
    # The list's query string (platform=whatsapp&status=escalated&owner=mine).
    query = models.CharField(max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="savedview_unique")
        ]

    def __str__(self) -> str:
        return self.name


class ReadMark(models.Model):
    """How many inbound messages of a conversation one agent has seen."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE)
    inbound_seen = models.PositiveIntegerField(default=0)
    seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "conversation"], name="readmark_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} saw {self.inbound_seen} of {self.conversation}"

    @classmethod
    def mark_seen(
        cls,
        user: Any,
        conversation: Conversation,
        *,
        unless_changed_since: datetime | None = None,
    ) -> None:
        """Everything inbound so far is read. ``unless_changed_since``: a
        deferred mark (the live tab's) that an explicit mark since then,
        such as "mark unread", overrides."""
        if unless_changed_since is not None and (
            cls.objects.filter(
                user=user,
                conversation=conversation,
                seen_at__gte=unless_changed_since,
            ).exists()
        ):
            return
        cls.objects.update_or_create(
            user=user,
            conversation=conversation,
            defaults={"inbound_seen": conversation.inbound_count},
        )

    @classmethod
    def mark_unread(cls, user: Any, conversation: Conversation) -> int:
        """Show the newest customer message as unread again; the new count."""
        seen = max(conversation.inbound_count - 1, 0)
        cls.objects.update_or_create(
            user=user, conversation=conversation, defaults={"inbound_seen": seen}
        )
        return conversation.inbound_count - seen


# How far back a text search of deliveries reads bodies and reasons (no index
# covers them): the newest rows a lead looks for, never the whole log.
DELIVERY_SEARCH_DAYS = 7
# WebhookDelivery.error of a message an ops app took (inbox.ingest).
OPS_COMMAND_REASON = "ops command"


BODY_HEAD_CHARS = 4096
# No nested quantifiers: linear on any text.
SESSION_IN_BODY = re.compile(r'"session(?:Id|Key)"\s*:\s*"([^"\\]{1,255})"')
# The event a body names, for the list when the delivery recorded none (a body
# refused before it was read: shown as the body's claim, never trusted).
EVENT_IN_BODY = re.compile(r'"event"\s*:\s*"([^"\\]{1,64})"')


class WebhookDeliveryQuerySet(models.QuerySet["WebhookDelivery"]):
    def with_body_head(self) -> WebhookDeliveryQuerySet:
        """Rows without their bodies (up to a megabyte each), but the start
        of each, for ``session_key``."""
        return self.defer("raw_body").annotate(
            body_head=Substr("raw_body", 1, BODY_HEAD_CHARS)
        )

    def filtered(
        self,
        *,
        outcome: str = "",
        event_type: str = "",
        scheme: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        query: str = "",
        in_bodies: bool = True,
    ) -> WebhookDeliveryQuerySet:
        """The deliveries page's filters; ``until`` is exclusive.

        A search matches a session key, webhook id or event exactly (indexed),
        or text in the reason or body of the rows received in the window (the
        last ``DELIVERY_SEARCH_DAYS`` days without ``since``). Without
        ``in_bodies`` (a user who may not see personal data) bodies are not
        searched: a hit would confirm a customer's address or number.
        """
        rows = self
        if outcome:
            rows = rows.filter(outcome=outcome)
        if event_type:
            rows = rows.filter(event_type=event_type)
        if scheme:
            rows = rows.filter(signature_scheme=scheme)
        if since:
            rows = rows.filter(received_at__gte=since)
        if until:
            rows = rows.filter(received_at__lt=until)
        if query:
            recent = since or timezone.now() - timedelta(days=DELIVERY_SEARCH_DAYS)
            text = Q(error__icontains=query)
            if in_bodies:
                text |= Q(raw_body__icontains=query)
            rows = rows.filter(
                Q(webhook_id=query)
                | Q(conversation__session_id=query)
                | Q(event_type=query)
                | Q(received_at__gte=recent) & text
            )
        return rows


class WebhookDelivery(models.Model):
    """Every webhook POST we answered, accepted or not (the seed's WebhookLog),
    and every replay of one (``inbox.webhooks.replay``)."""

    class Outcome(models.TextChoices):
        STORED = "stored", "Stored"
        DUPLICATE = "duplicate", "Duplicate"
        IGNORED = "ignored", "Ignored"
        REJECTED = "rejected", "Rejected"

    class Scheme(models.TextChoices):
        OPENCLAW = "openclaw-hmac", "X-OpenClaw-Signature (hex HMAC-SHA256)"
        STANDARD = "standard-webhooks", "Standard Webhooks (v1)"
        NONE = "none", "None / invalid"

    webhook_id = models.CharField(max_length=255, blank=True)
    event_type = models.CharField(max_length=64, blank=True)
    raw_body = models.TextField(blank=True)
    body_size = models.PositiveIntegerField(default=0)
    body_truncated = models.BooleanField(default=False)
    # Masked before it was saved (OPENCLAW_MASK_STORED_BODIES): not the original.
    body_masked = models.BooleanField(default=False)
    # Emptied by the retention job (inbox.tasks.prune_webhook_deliveries).
    body_purged_at = models.DateTimeField(null=True, blank=True)
    signature_scheme = models.CharField(
        max_length=20, choices=Scheme.choices, default=Scheme.NONE
    )
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    status_code = models.PositiveSmallIntegerField()
    error = models.TextField(blank=True)
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL
    )
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    # A replay is a row of its own (the audit: who, when, what came of it),
    # pointing at the delivery whose body it ran again; it keeps no body.
    replay_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replays",
    )
    replayed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["-received_at"], name="delivery_received_idx"),
            models.Index(
                fields=["outcome", "-received_at"], name="delivery_outcome_idx"
            ),
            models.Index(fields=["webhook_id"], name="delivery_webhook_id_idx"),
        ]

    def __str__(self) -> str:
        stamp = f"{self.received_at:%Y-%m-%d %H:%M:%S}"
        return f"{self.event_type or '?'} {self.outcome} @ {stamp}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if (
            settings.OPENCLAW_MASK_STORED_BODIES
            and self.raw_body
            and not self.body_masked
        ):
            self.raw_body = masked_body(self.raw_body)
            self.body_masked = True
        super().save(*args, **kwargs)

    @property
    def session_key(self) -> str:
        """The conversation's session, or the one the body names (a rejected
        or ignored delivery has no conversation). Read from the body's start
        only: ``body_head`` when the list annotated it (``with_body_head``)."""
        if self.conversation_id is not None:
            return self.conversation.session_id  # type: ignore[union-attr]
        found = SESSION_IN_BODY.search(self._body_start)
        return found.group(1) if found else ""

    @property
    def event_in_body(self) -> str:
        """The event the body names when none was recorded (it was refused
        before it was read), from its start only, like ``session_key``."""
        if self.event_type:
            return self.event_type
        found = EVENT_IN_BODY.search(self._body_start)
        return found.group(1) if found else ""

    @property
    def _body_start(self) -> str:
        """The body's first ``BODY_HEAD_CHARS``: ``body_head`` when the list
        annotated it (``with_body_head``), so the whole body is never read."""
        head = getattr(self, "body_head", None)
        return self.raw_body[:BODY_HEAD_CHARS] if head is None else head

    @property
    def is_unsigned(self) -> bool:
        """No signature verified its body: replaying it trusts its sender."""
        return self.signature_scheme == self.Scheme.NONE

    @property
    def is_ops_command(self) -> bool:
        return self.error == OPS_COMMAND_REASON

    def replay_refusal(self) -> str:
        """Why this delivery's body cannot be run again ("" if it can)."""
        if self.replay_of_id is not None:
            return gettext("This is a replay; replay the original delivery.")
        if self.body_purged_at is not None:
            return gettext(
                "Its body was purged by the retention job: nothing left to replay."
            )
        if self.body_masked:
            return gettext(
                "Its body was masked when it was saved: it is no longer the "
                "original, so it cannot be replayed."
            )
        if not self.raw_body:
            return gettext("No body was kept for this delivery.")
        if self.body_truncated:
            return gettext(
                "Only the start of its body was kept: it cannot be replayed."
            )
        if self.error == OPS_COMMAND_REASON:
            return gettext("It was an ops command: commands are never run again.")
        return ""


def masked_body(raw: str) -> str:
    """A delivery's body with personal data masked (JSON stays JSON)."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return masking.mask(raw)
    masked = masking.mask_data(parsed, name_keys=masking.NAME_KEYS)
    return json.dumps(masked, ensure_ascii=False)


class GatewayLink(models.Model):
    """This inbox as one gateway knows it: its device identity and what the
    connector last saw. One row per gateway URL.

    ``device_seed`` is the Ed25519 private key (the gateway pairs the device
    by its public half) and ``device_token`` what pairing returned: both are
    credentials, kept out of ``__str__``, the admin and every log line.
    """

    url = models.CharField(max_length=500, unique=True)
    device_seed = models.CharField(max_length=64)
    device_token = models.CharField(max_length=500, blank=True)
    server_version = models.CharField(max_length=64, blank=True)
    has_plugin = models.BooleanField(
        default=False, help_text="The inbox plugin's methods were offered at connect."
    )
    # The plugin said its hook runs (``enforcing``): without the gateway's
    # allowConversationAccess for it, it is loaded but cannot stop the bot.
    plugin_enforcing = models.BooleanField(default=False)
    is_connected = models.BooleanField(default=False)
    connected_at = models.DateTimeField(null=True, blank=True)
    # The newest transcript record stored from this gateway: after a
    # disconnect, sessions that moved since (less a margin) are caught up.
    last_event_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.url

    @classmethod
    def for_url(cls, url: str) -> GatewayLink:
        """The row for ``url``, made with a fresh device key the first time."""
        link = cls.objects.filter(url=url).first()
        if link is not None:
            return link
        try:
            with transaction.atomic():
                return cls.objects.create(
                    url=url, device_seed=DeviceIdentity.generate().seed_b64
                )
        except IntegrityError:  # another process made it first
            return cls.objects.get(url=url)

    def identity(self) -> DeviceIdentity:
        return DeviceIdentity.from_seed(self.device_seed)

    @classmethod
    def note_enforcing(cls, url: str, enforcing: bool) -> None:
        """Remember what the plugin last said of its hook."""
        cls.objects.filter(url=url).exclude(plugin_enforcing=enforcing).update(
            plugin_enforcing=enforcing
        )
        cache.delete(f"gateway-plugin:{url}")

    @classmethod
    def plugin_active(cls) -> bool:
        """Whether the configured gateway runs the inbox plugin and it said it
        can stop the bot (cached a few seconds: every conversation header
        asks)."""
        url = ws_url(settings.OPENCLAW_GATEWAY_URL)
        if not url:
            return False
        return bool(
            cache.get_or_set(
                f"gateway-plugin:{url}",
                lambda: cls.objects.filter(
                    url=url, has_plugin=True, plugin_enforcing=True
                ).exists(),
                PLUGIN_CACHE_SECONDS,
            )
        )


class CannedResponse(models.Model):
    """A saved reply an agent inserts with ``/`` in the composer; leads edit them."""

    shortcut = models.SlugField(max_length=40, unique=True)
    title = models.CharField(max_length=120)
    text = models.TextField(
        help_text="Placeholders: {customer_name}, {agent_name}, {platform}"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["shortcut"]

    def __str__(self) -> str:
        return f"/{self.shortcut}"

    def render(self, conversation: Conversation, agent: Any) -> str:
        """The text with its placeholders filled; unknown ones are left as written.

        A plain name lookup, never ``str.format``: a lead's ``{0.__class__}``
        must not reach into Python objects.
        """
        values = {
            "customer_name": conversation.customer_name or "there",
            "agent_name": agent.get_full_name() or agent.get_username(),
            "platform": conversation.get_platform_display(),
        }
        return fill_placeholders(self.text, values)


PLACEHOLDER = re.compile(r"\{([a-z_]{1,32})\}")


def fill_placeholders(text: str, values: dict[str, str]) -> str:
    """``{name}`` replaced by ``values[name]``; unknown names are left as written."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


class AgentStatusQuerySet(models.QuerySet["AgentStatus"]):
    def online(self) -> AgentStatusQuerySet:
        return self.filter(last_seen_at__gte=timezone.now() - AgentStatus.ONLINE_FOR)


class AgentStatus(models.Model):
    """When an agent's inbox tab last checked in, for auto-assignment.

    Open tabs report every ~20 s (the live stream's sweep); an agent whose
    tabs are all closed drops out of the round-robin a minute later.
    """

    ONLINE_FOR = timedelta(seconds=60)
    REPORT_EVERY = timedelta(seconds=15)

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True
    )
    last_seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_assigned_at = models.DateTimeField(null=True, blank=True)

    objects = AgentStatusQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "agent statuses"

    def __str__(self) -> str:
        return f"{self.user} seen {self.last_seen_at:%H:%M:%S}"

    @classmethod
    def seen(cls, user: Any) -> None:
        """Record that ``user`` has a tab open; at most one write per 15 s."""
        now = timezone.now()
        updated = cls.objects.filter(
            user=user, last_seen_at__lt=now - cls.REPORT_EVERY
        ).update(last_seen_at=now)
        if not updated:
            cls.objects.get_or_create(user=user, defaults={"last_seen_at": now})
