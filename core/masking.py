"""Personal data out of sight: e-mail addresses, phone numbers, card numbers,
Korean resident registration numbers and whatever an admin adds as a pattern
(``core.models.MaskingPattern``) become labelled placeholders (``[email]``,
``[phone]``, ``[card]``, ``[rrn]``, ``[masked]``).

Who sees what: ``may_see_personal_data(user)`` (the ``core.view_personal_data``
permission; superusers have it). ``mask_for`` masks for the others,
``mask_data`` walks JSON-like data, ``MaskingFilter`` keeps log lines clean.

Every pattern is RE2: the time to scan grows with the text, never with a
hostile pattern or input. Text is scanned in bounded chunks, and at most
``MAX_MASK_CHARS`` of it: what lies beyond is replaced, never shown unscanned.
Numbers are found as runs of digit groups (``010-1234-5678``, ``4111 1111 …``)
and each window of up to ``MAX_WINDOW_GROUPS`` groups is judged in Python
(Luhn, a plausible birth date, a dialling prefix): order numbers, dates,
amounts and version strings are left as written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import re2
from django.apps import apps
from django.core.cache import cache
from django.utils.translation import gettext as _

log = logging.getLogger(__name__)

PERMISSION = "core.view_personal_data"
DEFAULT_LABEL = "masked"
MAX_PATTERN_CHARS = 500
MAX_ADMIN_PATTERNS = 50
# Chunks keep memory per scan bounded; the cap bounds the work per call.
MASK_CHUNK_CHARS = 64 * 1024
MAX_MASK_CHARS = 4 * 1024 * 1024
TRUNCATED = "[masked: text too long]"
# A card is at most 5 groups (4-4-4-4-3), a phone 5 (+82 10 1234 5678).
MAX_WINDOW_GROUPS = 5
# The shortest (E.164) and the longest (a card) number we mask.
MIN_DIGITS = 8
MAX_DIGITS = 19
CACHE_KEY = "core:masking:patterns"
NAME = "[name]"
# Keys whose values are people's names or handles (webhook bodies, channelInfo).
NAME_KEYS = frozenset(
    {
        "senderName", "displayName", "username", "firstName", "lastName",
        "fullName", "customerName", "phone", "phoneNumber", "email",
    }
)  # fmt: skip
# Each process keeps the compiled patterns this long before asking the cache
# again (a change elsewhere is seen within it; here at once, see ``forget``).
LOCAL_SECONDS = 10.0


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    # A pattern's compiled program is capped (RE2 refuses larger ones).
    options.max_mem = 8 << 20
    return options


_EMAIL = re2.compile(
    r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}",
    _options(),
)
# A run of digit groups joined by one space, dash or dot, maybe after a "+".
_RUN = re2.compile(r"\+?[0-9]+(?:[ .\-][0-9]+)*", _options())

# Korean dialling prefixes: mobiles, Seoul, the other areas, 070 / 050x.
_KR_MOBILE = re2.compile(r"01[016789][0-9]{7,8}", _options())
_KR_SEOUL = re2.compile(r"02[0-9]{7,8}", _options())
_KR_AREA = re2.compile(r"0(?:[3-6][1-5]|70|50[2-8])[0-9]{7,8}", _options())


def _identifier_char(char: str) -> bool:
    # ASCII only: Korean particles follow numbers directly ("…5678로").
    return char.isascii() and (char.isalnum() or char == "_")


def luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _plausible_birth_date(digits: str) -> bool:
    """YYMMDD followed by the gender digit (1–2: 1900s, 3–4: 2000s)."""
    century = 1900 if digits[6] in "12" else 2000
    try:
        date(century + int(digits[:2]), int(digits[2:4]), int(digits[4:6]))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class _Group:
    start: int
    end: int
    digits: str
    separator: str  # the character before this group ("" for the first)


def _judge(groups: list[_Group], plus: bool) -> str | None:
    """The label for a window of digit groups, or ``None`` if it is nothing."""
    digits = "".join(g.digits for g in groups)
    separators = {g.separator for g in groups[1:]}
    if plus:
        # E.164: a country code and at most 15 digits.
        return "phone" if 8 <= len(digits) <= 15 and digits[0] != "0" else None
    if (
        len(digits) == 13
        and digits[6] in "1234"
        and [len(g.digits) for g in groups] in ([13], [6, 7])
        and separators <= {"-", " "}
        and _plausible_birth_date(digits)
    ):
        return "rrn"
    if (
        13 <= len(digits) <= 19
        and separators <= {"-", " "}
        # Printed cards group by four (Amex 4-6-5): a 6-7 split is no card.
        and (
            len(groups) == 1
            or (len(groups[0].digits) == 4 and all(len(g.digits) >= 3 for g in groups))
        )
        and luhn(digits)
    ):
        return "card"
    if digits.startswith("0") and (
        len(groups) == 1 or all(2 <= len(g.digits) <= 4 for g in groups)
    ):
        if len(groups) > 1 and len(separators) != 1:
            return None  # 010-1234 5678 is two numbers, not one
        if len(groups) > 3:
            return None
        for regex in (_KR_MOBILE, _KR_SEOUL, _KR_AREA):
            if regex.fullmatch(digits):
                return "phone"
    return None


def _mask_run(text: str, start: int, end: int) -> list[tuple[int, int, str]]:
    """The spans of personal data inside one run of digit groups."""
    if start > 0 and _identifier_char(text[start - 1]):
        return []  # part of a word: ORD1234…, v2.1.0
    if end < len(text) and _identifier_char(text[end]):
        return []
    plus = text[start] == "+"
    groups: list[_Group] = []
    position = start + 1 if plus else start
    separator = ""
    while position < end:
        stop = position
        while stop < end and text[stop].isdigit():
            stop += 1
        groups.append(_Group(position, stop, text[position:stop], separator))
        if stop < end:
            separator = text[stop]
        position = stop + 1
    # Digits before each group: a window's count without joining it.
    before = [0]
    for group in groups:
        before.append(before[-1] + len(group.digits))
    found: list[tuple[int, int, str]] = []
    index = 0
    while index < len(groups):
        label = None
        # The longest window first: "+82 10 1234 5678" before "+82 10".
        last = min(len(groups), index + MAX_WINDOW_GROUPS)
        for stop in range(last, index, -1):
            count = before[stop] - before[index]
            if count < MIN_DIGITS or count > MAX_DIGITS:
                continue  # nothing we mask is this short or long
            label = _judge(groups[index:stop], plus and index == 0)
            if label:
                begin = start if plus and index == 0 else groups[index].start
                found.append((begin, groups[stop - 1].end, label))
                index = stop
                break
        if label is None:
            index += 1
    return found


def _builtin(text: str) -> str:
    text = _EMAIL.sub("[email]", text)
    spans: list[tuple[int, int, str]] = []
    for match in _RUN.finditer(text):
        if match.end() - match.start() < MIN_DIGITS:
            continue
        spans.extend(_mask_run(text, match.start(), match.end()))
    if not spans:
        return text
    pieces: list[str] = []
    at = 0
    for begin, end, label in spans:
        pieces += [text[at:begin], f"[{label}]"]
        at = end
    pieces.append(text[at:])
    return "".join(pieces)


# --- admin patterns ---------------------------------------------------------------


def check_pattern(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a masking pattern, or ``None`` if it can."""
    if not pattern:
        return _("A pattern cannot be empty.")
    if len(pattern) > MAX_PATTERN_CHARS:
        return _("A pattern is at most %(limit)d characters.") % {
            "limit": MAX_PATTERN_CHARS
        }
    try:
        regex = re2.compile(pattern, _options())
    except re2.error as exc:
        raw = exc.args[0] if exc.args else str(exc)
        reason = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return _("RE2 cannot use this pattern: %(reason)s.") % {"reason": reason}
    if regex.search("") is not None:
        return _("This pattern matches an empty text, so it would mask everything.")
    return None


_local = threading.local()
_compiled: dict[str, Any] = {"at": 0.0, "key": None, "regexes": []}
_compiled_lock = threading.Lock()


def forget() -> None:
    """Drop the cached admin patterns (called when one is saved or deleted)."""
    cache.delete(CACHE_KEY)
    with _compiled_lock:
        _compiled["at"] = 0.0


def reload() -> None:
    """Forget the admin patterns and cache them again (after a change)."""
    forget()
    _admin_regexes()


def _stored_patterns(*, query: bool = True) -> list[tuple[str, str]] | None:
    """The active admin patterns; ``None`` when not cached and ``query`` is off."""
    found = cache.get(CACHE_KEY)
    if isinstance(found, list):
        return found
    if not query:
        return None
    if not apps.ready:
        return []
    model = apps.get_model("core", "MaskingPattern")
    rows = model.objects.filter(is_active=True).order_by("pk")
    found = [(row.pattern, row.label) for row in rows[:MAX_ADMIN_PATTERNS]]
    # No expiry: every change deletes it (MaskingPattern.save / delete).
    cache.set(CACHE_KEY, found, None)
    return found


def _admin_regexes(*, query: bool = True) -> list[tuple[Any, str]]:
    now = time.monotonic()
    with _compiled_lock:
        if now - _compiled["at"] < LOCAL_SECONDS:
            return _compiled["regexes"]
    stored = _stored_patterns(query=query)
    if stored is None:
        # Not cached, and no query allowed: what this process compiled last.
        with _compiled_lock:
            return _compiled["regexes"]
    key = tuple(stored)
    with _compiled_lock:
        if key != _compiled["key"]:
            regexes = []
            for pattern, label in stored:
                try:
                    regexes.append((re2.compile(pattern, _options()), label))
                except re2.error:
                    # Saved before a stricter check, or by hand: skip, say so.
                    log.warning("masking pattern refused by RE2, skipped")
            _compiled["key"], _compiled["regexes"] = key, regexes
        _compiled["at"] = now
        return _compiled["regexes"]


def _admin(text: str, regexes: list[tuple[Any, str]]) -> str:
    for regex, label in regexes:
        text = regex.sub(f"[{label or DEFAULT_LABEL}]", text)
    return text


# --- the public API ---------------------------------------------------------------


_RUN_CHARS = frozenset("0123456789+-. ")
_EMAIL_CHARS = frozenset("._%+-@")


def _breaks_nothing(text: str, index: int) -> bool:
    """Whether no number or address could span ``text[index]``."""
    char = text[index]
    if char in "\n\t\r,;!?()[]{}<>\"'":
        return True
    if char == " ":
        return not (text[index - 1].isdigit() and text[index + 1].isdigit())
    return char not in _RUN_CHARS and char not in _EMAIL_CHARS and not char.isalnum()


def _chunks(text: str) -> list[str]:
    """``text`` cut into pieces of at most ``MASK_CHUNK_CHARS``, each cut where
    no number or address can be split; failing that (4 KiB of nothing but
    digit groups) at a space, failing that anywhere."""
    pieces = []
    at = 0
    while len(text) - at > MASK_CHUNK_CHARS:
        limit = at + MASK_CHUNK_CHARS
        floor = max(at + 1, limit - 4096)
        cut = next(
            (i for i in range(limit - 1, floor, -1) if _breaks_nothing(text, i)), 0
        )
        if not cut:
            cut = text.rfind(" ", floor, limit)
        if cut <= at:
            cut = limit
        pieces.append(text[at:cut])
        at = cut
    pieces.append(text[at:])
    return pieces


def _mask(text: str, with_admin: bool, *, query: bool = True) -> str:
    if not text:
        return text
    tail = ""
    if len(text) > MAX_MASK_CHARS:
        text, tail = text[:MAX_MASK_CHARS], TRUNCATED
    regexes = _admin_regexes(query=query) if with_admin else []
    out = [_admin(_builtin(piece), regexes) for piece in _chunks(text)]
    return "".join(out) + tail


def mask(text: str) -> str:
    """``text`` with personal data replaced by labelled placeholders."""
    return _mask(text, with_admin=True)


def may_see_personal_data(user: Any) -> bool:
    """Whether ``user`` sees personal data as written (the permission)."""
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and user.has_perm(PERMISSION)
    )


def mask_for(user: Any, text: str) -> str:
    """``text`` as written for users who may see personal data, masked for others."""
    return text if may_see_personal_data(user) else mask(text)


def mask_data(obj: Any, *, name_keys: frozenset[str] = frozenset()) -> Any:
    """A copy of JSON-like ``obj`` with every string (keys too) masked, and
    any non-empty string under one of ``name_keys`` (e.g. ``NAME_KEYS``)
    replaced whole by ``[name]``: a name has no pattern to find it by.

    Walks with a stack of its own: no recursion, however deep the data.
    """
    regexes = _admin_regexes()

    def one(text: str) -> str:
        if len(text) > MASK_CHUNK_CHARS:
            return _mask(text, with_admin=True)
        return _admin(_builtin(text), regexes) if text else text

    root: list[Any] = [obj]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        parent, slot = stack.pop()
        item = parent[slot]
        if isinstance(item, str):
            named = isinstance(slot, str) and slot in name_keys and item
            parent[slot] = NAME if named else one(item)
        elif isinstance(item, dict):
            copy = {one(k) if isinstance(k, str) else k: v for k, v in item.items()}
            parent[slot] = copy
            stack.extend((copy, key) for key in copy)
        elif isinstance(item, (list, tuple)):
            copy_list = list(item)
            parent[slot] = copy_list
            stack.extend((copy_list, index) for index in range(len(copy_list)))
    return root[0]


class MaskingFilter(logging.Filter):
    """Masks each record's message (its arguments merged in) and traceback.

    Admin patterns are used as cached (saving one caches the new set again);
    a failure to read them falls back to the built-in patterns, never to the
    unmasked line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        # Never a query from here: any thread logs (the connector's, a server's,
        # an executor's) and a connection opened in one that never closes it
        # stays checked out of the pool for good. The admin patterns come from
        # the cache or this process's last compiled copy.
        masker: Callable[[str], str] = _cached_only
        if getattr(_local, "busy", False):
            masker = _builtin_only
        _local.busy = True
        try:
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: show it, masked
                message = f"{record.msg!s} {record.args!r}"
            try:
                masked = masker(message)
            except Exception:
                masked = _builtin_only(message)
            record.msg, record.args = masked, None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = _builtin_only(record.exc_text)
        finally:
            _local.busy = False
        return True


def _cached_only(text: str) -> str:
    return _mask(text, with_admin=True, query=False)


def _builtin_only(text: str) -> str:
    return _mask(text, with_admin=False)
