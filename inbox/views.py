from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.db.models import Count, QuerySet
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    QueryDict,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
)
from django_htmx.middleware import HtmxDetails
from django_ratelimit.core import is_ratelimited

from core import masking
from core.roles import Role, role_of, role_required, staff_users
from inbox import attachments, ingest, live, metrics, webhooks
from inbox.forms import (
    BULK_ACTIONS,
    DELIVERY_OUTCOMES,
    DELIVERY_SCHEMES,
    REPLAY_MAX,
    AssignForm,
    BulkForm,
    ContactForm,
    ConversationFilterForm,
    DeliveryFilterForm,
    HandBackForm,
    MergeForm,
    ReplayForm,
    ReplyForm,
    SavedViewForm,
    SnoozeForm,
    encode_cursor,
)
from inbox.models import (
    Activity,
    CannedResponse,
    Contact,
    Conversation,
    Message,
    Notification,
    Platform,
    ReadMark,
    SavedView,
    TransitionError,
    WebhookDelivery,
    activity_window,
    search_snippets,
    wake_at,
)

PAGE_SIZE = 50
THREAD_PAGE = 50
JSON_TYPES = ("application/json",)


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


# --- webhook --------------------------------------------------------------------


def _error(status: int, field: str, reason: str, **headers: str) -> JsonResponse:
    response = JsonResponse(
        {"status": "error", "error": {"field": field, "reason": reason}}, status=status
    )
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _reject(
    request: HttpRequest,
    status: int,
    category: str,
    field: str,
    reason: str,
    body: bytes = b"",
    *,
    verified: bool = False,
    scheme: str = WebhookDelivery.Scheme.NONE,
    event_type: str = "",
) -> JsonResponse:
    """Answer an error; count it, and keep a record of a sample (never a flood).

    Requests not (yet) proven to be ours spend their address's junk budget
    (OPENCLAW_WEBHOOK_JUNK_RATE); past it the answer is 429 and costs
    nothing more. A verified sender's budget is a separate one (see
    ``webhook``), so junk from a shared address never crowds it out.
    ``scheme`` is the signature that verified a body refused for its content
    (the deliveries page tells those from unsigned ones, and so does replay).
    """
    if not verified and _over_budget(
        request, "junk", settings.OPENCLAW_WEBHOOK_JUNK_RATE
    ):
        metrics.record_rejection("junk_rate_limit")
        return _rate_limited(settings.OPENCLAW_WEBHOOK_JUNK_RATE)
    metrics.record_rejection(category)
    if webhooks.sample_rejection(category):
        WebhookDelivery.objects.create(
            webhook_id=request.headers.get("webhook-id", "")[:255],
            # PostgreSQL text holds no NUL: a body refused for carrying one is kept.
            raw_body=body[: webhooks.REJECTED_BODY_CHARS]
            .decode("utf-8", "replace")
            .replace("\x00", "\ufffd"),
            body_size=len(body) or int(request.META.get("CONTENT_LENGTH") or 0),
            body_truncated=len(body) > webhooks.REJECTED_BODY_CHARS,
            source_ip=request.META.get("REMOTE_ADDR") or None,
            outcome=WebhookDelivery.Outcome.REJECTED,
            status_code=status,
            error=f"{field}: {reason}"[:2000],
            signature_scheme=scheme,
            event_type=event_type[:64],
        )
    return _error(status, field, reason)


def _over_budget(request: HttpRequest, budget: str, rate: str) -> bool:
    return is_ratelimited(
        request, group=f"openclaw-webhook-{budget}", key="ip", rate=rate, increment=True
    )


def _rate_limited(rate: str) -> JsonResponse:
    period = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(rate[-1], 60)
    return _error(
        429, "rate", f"more than {rate} from this address", Retry_After=str(period)
    )


@csrf_exempt
def webhook(request: HttpRequest) -> JsonResponse:
    """``POST /api/openclaw/webhook/``: the gateway's deliveries.

    The contract is in docs/webhook-contract.md.
    """
    if request.method != "POST":
        metrics.record_rejection("method")
        return _error(405, "method", "use POST", Allow="POST")
    if request.content_type not in JSON_TYPES:
        return _reject(
            request, 415, "content_type", "Content-Type", "must be application/json"
        )
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return _reject(
            request,
            415,
            "content_encoding",
            "Content-Encoding",
            f"{encoding[:32]} is not accepted: send the JSON uncompressed",
        )
    cap = settings.OPENCLAW_WEBHOOK_MAX_BYTES
    if int(request.META.get("CONTENT_LENGTH") or 0) > cap:
        return _reject(request, 413, "size", "body", f"is larger than {cap} bytes")
    body = request.read(cap + 1)
    if len(body) > cap:
        return _reject(
            request, 413, "size", "body", f"is larger than {cap} bytes", body
        )
    try:
        scheme = webhooks.verify_signature(
            request.headers, body, settings.OPENCLAW_WEBHOOK_SECRETS
        )
    except webhooks.SignatureError as exc:
        return _reject(request, 401, "signature", "signature", str(exc), body)
    # From here the sender holds our secret: its own budget.
    if _over_budget(request, "verified", settings.OPENCLAW_WEBHOOK_RATE):
        # Not logged row by row: a flood must not become a flood of rows.
        metrics.record_rejection("rate_limit")
        return _rate_limited(settings.OPENCLAW_WEBHOOK_RATE)

    def bad_payload(exc: webhooks.PayloadError, event_type: str = "") -> JsonResponse:
        """400 for a signed body we cannot store, with the reason."""
        return _reject(
            request,
            400,
            "payload",
            exc.field,
            exc.reason,
            body,
            verified=True,
            scheme=scheme,
            event_type=event_type,
        )

    try:
        payload = webhooks.parse_body(body)
    except webhooks.PayloadError as exc:
        return bad_payload(exc)

    delivery = WebhookDelivery(
        webhook_id=request.headers.get("webhook-id", "")[:255],
        event_type=payload["event"],
        raw_body=body.decode(),
        body_size=len(body),
        signature_scheme=scheme,
        source_ip=request.META.get("REMOTE_ADDR") or None,
    )
    if payload["event"] not in webhooks.KNOWN_EVENTS:
        # Forward compatible: a newer gateway's event is kept, not refused.
        delivery.outcome = WebhookDelivery.Outcome.IGNORED
        delivery.status_code = 202
        delivery.save()
        metrics.DELIVERIES.labels(outcome="ignored").inc()
        return JsonResponse(
            {"status": "ignored", "event": payload["event"]}, status=202
        )
    try:
        event = webhooks.validate(payload, body)
    except webhooks.PayloadError as exc:
        return bad_payload(exc, payload["event"])
    outcome = ingest.store(event, delivery)
    answer: dict[str, Any] = {"status": outcome.status}
    if outcome.message is not None:
        answer["messageId"] = outcome.message.gateway_message_id
    return JsonResponse(answer)


# --- inbox pages ----------------------------------------------------------------


def _list_context(request: HttpRequest, open_pk: int | None = None) -> dict[str, Any]:
    form = ConversationFilterForm(request.GET)
    filters = form.filters
    conversations = (
        Conversation.objects.filtered(user=request.user, **filters)
        .with_unread_for(request.user)
        .select_related("assignee")
        .by_activity()
        .before_cursor(form.cursor_key)
    )
    page = list(conversations[: PAGE_SIZE + 1])
    has_more = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    if filters.get("query"):
        # Why each one matched: its newest matching message, hits marked.
        snippets = search_snippets([c.pk for c in page], filters["query"])
        for conversation in page:
            conversation.snippet = snippets.get(conversation.pk)
    for conversation in page:
        conversation.row_html = live.render_row(
            conversation,
            unread=conversation.unread,  # type: ignore[attr-defined]
            selected=conversation.pk == open_pk,
        )
    since, until = activity_window(filters["since"], filters["until"])
    return {
        "conversations": page,
        "next_cursor": encode_cursor(page[-1]) if has_more else "",
        "filters": filters,
        "filter_query": urlencode({k: v for k, v in form.query_items() if v}),
        "window": {
            "since": since.timestamp() if since else "",
            "until": until.timestamp() if until else "",
        },
        "platforms": Platform.choices,
        "statuses": Conversation.Status.choices,
    }


def _list_chrome(request: HttpRequest) -> dict[str, Any]:
    """What the list pane shows around its rows (not a "load more" page)."""
    return {
        "saved_views": list(_saved_views(request.user)),
        "assignees": list(staff_users().values_list("username", flat=True)),
    }


def _thread_context(
    conversation: Conversation, before: int | None = None
) -> dict[str, Any]:
    """One page of the timeline: messages and the audit trail, by activity order."""
    timeline = (
        conversation.activities.filter(
            kind__in=[
                Activity.Kind.MESSAGE_ADDED,
                Activity.Kind.STATUS_CHANGED,
                Activity.Kind.EVENT,
            ]
        )
        .select_related("message", "user")
        .order_by("-pk")
    )
    if before is not None:
        timeline = timeline.filter(pk__lt=before)
    page = list(timeline[: THREAD_PAGE + 1])
    has_older = len(page) > THREAD_PAGE
    page = page[:THREAD_PAGE][::-1]
    for activity in page:
        if activity.message is not None:
            activity.message.conversation = conversation  # no query per item
    return {
        "conversation": conversation,
        "timeline": page,
        "older_before": page[0].pk if has_older and page else None,
    }


def _staff_context(request: HttpRequest) -> dict[str, Any]:
    return {
        "role": role_of(request.user).label,
        "escalations": live.escalation_count(),
    }


@role_required(Role.AGENT)
@require_GET
def conversation_list(request: HtmxHttpRequest) -> HttpResponse:
    if request.htmx and request.GET.get("cursor"):
        # "Load more": rows only, after those the page holds.
        return render(
            request, "inbox/inbox.html#conversation-rows", _list_context(request)
        )
    seq = live.current_seq()  # before reading rows: replay covers the rest
    context = _list_context(request) | {"seq": seq, "open": None}
    context |= _list_chrome(request) | _staff_context(request)
    context["agents"] = staff_users() if role_of(request.user) >= Role.LEAD else []
    if request.htmx and request.htmx.target == "list-pane":
        return render(request, "inbox/inbox.html#list-pane", context)
    return render(request, "inbox/inbox.html", context)


@role_required(Role.AGENT)
@require_GET
def conversation_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    seq = live.current_seq()
    conversation = get_object_or_404(
        Conversation.objects.select_related("assignee", "contact"), pk=pk
    )
    ReadMark.mark_seen(request.user, conversation)
    Notification.mark_read(request.user, conversation.pk)
    context = _thread_context(conversation) | {"seq": seq, "open": conversation}
    context |= _contact_context(conversation)
    context |= _staff_context(request) | {"reply_form": ReplyForm()}
    context["agents"] = staff_users() if role_of(request.user) >= Role.LEAD else []
    if request.htmx and request.htmx.target == "thread-pane":
        return render(request, "inbox/inbox.html#thread-pane", context)
    context |= _list_context(request, conversation.pk) | _list_chrome(request)
    return render(request, "inbox/inbox.html", context)


@role_required(Role.AGENT)
@require_GET
def older_messages(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    conversation = get_object_or_404(Conversation, pk=pk)
    try:
        before = int(request.GET.get("before", ""))
    except ValueError:
        return HttpResponse("before must be a message id", status=400)
    return render(
        request,
        "inbox/inbox.html#older-messages",
        _thread_context(conversation, before),
    )


# --- the customer beside the thread ----------------------------------------------

HISTORY_SHOWN = 10


def _contact_context(conversation: Conversation, form: Any = None) -> dict[str, Any]:
    """The side panel: who the customer is and what else they wrote about."""
    contact = conversation.contact
    identities = contact.identities() if contact is not None else []
    history = list(
        Conversation.objects.of_customer(identities).exclude(pk=conversation.pk)[
            :HISTORY_SHOWN
        ]
    )
    info = conversation.metadata if isinstance(conversation.metadata, dict) else {}
    # The customer's other identities: not the one this conversation is from.
    own = (conversation.platform, conversation.customer_id)
    others = [c for c in identities if (c.platform, c.external_id) != own]
    return {
        "conversation": conversation,
        "contact": contact,
        "aliases": others,
        "history": history,
        "channel_info": [
            (str(key)[:60], str(value)[:200])
            for key, value in list(info.items())[:20]
            if key != "tags" and value not in ("", None, [], {})
        ],
        "contact_form": form
        if form is not None
        else (ContactForm(instance=contact) if contact is not None else None),
    }


def _panel(
    request: HtmxHttpRequest, conversation: Conversation, **extra: Any
) -> HttpResponse:
    context = _contact_context(conversation, extra.pop("form", None)) | extra
    status = 400 if context.get("error") else 200
    return render(request, "inbox/inbox.html#contact-panel", context, status=status)


@role_required(Role.AGENT)
@require_http_methods(["GET", "POST"])
def contact_panel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The panel (GET) or the agent's edit of name, tags and notes (POST)."""
    conversation = get_object_or_404(
        Conversation.objects.select_related("contact"), pk=pk
    )
    if request.method == "GET" or conversation.contact is None:
        return _panel(request, conversation)
    form = ContactForm(request.POST, instance=conversation.contact)
    if not form.is_valid():
        return _panel(request, conversation, form=form, error=_("not saved"))
    form.save()
    return _panel(request, conversation, saved=True)


@role_required(Role.AGENT)
@require_GET
def contact_candidates(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Contacts the open conversation's customer could be merged with."""
    conversation = get_object_or_404(Conversation, pk=pk)
    query = request.GET.get("q", "").strip()
    found: list[Contact] = []
    if conversation.contact_id is not None and len(query) >= 2:
        found = list(
            Contact.objects.named(query)
            .filter(merged_into__isnull=True)
            .exclude(pk=conversation.contact_id)
            .order_by("-updated_at")[:10]
        )
    return render(
        request,
        "inbox/inbox.html#merge-candidates",
        {"conversation": conversation, "candidates": found, "query": query},
    )


@role_required(Role.AGENT)
@require_http_methods(["GET", "POST"])
def merge_contact(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Fold another contact into this conversation's customer (POST); GET asks
    the agent to confirm first, naming both: a merge cannot be undone."""
    conversation = get_object_or_404(
        Conversation.objects.select_related("contact"), pk=pk
    )
    if request.method == "GET":
        asked = MergeForm(request.GET)
        other = (
            Contact.objects.filter(pk=asked.cleaned_data["other"]).first()
            if asked.is_valid()
            else None
        )
        if other is None or conversation.contact is None:
            return HttpResponse(_("pick a contact to merge"), status=400)
        return render(
            request,
            "inbox/inbox.html#merge-confirm",
            {"conversation": conversation, "other": other},
        )
    form = MergeForm(request.POST)
    keep = conversation.contact
    if keep is None or not form.is_valid():
        return _panel(request, conversation, error=_("pick a contact to merge"))
    other = Contact.objects.filter(pk=form.cleaned_data["other"]).first()
    if other is None:
        return _panel(request, conversation, error=_("that contact no longer exists"))
    try:
        keep.merge(other)
    except ValueError as exc:
        return _panel(
            request, conversation, error=_("not merged: %(why)s") % {"why": exc}
        )
    by = request.user.get_username()
    conversation.record_event(
        f"Merged contact “{other}” into “{keep}” by {by}",
        merged=other.pk,
        # The names too: the timeline words it in each reader's language.
        gone=str(other),
        keep=str(keep),
        by=by,
    )
    conversation.refresh_from_db()
    return _panel(request, conversation, merged=other)


@require_GET
def attachment(request: HttpRequest, key: str, name: str) -> FileResponse:
    """An agent's attached file, fetched by the chat platform (public by its
    unguessable URL, as the platforms need; see ``inbox.attachments``)."""
    return attachments.serve(key, name)


# --- notifications ------------------------------------------------------------------

BELL_SHOWN = 20


@role_required(Role.AGENT)
@require_http_methods(["GET", "POST"])
def notifications(request: HtmxHttpRequest) -> HttpResponse:
    """The bell's list (GET); POST marks them all read."""
    user: Any = request.user
    if request.method == "POST":
        Notification.mark_read(user)
    rows = list(
        Notification.objects.filter(user=user)
        .select_related("conversation")
        .order_by("-created_at")[:BELL_SHOWN]
    )
    template = "inbox/notifications.html"
    if request.htmx:
        template += "#bell-list"
    return render(request, template, {"notifications": rows})


# --- saved views, read state --------------------------------------------------------


def _saved_views(user: Any) -> QuerySet[SavedView]:
    return SavedView.objects.filter(user=user)


@role_required(Role.AGENT)
@require_POST
def save_view(request: HtmxHttpRequest) -> HttpResponse:
    """Name the list's current filters; saving a name again replaces it."""
    form = SavedViewForm(request.POST)
    filters = ConversationFilterForm(request.POST)
    query = urlencode({k: v for k, v in filters.query_items() if v})
    error = ""
    if not form.is_valid():
        error = _("give the view a name (up to 60 characters)")
    elif not query:
        error = _("pick a filter first: this view would show everything")
    else:
        user: Any = request.user
        SavedView.objects.update_or_create(
            user=user,
            name=form.cleaned_data["name"],
            defaults={"query": query},
        )
    return render(
        request,
        "inbox/inbox.html#saved-views",
        {
            "saved_views": _saved_views(request.user),
            "view_error": error,
        },
        status=400 if error else 200,
    )


@role_required(Role.AGENT)
@require_POST
def delete_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    _saved_views(request.user).filter(pk=pk).delete()
    return render(
        request,
        "inbox/inbox.html#saved-views",
        {"saved_views": _saved_views(request.user)},
    )


@role_required(Role.AGENT)
@require_POST
def mark_unread(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Leave the conversation unread for this agent and go back to the list."""
    conversation = get_object_or_404(Conversation, pk=pk)
    ReadMark.mark_unread(request.user, conversation)
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = reverse("inbox:conversation-list")
        return response
    return redirect("inbox:conversation-list")


# --- takeover, hand-back, escalation ---------------------------------------------


def _refusal(request: HtmxHttpRequest, status: int, reason: str) -> HttpResponse:
    """Why an action was refused, shown next to the conversation's buttons."""
    response = render(
        request,
        "inbox/inbox.html#action-error",
        {"error": reason},
        status=status,
    )
    if request.htmx:
        response["HX-Retarget"] = "#action-error"
        response["HX-Reswap"] = "outerHTML"
    return response


def _may_act(user: Any, conversation: Conversation) -> str:
    return conversation.why_not(user)


def _conversation_action(
    request: HtmxHttpRequest,
    pk: int,
    act: Callable[[Conversation], Any],
    *,
    check_owner: bool = True,
) -> HttpResponse:
    conversation = get_object_or_404(
        Conversation.objects.select_related("assignee"), pk=pk
    )
    if check_owner and (reason := _may_act(request.user, conversation)):
        return _refusal(request, 403, reason)
    try:
        act(conversation)
    except TransitionError as exc:
        return _refusal(request, 409, str(exc))
    if not request.htmx:
        return redirect("inbox:conversation-detail", pk=pk)
    return render(
        request,
        "inbox/inbox.html#conversation-header",
        {"conversation": conversation, "role": role_of(request.user).label},
    )


@role_required(Role.AGENT)
@require_POST
def take_over(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    # No owner check here: take_over() decides under the row lock, so of two
    # agents clicking at once exactly one wins and the other learns who.
    # "from": the owner the agent's page showed, to take it from them.
    raw = request.POST.get("from", "")
    from_owner = int(raw) if raw.isdecimal() else None
    return _conversation_action(
        request,
        pk,
        lambda c: c.take_over(request.user, from_owner=from_owner),
        check_owner=False,
    )


@role_required(Role.AGENT)
@require_POST
def hand_back(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    form = HandBackForm(request.POST)
    to = form.cleaned_data["to"] if form.is_valid() else "bot"
    return _conversation_action(request, pk, lambda c: c.hand_back(request.user, to=to))


@role_required(Role.AGENT)
@require_POST
def escalate(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _conversation_action(
        request,
        pk,
        lambda c: c.escalate(request.user, reason=f"escalated by {request.user}"),
    )


@role_required(Role.AGENT)
@require_POST
def resolve(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _conversation_action(request, pk, lambda c: c.resolve(request.user))


@role_required(Role.AGENT)
@require_POST
def snooze(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    form = SnoozeForm(request.POST)
    if not form.is_valid():
        errors = form.non_field_errors()
        return _refusal(
            request, 400, str(errors[0]) if errors else _("pick how long to snooze")
        )
    until = form.until_time
    return _conversation_action(request, pk, lambda c: c.snooze(request.user, until))


@role_required(Role.LEAD)
@require_POST
def assign(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    form = AssignForm(request.POST)
    if not form.is_valid():
        return _refusal(request, 400, _("pick an agent to assign"))
    agent = form.cleaned_data["agent"]
    return _conversation_action(request, pk, lambda c: c.assign(request.user, agent))


@role_required(Role.AGENT)
@require_POST
def bulk(request: HtmxHttpRequest) -> HttpResponse:
    """One action on the selected conversations, each under its own rules and
    row lock, as if its button had been clicked; the answer says how many
    were done and why the others were not."""
    form = BulkForm(request.POST)
    if not form.is_valid():
        errors = form.non_field_errors() or [
            f"{name}: {error}" for name, errs in form.errors.items() for error in errs
        ]
        return _bulk_answer(request, 0, [str(errors[0])], status=400)
    data = form.cleaned_data
    user, action = request.user, data["action"]
    agent = None
    if action == "assign":
        if role_of(user) < Role.LEAD:
            return _bulk_answer(request, 0, [_("only leads assign")], status=403)
        agent = staff_users().filter(username=data["agent"]).first()
        if agent is None:
            refusal = _("%(name)s is not an agent") % {"name": data["agent"]}
            return _bulk_answer(request, 0, [refusal], 400)
    done, refused = 0, []
    conversations = Conversation.objects.select_related("assignee").filter(
        pk__in=data["ids"]
    )
    for conversation in conversations:
        try:
            if action == "read":
                ReadMark.mark_seen(user, conversation)
            elif action == "unread":
                ReadMark.mark_unread(user, conversation)
            elif action == "tag":
                conversation.add_tag(data["tag"], by=user.get_username())
            elif reason := conversation.why_not(user):
                raise TransitionError(reason)
            elif action == "resolve":
                conversation.resolve(user)
            elif action == "assign":
                conversation.assign(user, agent)
            elif action == "snooze":
                minutes = data["minutes"]
                conversation.snooze(
                    user, wake_at(minutes=None if minutes == "reply" else int(minutes))
                )
            done += 1
        except TransitionError as exc:
            who = conversation.customer_name or conversation.session_id
            refused.append(f"{who}: {exc}")
    return _bulk_answer(request, done, refused)


def _bulk_answer(
    request: HtmxHttpRequest, done: int, refused: list[str], status: int = 200
) -> HttpResponse:
    if not request.htmx:
        return redirect("inbox:conversation-list")
    action = dict(BULK_ACTIONS).get(request.POST.get("action", ""), "")
    return render(
        request,
        "inbox/inbox.html#bulk-result",
        {"done": done, "refused": refused, "action": action},
        status=status,
    )


# --- replies -----------------------------------------------------------------------


@role_required(Role.AGENT)
@require_POST
def reply(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Queue an agent's reply for the gateway (or keep an internal note).

    The message shows at once as "queued"; ``inbox.tasks.deliver_reply``
    sends it and every state change after that arrives over the websocket.
    """
    conversation = get_object_or_404(
        Conversation.objects.select_related("assignee"), pk=pk
    )
    form = ReplyForm(request.POST, request.FILES)
    context: dict[str, Any] = {"conversation": conversation, "reply_form": form}
    if not form.is_valid():
        return render(request, "inbox/inbox.html#composer", context, status=400)
    note = form.cleaned_data["note"]
    if not note and (reason := _may_act(request.user, conversation)):
        context["composer_error"] = reason
        return render(request, "inbox/inbox.html#composer", context, status=409)
    files = [attachments.save(f, request) for f in form.cleaned_data["attach"]]
    try:
        message = conversation.reply(
            request.user, form.cleaned_data["text"], note=note, attachments=files
        )
    except TransitionError as exc:
        attachments.discard(files)
        context["composer_error"] = str(exc)
        return render(request, "inbox/inbox.html#composer", context, status=409)
    if not request.htmx:
        return redirect("inbox:conversation-detail", pk=pk)
    context |= {"reply_form": ReplyForm(initial={"note": note}), "sent": message}
    return render(request, "inbox/inbox.html#composer", context)


@role_required(Role.AGENT)
@require_POST
def retry_reply(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The "Retry" button on a failed reply: a fresh round of attempts."""
    from inbox.tasks import deliver_reply

    message = get_object_or_404(
        Message.objects.select_related("conversation", "conversation__assignee"),
        pk=pk,
        author__in=[Message.Author.AGENT, Message.Author.AUTOMATION],
    )
    if reason := _may_act(request.user, message.conversation):
        return _refusal(request, 403, reason)
    if message.requeue():
        deliver_reply.send(message.pk)
    if request.htmx:
        return HttpResponse(status=204)  # the new state arrives over the websocket
    return redirect("inbox:conversation-detail", pk=message.conversation_id)


@role_required(Role.AGENT)
@require_GET
def canned_responses(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The composer's ``/`` picker: filter as you type, placeholders filled in."""
    conversation = get_object_or_404(Conversation, pk=pk)
    query = request.GET.get("q", "").strip().lstrip("/")[:40]
    responses = CannedResponse.objects.all()
    if query:
        responses = responses.filter(shortcut__istartswith=query) | responses.filter(
            title__icontains=query
        )
    choices = [
        {"response": r, "text": r.render(conversation, request.user)}
        for r in responses[:10]
    ]
    return render(
        request, "inbox/inbox.html#canned-picker", {"choices": choices, "query": query}
    )


# --- escalation queue ------------------------------------------------------------


@role_required(Role.AGENT)
@require_GET
def escalation_queue(request: HtmxHttpRequest) -> HttpResponse:
    """Waiting customers, oldest first, with live timers and SLA colours."""
    waiting = list(
        Conversation.objects.filter(status=Conversation.Status.ESCALATED)
        .select_related("assignee")
        .order_by("escalated_at", "pk")[:200]
    )
    per_platform = (
        Conversation.objects.filter(status=Conversation.Status.ESCALATED)
        .values("platform")
        .annotate(n=Count("pk"))
        .order_by("-n")
    )
    labels = dict(Platform.choices)
    context = {
        "waiting": waiting,
        "per_platform": [
            (labels.get(r["platform"], r["platform"]), r["n"]) for r in per_platform
        ],
        "sla_amber": settings.INBOX_SLA_AMBER_SECONDS,
        "sla_red": settings.INBOX_SLA_RED_SECONDS,
        "now": timezone.now(),
        "seq": live.current_seq(),
    } | _staff_context(request)
    if request.htmx and request.htmx.target == "queue":
        return render(request, "inbox/queue.html#queue", context)
    return render(request, "inbox/queue.html", context)


# --- webhook deliveries (system/deliveries) -------------------------------------
# Leads look at what senders posted, what came of it, and run a body again
# (webhooks.replay). Bodies and sessions are masked (core.masking) for users
# without the view_personal_data permission, and their searches do not read
# bodies (a hit would confirm a customer's address or number).

DELIVERY_PAGE = 50


def _delivery_rows(
    request: HttpRequest, rows: list[WebhookDelivery]
) -> list[WebhookDelivery]:
    """``rows`` with what a list row prints: labels, and the session masked."""
    can_see = masking.may_see_personal_data(request.user)
    for row in rows:
        row.outcome_label = DELIVERY_OUTCOMES.get(row.outcome, row.outcome)  # type: ignore[attr-defined]
        row.scheme_label = (  # type: ignore[attr-defined]
            _("replay")
            if row.replay_of_id is not None
            else DELIVERY_SCHEMES.get(row.signature_scheme, row.signature_scheme)
        )
        # The event a refused body names (read, not trusted) when none was recorded.
        row.event_shown = row.event_in_body  # type: ignore[attr-defined]
        session = row.session_key
        shown = session if can_see else masking.mask(session)
        row.session_shown = shown  # type: ignore[attr-defined]
        # Lines break between a key's parts, never inside an id.
        row.session_parts = shown.split(":") if shown else []  # type: ignore[attr-defined]
        row.is_note = row.is_ops_command  # type: ignore[attr-defined]
        row.error_shown = (  # type: ignore[attr-defined]
            _("taken as an ops command")
            if row.is_ops_command
            else row.error
            if can_see
            else masking.mask(row.error)
        )
    return rows


def _deliveries_context(
    request: HttpRequest, params: QueryDict | None = None
) -> dict[str, Any]:
    """The list with the filters in ``params`` (the request's query by default)."""
    form = DeliveryFilterForm(request.GET if params is None else params)
    can_see = masking.may_see_personal_data(request.user)
    if not can_see:
        form.fields["q"].widget.attrs["placeholder"] = _(
            "Session, webhook id, event or reason"
        )
    rows = (
        WebhookDelivery.objects.filtered(**form.filters, in_bodies=can_see)
        .with_body_head()
        .select_related("conversation", "replayed_by")
    )
    if form.cursor:
        rows = rows.filter(pk__lt=form.cursor)
    # Keyset pages, newest first: no OFFSET over a long log.
    page = list(rows.order_by("-pk")[: DELIVERY_PAGE + 1])
    has_more = len(page) > DELIVERY_PAGE
    page = _delivery_rows(request, page[:DELIVERY_PAGE])
    return {
        "form": form,
        "deliveries": page,
        "next_query": form.query_items(before=page[-1].pk) if has_more else "",
        "known_events": sorted(webhooks.KNOWN_EVENTS),
        "replay_max": REPLAY_MAX,
    } | _staff_context(request)


@role_required(Role.LEAD)
@require_GET
def delivery_list(request: HtmxHttpRequest) -> HttpResponse:
    """``/system/deliveries/``: the webhook log, filtered; the form swaps ``#list``."""
    context = _deliveries_context(request)
    if request.htmx and request.htmx.target in ("delivery-list", "delivery-rows"):
        return render(request, "inbox/deliveries.html#list", context)
    return render(request, "inbox/deliveries.html", context)


def _pretty_body(raw: str, can_see: bool) -> str:
    """The body indented when it is JSON, masked unless ``can_see``."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw if can_see else masking.mask(raw)
    if not can_see:
        parsed = masking.mask_data(parsed, name_keys=masking.NAME_KEYS)
    return json.dumps(parsed, indent=2, ensure_ascii=False)


def _detail_context(request: HttpRequest, pk: int) -> dict[str, Any]:
    delivery = get_object_or_404(
        WebhookDelivery.objects.select_related(
            "conversation", "replayed_by", "replay_of"
        ),
        pk=pk,
    )
    can_see = masking.may_see_personal_data(request.user)
    replays = list(
        delivery.replays.select_related("replayed_by", "conversation").order_by("-pk")[
            :100
        ]
    )
    return {
        "delivery": _delivery_rows(request, [delivery])[0],
        "body": _pretty_body(delivery.raw_body, can_see),
        "is_masked": not can_see,
        "replays": _delivery_rows(request, replays),
        "refusal": delivery.replay_refusal(),
        "is_admin": role_of(request.user) >= Role.ADMIN,
    } | _staff_context(request)


@role_required(Role.LEAD)
@require_GET
def delivery_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return render(request, "inbox/delivery.html", _detail_context(request, pk))


def _replay_results(request: HttpRequest, form: ReplayForm) -> list[dict[str, Any]]:
    # The unsigned-body confirmation holds for one delivery, from its own page.
    chosen = sorted(form.cleaned_data["delivery"], key=lambda d: d.pk)
    trust = request.POST.get("trust_unsigned") == "yes" and len(chosen) == 1
    results: list[dict[str, Any]] = []
    for delivery in chosen:
        try:
            attempt = webhooks.replay(delivery, request.user, trust_unsigned=trust)
        except webhooks.ReplayRefused as exc:
            results.append({"original": delivery, "refusal": str(exc)})
        else:
            results.append(
                {"original": delivery, "attempt": _delivery_rows(request, [attempt])[0]}
            )
    return results


@role_required(Role.LEAD)
@require_POST
def delivery_replay(request: HtmxHttpRequest) -> HttpResponse:
    """Replay the chosen deliveries, each in its own transaction; answer with
    what came of each (a refusal is a result too, with its reason) and the
    page's region that changed: one delivery's replay section (its audit
    included), or the list as its filters show it now (new rows, boxes
    cleared). Nothing chosen is a 400 with the reason, in place."""
    form = ReplayForm(request.POST)
    from_detail = request.POST.get("page") == "detail"
    status = 200
    results: list[dict[str, Any]] = []
    problem = ""
    if form.is_valid():
        results = _replay_results(request, form)
    else:
        status = 400
        problem = " ".join(str(e) for e in form.errors.get("delivery", []))
    context: dict[str, Any] = {"results": results, "problem": problem}
    if from_detail and results:
        context |= _detail_context(request, results[0]["original"].pk)
        template = "inbox/delivery.html"
        region = "replay-section"
    else:
        params = None
        if request.htmx and request.htmx.current_url:
            params = QueryDict(urlsplit(request.htmx.current_url).query)
        context |= _deliveries_context(request, params)
        template = "inbox/deliveries.html"
        region = "replayed"
    if request.htmx:
        return render(request, f"{template}#{region}", context, status=status)
    return render(request, template, context, status=status)
