"""The reports page's range: today, 7 or 30 days, or two dates (local days)."""

from __future__ import annotations

from datetime import date, timedelta

from django import forms
from django.utils.translation import gettext_lazy as _

# The longest custom range (the rollup holds a row per day and platform).
MAX_DAYS = 366


class RangeForm(forms.Form):
    RANGES = [
        ("today", _("Today")),
        ("7d", _("7 days")),
        ("30d", _("30 days")),
        ("custom", _("Custom")),
    ]

    range = forms.ChoiceField(choices=RANGES, required=False, label=_("Range"))
    start = forms.DateField(
        required=False,
        label=_("From"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    end = forms.DateField(
        required=False, label=_("To"), widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: object, today: date, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.today = today

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        first, last = data.get("start"), data.get("end")
        choice = data.get("range") or "7d"
        # Dates win: a date typed in means "Custom", whatever the list said.
        if first or last or "start" in self.errors or "end" in self.errors:
            choice = "custom"
        data["range"] = choice
        if choice == "custom" and not self.errors:
            if not first:
                self.add_error("start", _("Pick the first day."))
            if not last:
                self.add_error("end", _("Pick the last day."))
            if first and last:
                assert isinstance(first, date) and isinstance(last, date)
                if last < first:
                    self.add_error("end", _("The end is before the start."))
                elif (last - first).days + 1 > MAX_DAYS:
                    too_long = _("At most %(days)s days at a time.")
                    self.add_error("end", too_long % {"days": MAX_DAYS})
        return data

    @property
    def days(self) -> tuple[date, date]:
        """(first, last) of a valid form."""
        choice = self.cleaned_data["range"]
        if choice == "custom":
            return self.cleaned_data["start"], self.cleaned_data["end"]
        span = {"today": 1, "7d": 7, "30d": 30}[choice]
        return self.today - timedelta(days=span - 1), self.today
