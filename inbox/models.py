from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Exists, ExpressionWrapper, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

PREVIEW_CHARS = 160


class Platform(models.TextChoices):
    TELEGRAM = "telegram", "Telegram"
    WHATSAPP = "whatsapp", "WhatsApp"
    SLACK = "slack", "Slack"
    DISCORD = "discord", "Discord"
    SIGNAL = "signal", "Signal"
    IMESSAGE = "imessage", "iMessage"
    GOOGLECHAT = "googlechat", "Google Chat"
    MATRIX = "matrix", "Matrix"
    WEBCHAT = "webchat", "Web chat"
    OTHER = "other", "Other"

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
    ) -> ConversationQuerySet:
        qs = self
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

    def matching(self, query: str) -> ConversationQuerySet:
        """Conversations whose customer or any message matches ``query``.

        PostgreSQL uses the full-text index on message text; SQLite (embedded
        mode) falls back to a case-insensitive substring scan.
        """
        query = query.strip()[:200]
        if not query:
            return self
        name_match = Q(customer_name__icontains=query) | Q(customer_id__icontains=query)
        terms = _search_terms(query)
        if _is_postgres() and terms:
            from django.contrib.postgres.search import SearchQuery, SearchVector

            # Prefix terms: Korean attaches particles and endings to the word
            # ("환불해주세요"), so "환불" must match the start of a token.
            # The vector matches the GIN expression index from migration 0002.
            hits = Message.objects.annotate(
                search=SearchVector("text", config="simple")
            ).filter(
                search=SearchQuery(
                    " & ".join(f"{term}:*" for term in terms),
                    config="simple",
                    search_type="raw",
                )
            )
            # One bounded read through the GIN index tells a rare word from a
            # common one (PostgreSQL's estimate for a prefix does not).
            sample = list(
                hits.order_by().values_list("conversation_id", flat=True)[
                    : max(COMMON_MATCHES + 1, 0)
                ]
            )
            if len(sample) > COMMON_MATCHES:
                # A common word: walking conversations newest first finds a
                # page of matches within a few dozen rows, where collecting
                # every matching message first takes hundreds of ms (measured
                # at 1M messages). Names are left out of this path: OR-ing them
                # in makes PostgreSQL collect every match again.
                return self.filter(Exists(hits.filter(conversation=OuterRef("pk"))))
            # A rare word: its few conversations, as a list. Left as a
            # subquery, PostgreSQL may probe it row by row for each of 100k
            # conversations (measured: seconds).
            return self.filter(name_match | Q(pk__in=set(sample)))
        else:
            # Embedded mode (SQLite): every word as a case-insensitive substring.
            hits = Message.objects.all() if terms else Message.objects.none()
            for term in terms:
                hits = hits.filter(text__icontains=term)
        return self.filter(name_match | Q(pk__in=hits.values("conversation_id")))

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


def _search_terms(query: str) -> list[str]:
    """Words of ``query`` safe to put in a raw tsquery (its operators removed)."""
    cleaned = "".join(ch if ch.isalnum() else " " for ch in query.lower())
    return cleaned.split()[:8]


# Above this many matching messages, search walks the conversations newest
# first instead of collecting the matches.
COMMON_MATCHES = 2_000


def _is_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


class Conversation(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ESCALATED = "escalated", "Escalated"
        HUMAN = "human", "Human"
        RESOLVED = "resolved", "Resolved"

    session_id = models.CharField(max_length=255, unique=True)
    platform = models.CharField(
        max_length=16, choices=Platform.choices, default=Platform.OTHER
    )
    customer_id = models.CharField(max_length=255, blank=True)
    customer_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.OPEN
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_conversations",
    )
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
        ]

    def __str__(self) -> str:
        return self.customer_name or self.session_id

    @classmethod
    def lock_for_session(
        cls, session_id: str, *, defaults: dict[str, Any]
    ) -> tuple[Conversation, bool]:
        """Return the conversation for ``session_id``, row-locked, creating it if new.

        Call inside ``transaction.atomic()``. Most deliveries belong to a known
        conversation, so the locking read comes first. Concurrent first
        deliveries for one session race on the unique ``session_id``: the
        loser's insert fails in its savepoint and it locks the winner's row.
        """
        locked = cls.objects.select_for_update()
        conversation = locked.filter(session_id=session_id).first()
        if conversation is not None:
            return conversation, False
        try:
            with transaction.atomic():
                return cls.objects.create(session_id=session_id, **defaults), True
        except IntegrityError:
            return locked.get(session_id=session_id), False

    def add_message(self, **fields: Any) -> Message | None:
        """Store one message and its activity row; ``None`` if it is a duplicate.

        Needs the row lock from ``lock_for_session``. Uniqueness is the database's
        (conversation, gateway_message_id) constraint, so redeliveries that race
        or arrive a day later both end here as duplicates.
        """
        try:
            with transaction.atomic():
                message = Message.objects.create(conversation=self, **fields)
        except IntegrityError:
            return None
        # The row is locked, so its values in memory are current: update them
        # here and write them back, no re-read needed.
        now = message.created_at
        self.message_count += 1
        self.updated_at = now
        changed = ["message_count", "updated_at"]
        if message.kind != Message.Kind.RESET:
            self.last_message_at = now
            self.last_message_preview = message.preview
            changed += ["last_message_at", "last_message_preview"]
        if message.direction == Message.Direction.INBOUND:
            self.inbound_count += 1
            changed.append("inbound_count")
            if not self.is_active or self.status == self.Status.RESOLVED:
                # A customer writing again reopens the conversation.
                self.is_active = True
                self.status = self.Status.OPEN
                changed += ["is_active", "status"]
        self.save(update_fields=changed)
        message.activity = Activity.objects.create(
            conversation=self, kind=Activity.Kind.MESSAGE_ADDED, message=message
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
        self.save(update_fields=["is_active", "status", "updated_at"])
        return Activity.objects.create(
            conversation=self,
            kind=Activity.Kind.STATUS_CHANGED,
            data={"from": previous, "to": self.status, "by": "gateway"},
        )
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
        INBOUND = "inbound", "From customer"
        OUTBOUND = "outbound", "To customer"

    class Kind(models.TextChoices):
        TEXT = "text", "Text"
        MEDIA = "media", "Media"
        RESET = "reset", "Session reset"
        ERROR = "error", "Gateway error"

    class DeliveryState(models.TextChoices):
        RECEIVED = "received", "Received"
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    class Author(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        BOT = "bot", "Bot"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    # The platform's own id, unique only within its chat: the idempotency key
    # is (conversation, gateway_message_id).
    gateway_message_id = models.CharField(max_length=255)
    direction = models.CharField(max_length=8, choices=Direction.choices)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.TEXT)
    author = models.CharField(
        max_length=8, choices=Author.choices, default=Author.CUSTOMER
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
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "gateway_message_id"],
                name="message_unique_per_conversation",
            )
        ]
        indexes = [models.Index(fields=["conversation", "id"], name="msg_thread_idx")]

    def __str__(self) -> str:
        return f"{self.gateway_message_id}: {self.preview}"

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


class Activity(models.Model):
    """One row per change the inbox shows; its id is the live stream's sequence."""

    class Kind(models.TextChoices):
        CONVERSATION_CREATED = "conversation_created", "Conversation created"
        MESSAGE_ADDED = "message_added", "Message added"
        STATUS_CHANGED = "status_changed", "Status changed"
        ERROR_RECORDED = "error_recorded", "Error recorded"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="activities"
    )
    kind = models.CharField(max_length=24, choices=Kind.choices)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE
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
    def mark_seen(cls, user: Any, conversation: Conversation) -> None:
        cls.objects.update_or_create(
            user=user,
            conversation=conversation,
            defaults={"inbound_seen": conversation.inbound_count},
        )


class WebhookDelivery(models.Model):
    """Every webhook POST we answered, accepted or not (the seed's WebhookLog)."""

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

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["-received_at"], name="delivery_received_idx"),
            models.Index(
                fields=["outcome", "-received_at"], name="delivery_outcome_idx"
            ),
        ]

    def __str__(self) -> str:
        stamp = f"{self.received_at:%Y-%m-%d %H:%M:%S}"
        return f"{self.event_type or '?'} {self.outcome} @ {stamp}"
