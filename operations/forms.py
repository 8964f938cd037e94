from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from operations.models import ChatCommand


class CommandFilterForm(forms.Form):
    outcome = forms.ChoiceField(
        label=_("Outcome"),
        required=False,
        choices=[("", _("All outcomes")), *ChatCommand.Outcome.choices],
    )

    @property
    def outcome_filter(self) -> str:
        return self.cleaned_data["outcome"] if self.is_valid() else ""
