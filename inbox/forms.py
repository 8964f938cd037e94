from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib.auth import get_user_model
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from inbox.models import Contact, Conversation, Platform, WebhookDelivery, wake_at


def encode_cursor(conversation: Conversation) -> str:
    """An opaque cursor holding the sort key of the last row shown."""
    raw = f"{conversation.last_message_at.isoformat()}|{conversation.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


class ConversationFilterForm(forms.Form):
    """The inbox list's filters, shared by the page, the live stream and the API.

    Filters are forgiving: a value that does not validate is dropped (the list
    shows more), it never turns the inbox into an error page.
    """

    platform = forms.ChoiceField(
        choices=[("", gettext_lazy("All platforms")), *Platform.choices]
    )
    status = forms.ChoiceField(
        choices=[("", gettext_lazy("Any status")), *Conversation.Status.choices]
    )
    owner = forms.ChoiceField(
        choices=[
            ("", gettext_lazy("Everyone's")),
            ("mine", gettext_lazy("Mine")),
            ("unassigned", gettext_lazy("Unassigned")),
        ]
    )
    q = forms.CharField(max_length=200)
    tag = forms.SlugField(max_length=40, allow_unicode=True)
    # A username: leads look at one agent's conversations.
    assignee = forms.CharField(max_length=150)
    # Last activity between these days (inclusive), in the agent's time zone.
    since = forms.DateField()
    until = forms.DateField()
    cursor = forms.CharField(max_length=200)

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        for field in self.fields.values():
            field.required = False

    def clean_cursor(self) -> tuple[datetime, int] | None:
        value = self.cleaned_data["cursor"]
        if not value:
            return None
        try:
            stamp, pk = base64.urlsafe_b64decode(value.encode()).decode().split("|")
            return datetime.fromisoformat(stamp), int(pk)
        except ValueError as exc:
            raise forms.ValidationError("not a cursor from this inbox") from exc

    @property
    def filters(self) -> dict[str, str]:
        """Keyword arguments for ``ConversationQuerySet.filtered``."""
        self.is_valid()
        data = self.cleaned_data
        return {
            "platform": data.get("platform") or "",
            "status": data.get("status") or "",
            "owner": data.get("owner") or "",
            "query": data.get("q") or "",
            "tag": (data.get("tag") or "").lower(),
            "assignee": data.get("assignee") or "",
            "since": data["since"].isoformat() if data.get("since") else "",
            "until": data["until"].isoformat() if data.get("until") else "",
        }

    def query_items(self) -> list[tuple[str, str]]:
        """The filters as the list's URL parameters (a saved view's query)."""
        f = self.filters
        return [
            ("q", f["query"]),
            ("platform", f["platform"]),
            ("status", f["status"]),
            ("owner", f["owner"]),
            ("tag", f["tag"]),
            ("assignee", f["assignee"]),
            ("since", f["since"]),
            ("until", f["until"]),
        ]

    @property
    def cursor_key(self) -> tuple[datetime, int] | None:
        self.is_valid()
        return self.cleaned_data.get("cursor")


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files from one input (Django's documented recipe)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data]
        return [single(data, initial)] if data else []


class ReplyForm(forms.Form):
    text = forms.CharField(strip=True, required=False)
    note = forms.BooleanField(required=False)
    attach = MultipleFileField(required=False)

    def clean_attach(self) -> list[Any]:
        from django.conf import settings

        files = self.cleaned_data.get("attach") or []
        most, cap = settings.INBOX_MAX_ATTACHMENTS, settings.INBOX_MAX_ATTACHMENT_BYTES
        if len(files) > most:
            raise forms.ValidationError(
                _("At most %(most)s files in one reply.") % {"most": most}
            )
        for upload in files:
            if upload.size > cap:
                raise forms.ValidationError(
                    _("%(name)s is %(size)s; files are at most %(cap)s.")
                    % {
                        "name": upload.name,
                        "size": filesizeformat(upload.size),
                        "cap": filesizeformat(cap),
                    }
                )
        return files

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("text") and not data.get("attach") and not self.errors:
            self.add_error("text", _("Write a reply or attach a file."))
        if data.get("note") and data.get("attach"):
            self.add_error(
                "attach", _("Notes cannot carry files; send them as a reply.")
            )
        return data

    def clean_text(self) -> str:
        from django.conf import settings

        text = self.cleaned_data["text"]
        cap = settings.INBOX_MAX_REPLY_CHARS
        if len(text) > cap:
            raise forms.ValidationError(
                _("A reply is at most %(cap)s characters; this one has %(n)s.")
                % {"cap": cap, "n": len(text)}
            )
        return text


class HandBackForm(forms.Form):
    to = forms.ChoiceField(
        choices=[("bot", gettext_lazy("Bot")), ("queue", gettext_lazy("Queue"))],
        initial="bot",
    )


SNOOZE_CHOICES = [
    ("30", gettext_lazy("30 minutes")),
    ("120", gettext_lazy("2 hours")),
    ("1440", gettext_lazy("Tomorrow")),
    ("reply", gettext_lazy("Until the customer replies")),
    ("custom", gettext_lazy("Until…")),
]
SNOOZE_LONGEST = timedelta(days=365)


class SnoozeForm(forms.Form):
    """For how long: a number of minutes, until the customer replies, or until
    a time the agent picks. The page's picker sends ``at``, a wall-clock time
    read in the agent's zone (their profile's, else the team's: the active
    one), the zone the page labels it with and shows every time in, whatever
    the browser's; ``until`` is ISO 8601 with its offset, for scripts."""

    minutes = forms.ChoiceField(choices=SNOOZE_CHOICES)
    at = forms.DateTimeField(
        required=False, input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
    )
    until = forms.DateTimeField(required=False, input_formats=["iso-8601"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.has_error("at"):  # the answer says the form's own errors
            raise forms.ValidationError(list(self.errors["at"]))
        if data.get("at") is not None:
            data["until"] = data["at"]
        choice, until = data.get("minutes"), data.get("until")
        if choice == "custom":
            now = timezone.now()
            if until is None:
                raise forms.ValidationError(_("pick the time to snooze until"))
            if until <= now:
                raise forms.ValidationError(_("pick a time in the future"))
            if until > now + SNOOZE_LONGEST:
                raise forms.ValidationError(_("pick a time within a year"))
        return data

    @property
    def until_time(self) -> datetime | None:
        """When it wakes; ``None``: when the customer replies."""
        choice = self.cleaned_data["minutes"]
        if choice == "custom":
            return wake_at(until=self.cleaned_data["until"])
        return wake_at(minutes=None if choice == "reply" else int(choice))


class AssignForm(forms.Form):
    agent = forms.ModelChoiceField(queryset=get_user_model().objects.none())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from core.roles import staff_users

        field = self.fields["agent"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = staff_users()


BULK_ACTIONS = [
    ("resolve", gettext_lazy("Resolve")),
    ("assign", gettext_lazy("Assign")),
    ("snooze", gettext_lazy("Snooze")),
    ("read", gettext_lazy("Mark read")),
    ("unread", gettext_lazy("Mark unread")),
    ("tag", gettext_lazy("Add tag")),
]
BULK_MOST = 200


class BulkForm(forms.Form):
    """Several conversations at once: what to do, and its one argument."""

    action = forms.ChoiceField(choices=BULK_ACTIONS)
    ids = forms.TypedMultipleChoiceField(coerce=int, choices=[])
    agent = forms.CharField(required=False)
    minutes = forms.ChoiceField(choices=SNOOZE_CHOICES[:4], required=False)
    tag = forms.SlugField(max_length=40, allow_unicode=True, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Any integer id: they are checked against the database, not a list.
        field = self.fields["ids"]
        assert isinstance(field, forms.TypedMultipleChoiceField)
        field.valid_value = lambda value: str(value).isdecimal()  # type: ignore[method-assign]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        action, ids = data.get("action"), data.get("ids") or []
        if len(ids) > BULK_MOST:
            raise forms.ValidationError(
                _("at most %(most)s conversations at once") % {"most": BULK_MOST}
            )
        if action == "assign" and not data.get("agent"):
            raise forms.ValidationError(_("pick an agent to assign"))
        if action == "snooze" and not data.get("minutes"):
            raise forms.ValidationError(_("pick how long to snooze"))
        if action == "tag" and not data.get("tag"):
            raise forms.ValidationError(_("type a tag (letters, digits, - or _)"))
        return data


TAGS_MOST = 20


def parse_tags(value: str) -> list[str]:
    """ "VIP, 환불 요청" → ["vip", "환불-요청"]: lower-case slugs, each once."""
    tags = []
    for piece in value.replace(";", ",").split(","):
        tag = slugify(piece.strip(), allow_unicode=True)[:40]
        if tag and tag not in tags:
            tags.append(tag)
    return tags


class ContactForm(forms.ModelForm):
    """What agents keep about a customer: a name, tags and notes."""

    tags = forms.CharField(
        required=False,
        max_length=1000,
        help_text=gettext_lazy("Comma-separated, e.g. vip, refund"),
    )

    class Meta:
        model = Contact
        fields = ["name", "notes"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 4})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial["tags"] = ", ".join(self.instance.tags)

    def clean_tags(self) -> list[str]:
        tags = parse_tags(self.cleaned_data["tags"])
        if len(tags) > TAGS_MOST:
            raise forms.ValidationError(
                _("at most %(most)s tags") % {"most": TAGS_MOST}
            )
        return tags

    def save(self, commit: bool = True) -> Contact:
        self.instance.tags = self.cleaned_data["tags"]
        return super().save(commit=commit)


class MergeForm(forms.Form):
    other = forms.IntegerField(min_value=1)


class SavedViewForm(forms.Form):
    name = forms.CharField(max_length=60, strip=True)


# --- webhook deliveries (system/deliveries) ---------------------------------------

# Labels for people (the model's choices are the API's words, in English).
DELIVERY_OUTCOMES: dict[str, Any] = {
    WebhookDelivery.Outcome.STORED: gettext_lazy("stored"),
    WebhookDelivery.Outcome.DUPLICATE: gettext_lazy("duplicate"),
    WebhookDelivery.Outcome.IGNORED: gettext_lazy("ignored"),
    WebhookDelivery.Outcome.REJECTED: gettext_lazy("rejected"),
}
DELIVERY_SCHEMES: dict[str, Any] = {
    WebhookDelivery.Scheme.OPENCLAW: gettext_lazy("X-OpenClaw-Signature"),
    WebhookDelivery.Scheme.STANDARD: gettext_lazy("Standard Webhooks"),
    WebhookDelivery.Scheme.NONE: gettext_lazy("none / invalid"),
}
# One request replays at most a page of deliveries.
REPLAY_MAX = 50


class DeliveryFilterForm(forms.Form):
    outcome = forms.ChoiceField(
        label=gettext_lazy("Outcome"),
        required=False,
        choices=[("", gettext_lazy("All outcomes")), *DELIVERY_OUTCOMES.items()],
    )
    event = forms.CharField(label=gettext_lazy("Event"), required=False, max_length=64)
    scheme = forms.ChoiceField(
        label=gettext_lazy("Signature"),
        required=False,
        choices=[("", gettext_lazy("All schemes")), *DELIVERY_SCHEMES.items()],
    )
    since = forms.DateField(
        label=gettext_lazy("From"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    until = forms.DateField(
        label=gettext_lazy("To"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    q = forms.CharField(
        label=gettext_lazy("Search"),
        required=False,
        max_length=255,
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": gettext_lazy("Session, webhook id or text"),
            }
        ),
    )
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    @property
    def filters(self) -> dict[str, Any]:
        """``WebhookDeliveryQuerySet.filtered`` arguments; a bad value is dropped."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        since, until = data.get("since"), data.get("until")
        return {
            "outcome": data.get("outcome") or "",
            "event_type": (data.get("event") or "").strip(),
            "scheme": data.get("scheme") or "",
            "since": _day_start(since) if since else None,
            # The whole "to" day, in the agent's time zone.
            "until": _day_start(until) + timedelta(days=1) if until else None,
            "query": (data.get("q") or "").strip(),
        }

    @property
    def cursor(self) -> int | None:
        """Show deliveries older than this one (the next page)."""
        self.is_valid()
        return getattr(self, "cleaned_data", {}).get("before")

    def query_items(self, **changes: Any) -> str:
        """The filters as a query string (for the next page's link)."""
        items = {
            k: v for k, v in self.data.items() if k != "before" and k in self.fields
        }
        items.update(changes)
        return urlencode({k: v for k, v in items.items() if v})


def _day_start(day: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


class ReplayForm(forms.Form):
    delivery = forms.ModelMultipleChoiceField(
        queryset=WebhookDelivery.objects.all(),
        error_messages={"required": gettext_lazy("Tick at least one delivery.")},
    )

    def clean_delivery(self) -> Any:
        chosen = self.cleaned_data["delivery"]
        if len(chosen) > REPLAY_MAX:
            raise forms.ValidationError(
                _("Replay at most %(limit)d deliveries at once.")
                % {"limit": REPLAY_MAX}
            )
        return chosen
