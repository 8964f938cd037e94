"""The editor's forms: a trigger, its draft (for try-it and backtest), its actions.

Patterns come one a line from a textarea; actions come as rows named
``action-<key>-<field>`` with a hidden ``action`` per row giving the keys in
page order, so rows can be added and removed without renumbering the rest.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.utils.functional import Promise
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from automations import engine
from automations.actions import ACTION_TYPES, Field, clean_action
from automations.models import Backtest, Ticket, Trigger, default_states
from inbox.models import Conversation, Platform

ACTION_KEY = re.compile(r"[a-z0-9]{1,16}")
MAX_ACTIONS = 10
MAX_COOLDOWN = 30 * 24 * 3600


# --- patterns --------------------------------------------------------------------


@dataclass
class PatternProblem:
    """What is wrong with one line of the patterns textarea, and where."""

    line: int  # 1-based line of the textarea
    pattern: str
    message: str
    position: int | None = None

    @property
    def column(self) -> int | None:
        return None if self.position is None else self.position + 1

    # The pattern cut at the fault, for the caret under it.
    @property
    def before(self) -> str:
        return self.pattern[: self.position or 0]

    @property
    def at(self) -> str:
        if self.position is None:
            return ""
        return self.pattern[self.position : self.position + 1] or " "

    @property
    def after(self) -> str:
        return "" if self.position is None else self.pattern[self.position + 1 :]


def split_patterns(raw: str) -> list[tuple[int, str]]:
    """(line number, pattern) for each non-blank line; outer spaces are dropped."""
    return [
        (number, line.strip())
        for number, line in enumerate(raw.splitlines(), start=1)
        if line.strip()
    ]


def pattern_problems(lines: list[tuple[int, str]]) -> list[PatternProblem]:
    problems = []
    for number, pattern in lines:
        found = engine.check_pattern(pattern)
        if found is not None:
            problems.append(
                PatternProblem(number, pattern, found.message, found.position)
            )
    return problems


# RE2's \b is a boundary between ASCII word characters and the rest: next to
# Hangul (or any letter outside ASCII) there is never one, so "\b환불\b" can
# never match. These stand in for it around such letters, without lookaround
# (RE2 has none): not a letter, digit or underscore in any script, or an end.
WORD_EDGE_BEFORE = r"(?:^|[^\p{L}\p{N}_])"
WORD_EDGE_AFTER = r"(?:[^\p{L}\p{N}_]|$)"
_ASCII_EDGE = re.compile(r"(?<!\\)\\b")


@dataclass
class PatternWarning:
    """A pattern RE2 accepts that cannot do what it seems to (the save goes on)."""

    line: int
    pattern: str
    message: str
    suggestion: str = ""


def pattern_warnings(lines: list[tuple[int, str]]) -> list[PatternWarning]:
    warnings = []
    for number, pattern in lines:
        suggestion = _unicode_word_edges(pattern)
        if suggestion != pattern and engine.check_pattern(suggestion) is None:
            warnings.append(
                PatternWarning(
                    number,
                    pattern,
                    _(
                        "\\b is a boundary of ASCII words only: next to Hangul or "
                        "other non-ASCII letters it never matches. Korean words "
                        "usually take endings (환불해주세요), so leave it out, or use "
                        "the Unicode whole-word form."
                    ),
                    suggestion,
                )
            )
    return warnings


def _unicode_word_edges(pattern: str) -> str:
    """``pattern`` with each ``\b`` next to a non-ASCII character replaced."""
    pieces, at = [], 0
    for found in _ASCII_EDGE.finditer(pattern):
        start, end = found.span()
        after = pattern[end : end + 1]
        before = pattern[start - 1 : start] if start else ""
        if after and not after.isascii():
            pieces += [pattern[at:start], WORD_EDGE_BEFORE]
        elif before and not before.isascii():
            pieces += [pattern[at:start], WORD_EDGE_AFTER]
        else:
            continue
        at = end
    return "".join(pieces) + pattern[at:]


# --- actions ---------------------------------------------------------------------


@dataclass
class ActionField:
    field: Field
    name: str
    value: str


@dataclass
class ActionRow:
    """One action in the editor: its type, the values typed, what is wrong."""

    key: str
    type: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @classmethod
    def new(cls) -> ActionRow:
        return cls(key=secrets.token_hex(4))

    @property
    def label(self) -> str | Promise:
        action_type = ACTION_TYPES.get(self.type)
        return action_type.label if action_type else ""

    def fields(self) -> list[ActionField]:
        action_type = ACTION_TYPES.get(self.type)
        if action_type is None:
            return []
        rows = []
        for f in action_type.fields:
            value = self.values.get(f.name, "")
            if not isinstance(value, str):
                value = json.dumps(value, ensure_ascii=False)
            rows.append(ActionField(f, f"action-{self.key}-{f.name}", value))
        return rows


def action_rows(actions: list[dict[str, Any]]) -> list[ActionRow]:
    """Rows for the editor from saved actions."""
    return [
        ActionRow(key=str(index), type=a.get("type", ""), values=a)
        for index, a in enumerate(actions)
    ]


def read_action_rows(data: QueryDict) -> tuple[list[ActionRow], list[dict[str, Any]]]:
    """The rows posted, in page order, each checked; and the clean actions."""
    rows: list[ActionRow] = []
    actions: list[dict[str, Any]] = []
    for key in dict.fromkeys(data.getlist("action")):
        if not ACTION_KEY.fullmatch(key):
            continue
        kind = data.get(f"action-{key}-type", "")
        action_type = ACTION_TYPES.get(kind)
        values: dict[str, Any] = {"type": kind}
        if action_type is not None:
            for f in action_type.fields:
                values[f.name] = data.get(f"action-{key}-{f.name}", "")
        row = ActionRow(key=key, type=kind, values=values)
        if action_type is None:
            row.error = _("Choose what this action does.")
        else:
            try:
                actions.append(clean_action(values))
            except ValidationError as exc:
                row.error = " ".join(exc.messages)
        rows.append(row)
    return rows, actions


# --- forms -----------------------------------------------------------------------


class MatchForm(forms.Form):
    """What decides whether a text matches: enough for try-it and backtests."""

    platforms = forms.MultipleChoiceField(
        choices=Platform.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=gettext_lazy("Platforms"),
        help_text=gettext_lazy("None ticked: every platform."),
    )
    patterns = forms.CharField(
        label=gettext_lazy("Patterns"),
        widget=forms.Textarea,
        error_messages={"required": gettext_lazy("Add at least one pattern.")},
        max_length=engine.MAX_PATTERNS * (engine.MAX_PATTERN_CHARS + 2),
        help_text=gettext_lazy(
            "One RE2 pattern a line, e.g. 환불|refund. Spaces at either end "
            "of a line are ignored: write \\s or [ ] for a space."
        ),
    )
    match_mode = forms.ChoiceField(
        label=gettext_lazy("Fires when"),
        choices=Trigger.MatchMode.choices,
        initial=Trigger.MatchMode.ANY,
        widget=forms.RadioSelect,
    )
    case_sensitive = forms.BooleanField(
        label=gettext_lazy("Case sensitive"),
        required=False,
        help_text=gettext_lazy("Off: REFUND matches refund."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.pattern_problems: list[PatternProblem] = []
        self.pattern_warnings: list[PatternWarning] = []

    def clean_patterns(self) -> list[str]:
        lines = split_patterns(self.cleaned_data["patterns"])
        if not lines:
            raise ValidationError(_("Add at least one pattern."))
        if len(lines) > engine.MAX_PATTERNS:
            raise ValidationError(
                _("At most %(limit)d patterns.") % {"limit": engine.MAX_PATTERNS}
            )
        self.pattern_problems = pattern_problems(lines)
        self.pattern_warnings = pattern_warnings(lines)
        if self.pattern_problems:
            raise ValidationError(
                [
                    _("Line %(line)d, column %(column)d: %(message)s")
                    % {"line": p.line, "column": p.column, "message": p.message}
                    if p.column
                    else _("Line %(line)d: %(message)s")
                    % {"line": p.line, "message": p.message}
                    for p in self.pattern_problems
                ]
            )
        return [pattern for _, pattern in lines]

    def draft(self) -> dict[str, Any]:
        """The matching part of the draft, as ``Backtest.draft`` keeps it."""
        data = self.cleaned_data
        return {
            "name": str(self.data.get("name", ""))[:120],
            "patterns": data["patterns"],
            "match_mode": data["match_mode"],
            "case_sensitive": data["case_sensitive"],
            "platforms": data["platforms"],
        }

    def draft_trigger(self) -> Trigger:
        draft = self.draft()
        draft.pop("name")
        return Trigger(**draft)


class TryForm(MatchForm):
    sample = forms.CharField(
        label=gettext_lazy("Customer message"),
        max_length=20_000,
        strip=False,
        widget=forms.Textarea,
    )


class BacktestForm(MatchForm):
    n = forms.IntegerField(
        label=gettext_lazy("Messages"),
        min_value=1,
        max_value=Backtest.MAX_MESSAGES,
        initial=1_000,
        help_text=format_lazy(
            gettext_lazy("The newest stored customer messages, at most {limit}."),
            limit=f"{Backtest.MAX_MESSAGES:,}",
        ),
    )


class TriggerForm(MatchForm):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=120)
    description = forms.CharField(
        label=gettext_lazy("Description"),
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
    )
    is_enabled = forms.BooleanField(
        label=gettext_lazy("Enabled"), required=False, initial=True
    )
    states = forms.MultipleChoiceField(
        label=gettext_lazy("Conversation states"),
        choices=Conversation.Status.choices,
        required=False,
        initial=default_states,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy(
            "None ticked: any state. Bot and Escalated by default: not "
            "while an agent has the conversation."
        ),
    )
    priority = forms.IntegerField(
        label=gettext_lazy("Priority"),
        min_value=-1_000_000,
        max_value=1_000_000,
        initial=100,
        help_text=gettext_lazy("Lower runs first."),
    )
    stop_after_match = forms.BooleanField(
        label=gettext_lazy("Stop after this one"),
        required=False,
        help_text=gettext_lazy("Triggers after it do not run on the same message."),
    )
    run_once = forms.BooleanField(
        label=gettext_lazy("Once per conversation"), required=False
    )
    cooldown_seconds = forms.IntegerField(
        label=gettext_lazy("Cooldown (seconds)"),
        min_value=0,
        max_value=MAX_COOLDOWN,
        initial=0,
        help_text=gettext_lazy("Quiet time per conversation after it fires."),
    )
    # The version the editor was opened at; a save over a newer one is refused.
    base_version = forms.IntegerField(
        required=False, min_value=1, widget=forms.HiddenInput
    )

    field_order = [
        "name", "description", "is_enabled", "platforms", "states", "patterns",
        "match_mode", "case_sensitive", "priority", "stop_after_match", "run_once",
        "cooldown_seconds",
    ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.action_rows: list[ActionRow] = []

    @classmethod
    def for_trigger(cls, trigger: Trigger) -> TriggerForm:
        initial = trigger.snapshot() | {
            "patterns": "\n".join(map(str, trigger.patterns)),
            "base_version": trigger.version,
        }
        form = cls(initial=initial)
        form.action_rows = action_rows(trigger.actions)
        return form

    @classmethod
    def blank(cls) -> TriggerForm:
        form = cls()
        form.action_rows = [ActionRow.new()]
        return form

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self.action_rows, actions = read_action_rows(cast(QueryDict, self.data))
        if not self.action_rows:
            self.add_error(None, _("Add at least one action."))
        elif len(self.action_rows) > MAX_ACTIONS:
            self.add_error(
                None, _("At most %(limit)d actions.") % {"limit": MAX_ACTIONS}
            )
        elif any(row.error for row in self.action_rows):
            self.add_error(None, _("An action needs fixing: see “Then, in order”."))
        cleaned["actions"] = actions
        return cleaned

    def apply_to(self, trigger: Trigger) -> Trigger:
        data = self.cleaned_data
        for name in (
            "name", "description", "is_enabled", "platforms", "states", "patterns",
            "match_mode", "case_sensitive", "priority", "stop_after_match",
            "run_once", "cooldown_seconds", "actions",
        ):  # fmt: skip
            setattr(trigger, name, data[name])
        return trigger


class ToggleForm(forms.Form):
    is_enabled = forms.BooleanField(required=False)


class MoveForm(forms.Form):
    direction = forms.ChoiceField(
        choices=[("up", gettext_lazy("Up")), ("down", gettext_lazy("Down"))]
    )

    @property
    def step(self) -> int:
        return -1 if self.cleaned_data["direction"] == "up" else 1


class TicketFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[
            ("active", gettext_lazy("Open and pending")),
            *Ticket.Status.choices,
            ("", gettext_lazy("All")),
        ],
        required=False,
    )

    @property
    def status_filter(self) -> str:
        if not self.is_bound or not self.is_valid():
            return "active"
        return self.cleaned_data["status"]
