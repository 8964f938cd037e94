"""Matching triggers against customer messages, in linear time, and running them.

Every pattern is RE2: no backtracking, so the time to match grows with the
text, never exponentially with a lead's pattern. All enabled triggers'
patterns go into one ``re2.Set``, so a message is scanned once whatever the
number of triggers; only the triggers whose patterns hit are looked at again
(for the span to show and for "all patterns" triggers). The compiled set is
kept per process and rebuilt when any trigger changes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import re2
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from automations.models import (
    BACKTEST_BATCH,
    BACKTEST_SAMPLES,
    Backtest,
    Trigger,
    TriggerRun,
    excerpt,
)
from inbox.models import Conversation, Message

log = logging.getLogger(__name__)

MAX_PATTERN_CHARS = 500
MAX_PATTERNS = 50


def _options(case_sensitive: bool = True) -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = case_sensitive
    # A pattern's compiled program is capped (RE2 refuses larger ones).
    options.max_mem = 8 << 20
    return options


@dataclass
class PatternProblem:
    message: str
    position: int | None = None


def check_pattern(pattern: str) -> PatternProblem | None:
    """Why RE2 cannot run ``pattern`` (with where, when it can tell), or ``None``."""
    if not pattern:
        return PatternProblem(_("A pattern cannot be empty."))
    if len(pattern) > MAX_PATTERN_CHARS:
        return PatternProblem(
            _("A pattern is at most %(limit)d characters.")
            % {"limit": MAX_PATTERN_CHARS},
            MAX_PATTERN_CHARS,
        )
    try:
        regex = re2.compile(pattern, _options())
    except re2.error as exc:
        reason = _error_text(exc)
        return PatternProblem(_explain(reason), _position(pattern, reason))
    if regex.search("") is not None:
        return PatternProblem(
            _("This pattern matches an empty text, so it would fire on every message.")
        )
    return None


def _error_text(exc: re2.error) -> str:
    raw = exc.args[0] if exc.args else str(exc)
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _explain(reason: str) -> str:
    said = reason[:1].upper() + reason[1:]
    if "invalid escape sequence: \\" in reason and reason[-1:].isdigit():
        return _(
            "%(reason)s: backreferences are not supported (they can take "
            "exponential time)."
        ) % {"reason": said}
    if "invalid perl operator: (?=" in reason or "(?!" in reason:
        return _("%(reason)s: lookahead is not supported.") % {"reason": said}
    if "(?<" in reason and "(?<P" not in reason:
        return _("%(reason)s: lookbehind is not supported.") % {"reason": said}
    return said + "."


def _position(pattern: str, reason: str) -> int | None:
    # RE2 names the offending fragment after the colon: find it in the pattern.
    _, _, fragment = reason.partition(": ")
    if fragment:
        index = pattern.find(fragment)
        if index >= 0:
            return index
        index = pattern.find(fragment[:2])
        if index >= 0:
            return index
    return None


def flagged(pattern: str, case_sensitive: bool) -> str:
    return pattern if case_sensitive else f"(?i:{pattern})"


@dataclass
class Match:
    pattern: str
    start: int
    end: int


@dataclass
class CompiledTrigger:
    trigger: Trigger
    regexes: list[Any]
    patterns: list[str]

    def matches(self, text: str, hits: set[int] | None = None) -> list[Match]:
        """Spans of the trigger's patterns in ``text`` (its rule: any or all).

        ``hits`` are the indexes the set match found, so patterns that did not
        match are not searched again.
        """
        found: list[Match] = []
        for index, (pattern, regex) in enumerate(
            zip(self.patterns, self.regexes, strict=True)
        ):
            if hits is not None and index not in hits:
                if self.trigger.match_mode == Trigger.MatchMode.ALL:
                    return []
                continue
            m = regex.search(text)
            if m is None:
                if self.trigger.match_mode == Trigger.MatchMode.ALL:
                    return []
                continue
            found.append(Match(pattern, m.start(), m.end()))
        return found

    def first_match(self, text: str, hits: set[int]) -> Match | None:
        """The first hit pattern's span, for the run's record (one search)."""
        for index in sorted(hits):
            m = self.regexes[index].search(text)
            if m is not None:
                return Match(self.patterns[index], m.start(), m.end())
        return None

    def fires(self, hits: set[int]) -> bool:
        if self.trigger.match_mode == Trigger.MatchMode.ALL:
            return len(hits) == len(self.patterns)
        return bool(hits)


def compile_trigger(trigger: Trigger) -> CompiledTrigger:
    options = _options(trigger.case_sensitive)
    return CompiledTrigger(
        trigger=trigger,
        regexes=[re2.compile(p, options) for p in trigger.patterns],
        patterns=list(trigger.patterns),
    )


@dataclass
class Ruleset:
    """Every enabled trigger, compiled once, behind one RE2 set."""

    key: tuple[Any, ...]
    compiled: list[CompiledTrigger] = field(default_factory=list)
    # Set index → (position in ``compiled``, pattern index in that trigger).
    owners: list[tuple[int, int]] = field(default_factory=list)
    regex_set: Any = None
    # Patterns too big for the shared set, searched one by one: (position,
    # pattern index, regex, literals one of which it requires, caseless).
    heavy: list[tuple[int, int, Any, tuple[str, ...], bool]] = field(
        default_factory=list
    )

    @classmethod
    def build(cls, triggers: list[Trigger], key: tuple[Any, ...]) -> Ruleset:
        ruleset = cls(key=key)
        regex_set = re2.Set.SearchSet(_options())
        for trigger in triggers:
            try:
                compiled = compile_trigger(trigger)
            except re2.error:
                # Saved before validation existed, or edited in the admin: skip
                # it here; the editor shows the error.
                log.warning("trigger %s has a pattern RE2 refuses", trigger.pk)
                continue
            position = len(ruleset.compiled)
            ruleset.compiled.append(compiled)
            for index, regex in enumerate(compiled.regexes):
                if regex.programsize > SET_PROGRAM_LIMIT:
                    pattern = trigger.patterns[index]
                    # Inline flags may turn case off inside: compare folded.
                    caseless = not trigger.case_sensitive or "(?" in pattern
                    literals = required_literals(pattern)
                    if caseless:
                        literals = tuple(word.casefold() for word in literals)
                    ruleset.heavy.append((position, index, regex, literals, caseless))
                    continue
                regex_set.Add(flagged(trigger.patterns[index], trigger.case_sensitive))
                ruleset.owners.append((position, index))
        if ruleset.owners:
            regex_set.Compile()
            ruleset.regex_set = regex_set
        return ruleset

    def candidates(self, text: str) -> list[tuple[CompiledTrigger, set[int]]]:
        """Triggers with at least one pattern in ``text``, in priority order."""
        by_trigger: dict[int, set[int]] = {}
        if self.regex_set is not None:
            for hit in self.regex_set.Match(text) or []:
                position, index = self.owners[hit]
                by_trigger.setdefault(position, set()).add(index)
        folded: str | None = None
        for position, index, regex, literals, caseless in self.heavy:
            if literals:
                # Cheap first: a big pattern cannot match text lacking every
                # literal it requires (casefold covers RE2's case folding).
                if caseless:
                    folded = text.casefold() if folded is None else folded
                    haystack = folded
                else:
                    haystack = text
                if not any(literal in haystack for literal in literals):
                    continue
            if regex.search(text) is not None:
                by_trigger.setdefault(position, set()).add(index)
        return [(self.compiled[p], by_trigger[p]) for p in sorted(by_trigger)]

    def match(self, text: str) -> list[tuple[CompiledTrigger, set[int]]]:
        """Triggers that fire on ``text`` (any or all of their patterns), in order.

        The set already says which patterns occur, so deciding needs no
        second search; the span of a trigger that runs is found later, once.
        """
        return [
            (compiled, hits)
            for compiled, hits in self.candidates(text)
            if compiled.fires(hits)
        ]


def required_literals(pattern: str) -> tuple[str, ...]:
    """Strings of which every match of ``pattern`` contains at least one.

    Read from the top level of the pattern only: a run of plain characters
    (``order.{0,40}missing`` needs "missing"), or a group of plain
    alternatives (``(refund|환불).{0,40}(now|today)`` needs "now" or
    "today"); the most selective one is kept. The parse is Python's, which
    reads RE2's syntax for these simple pieces; a pattern it cannot parse
    gets no literals and is simply always searched.
    """
    # Python's own regex parser: private modules, pinned by a test
    # (test_engine.py). Gone in some future Python: no prefilter, same results.
    try:
        import re._constants as constants
        import re._parser as parser
    except ImportError:
        return ()
    try:
        parsed = parser.parse(pattern)
    except Exception:  # noqa: BLE001 - RE2 syntax Python lacks: no prefilter
        return ()
    options: list[tuple[str, ...]] = []
    run: list[str] = []
    for op, value in parsed:
        if op is constants.LITERAL:
            run.append(chr(value))
            continue
        if run:
            options.append(("".join(run),))
            run = []
        if op is constants.SUBPATTERN:
            alternatives = _plain_alternatives(value[-1], constants)
            if alternatives:
                options.append(alternatives)
    if run:
        options.append(("".join(run),))
    options = [o for o in options if min(map(len, o)) >= 2]
    if not options:
        return ()
    return max(options, key=lambda o: (min(map(len, o)), -len(o)))


def _plain_alternatives(sub: Any, constants: Any) -> tuple[str, ...]:
    """``a|bc|def`` made of plain characters only, as ("a", "bc", "def")."""
    items = list(sub)
    branches = [items]
    if len(items) == 1 and items[0][0] is constants.BRANCH:
        branches = [list(branch) for branch in items[0][1][1]]
    words = []
    for branch in branches:
        if not branch or any(op is not constants.LITERAL for op, _ in branch):
            return ()
        words.append("".join(chr(value) for _, value in branch))
    return tuple(words)


# A pattern whose compiled program is bigger than this (counted repetition such
# as ``refund.{0,40}now``) would multiply the states of the shared set's
# automaton and slow every message down (measured: 40x at 1,000 triggers);
# it is searched on its own instead, still in linear time.
SET_PROGRAM_LIMIT = 120

_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()


def ruleset() -> Ruleset:
    """The current ruleset, rebuilt when a trigger changes.

    One cheap query tells whether anything changed, asked at most once per
    AUTOMATIONS_RULESET_TTL_SECONDS: a worker matching hundreds of messages a
    second does not pay it on each (it cost as much as the matching).
    """
    from django.db.models import Count, Max

    current = _cache.get("ruleset")
    ttl = settings.AUTOMATIONS_RULESET_TTL_SECONDS
    if current is not None and time.monotonic() - _cache["checked"] < ttl:
        return current
    state = Trigger.objects.enabled().aggregate(
        n=Count("pk"), changed=Max("updated_at"), versions=Max("version")
    )
    key = (state["n"], state["changed"], state["versions"])
    _cache["checked"] = time.monotonic()
    if current is not None and current.key == key:
        return current
    with _cache_lock:
        current = _cache.get("ruleset")
        if current is None or current.key != key:
            triggers = list(Trigger.objects.enabled().in_order())
            current = Ruleset.build(triggers, key)
            _cache["ruleset"] = current
    return current


def forget() -> None:
    """Drop the compiled ruleset (tests)."""
    _cache.clear()


def capped(text: str) -> str:
    return text[: settings.AUTOMATIONS_MATCH_CHARS]


# --- running -------------------------------------------------------------------


def may_trigger(message: Message) -> bool:
    """Only customers' own words trigger; never outbound, bot or action output.

    Messages an action produced carry ``metadata.automation.depth``; past the
    depth limit nothing runs, whatever the direction (a loop guard for
    gateways that echo our replies back).
    """
    if message.direction != Message.Direction.INBOUND:
        return False
    if message.author != Message.Author.CUSTOMER:
        return False
    if message.kind not in (Message.Kind.TEXT, Message.Kind.MEDIA):
        return False
    depth = (message.metadata.get("automation") or {}).get("depth", 0)
    return depth < settings.AUTOMATIONS_MAX_DEPTH


def run_for_message(message: Message) -> list[TriggerRun]:
    """Match ``message`` and run the triggers that apply, in priority order.

    Honours platforms, conversation states, run-once, cooldown, stop-after-
    match and a per-conversation ceiling on actions per minute. Each run is
    claimed by inserting its TriggerRun row first: a redelivered job finds
    it and acts no more.
    """
    from automations.actions import perform

    if not may_trigger(message):
        return []
    text = capped(message.text)
    if not text:
        return []
    conversation = message.conversation
    runs: list[TriggerRun] = []
    for compiled, hits in ruleset().match(text):
        trigger = compiled.trigger
        if not trigger.applies_to_platform(conversation.platform):
            continue
        conversation.refresh_from_db(fields=["status", "assignee"])
        if trigger.states and conversation.status not in trigger.states:
            continue
        if _held_back(trigger, conversation):
            continue
        started = time.perf_counter()
        found = compiled.first_match(text, hits)
        if found is None:  # the set and the regex disagree: cannot happen
            continue
        run = _claim(trigger, message, found)
        if run is None:
            # Already acted on this message (a redelivered job).
            if trigger.stop_after_match:
                break
            continue
        results = []
        for index, action in enumerate(trigger.actions):
            results.append(perform(action, trigger=trigger, run=run, step=index))
        run.results = results
        run.error = "; ".join(r["error"] for r in results if r.get("error"))[:2000]
        run.duration_ms = (time.perf_counter() - started) * 1000
        run.save(update_fields=["results", "error", "duration_ms"])
        runs.append(run)
        if trigger.stop_after_match:
            break
    return runs


def _held_back(trigger: Trigger, conversation: Conversation) -> bool:
    earlier = TriggerRun.objects.filter(trigger=trigger, conversation=conversation)
    if trigger.run_once and earlier.exists():
        return True
    now = timezone.now()
    if (
        trigger.cooldown_seconds
        and earlier.filter(
            created_at__gte=now - timedelta(seconds=trigger.cooldown_seconds)
        ).exists()
    ):
        return True
    # The ceiling counts actions (a run's recorded results, or its trigger's
    # actions while it is still running), not runs: three triggers of five
    # actions each are fifteen things done to one customer.
    ceiling = settings.AUTOMATIONS_MAX_ACTIONS_PER_MINUTE
    recent = TriggerRun.objects.filter(
        conversation=conversation, created_at__gte=now - timedelta(minutes=1)
    ).values_list("results", "trigger__actions")
    done = sum(len(results) or len(actions) for results, actions in recent)
    if done + len(trigger.actions) > ceiling:
        log.warning(
            "conversation %s hit the ceiling of %s trigger actions a minute",
            conversation.pk,
            ceiling,
        )
        return True
    return False


def _claim(trigger: Trigger, message: Message, match: Match) -> TriggerRun | None:
    try:
        with transaction.atomic():
            return TriggerRun.objects.create(
                trigger=trigger,
                message=message,
                conversation=message.conversation,
                trigger_version=trigger.version,
                matched_pattern=match.pattern,
                span_start=match.start,
                span_end=match.end,
            )
    except IntegrityError:
        return None


# --- try it and backtest -----------------------------------------------------------


def highlight_spans(text: str, regexes: list[Any]) -> list[tuple[int, int]]:
    """Every non-overlapping match span of every pattern in ``text``, merged."""
    spans: list[tuple[int, int]] = []
    for regex in regexes:
        for m in regex.finditer(text):
            if m.end() > m.start():
                spans.append((m.start(), m.end()))
            if len(spans) > 500:
                break
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


# --- backtests -------------------------------------------------------------------


def run_backtest(backtest: Backtest) -> None:
    """Match a backtest's draft against ``n`` messages; progress saved per batch.

    Starts from the beginning when called again (a worker died midway and
    Dramatiq redelivered the job): the counts are replaced, never added to.
    """
    compiled = compile_trigger(
        Trigger(
            patterns=backtest.draft["patterns"],
            match_mode=backtest.draft.get("match_mode", Trigger.MatchMode.ANY),
            case_sensitive=backtest.draft.get("case_sensitive", False),
            platforms=backtest.draft.get("platforms") or [],
        )
    )
    messages = backtest.messages()
    total = messages[: backtest.n].count()
    progress = Backtest.objects.filter(pk=backtest.pk)
    progress.update(
        state=Backtest.State.RUNNING,
        total=total,
        processed=0,
        matched=0,
        samples=[],
        error="",
    )
    processed = matched = 0
    samples: list[dict[str, Any]] = []
    batch_query = messages
    while processed < total:
        batch = list(
            batch_query.values_list(
                "pk", "text", "conversation_id", "conversation__platform"
            )[: min(BACKTEST_BATCH, total - processed)]
        )
        if not batch:
            break
        for pk, text, conversation_id, platform in batch:
            text = capped(text)
            if not compiled.matches(text):
                continue
            matched += 1
            if len(samples) < BACKTEST_SAMPLES:
                spans = highlight_spans(text, compiled.regexes)
                samples.append(
                    {
                        "message": pk,
                        "conversation": conversation_id,
                        "platform": platform,
                        **excerpt(text, spans),
                    }
                )
        processed += len(batch)
        batch_query = messages.filter(pk__lt=batch[-1][0])
        progress.update(processed=processed, matched=matched, samples=samples)
    progress.update(
        state=Backtest.State.DONE,
        total=processed,
        finished_at=timezone.now(),
    )
    backtest.refresh_from_db()
