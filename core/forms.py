"""The profile page's form: the agent's language and time zone."""

from __future__ import annotations

import zoneinfo
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from core.models import Profile


def time_zone_choices() -> list[tuple[str, str]]:
    team = _("Team time zone (%(zone)s)") % {"zone": settings.TIME_ZONE}
    return [("", team), *((z, z) for z in sorted(zoneinfo.available_timezones()))]


class ProfileForm(forms.ModelForm):
    # A list to pick from (type a few letters to jump), not a free text box.
    time_zone = forms.ChoiceField(
        label=_("Time zone"),
        choices=time_zone_choices,
        required=False,
        help_text=_("Dates and times are shown in this zone."),
    )

    class Meta:
        model = Profile
        fields = ["language", "time_zone"]
        labels = {"language": _("Language")}
        help_texts = {"language": _("The language of every page.")}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        language = self.fields["language"]
        assert isinstance(language, forms.ChoiceField)
        language.choices = [("", _("Follow my browser")), *settings.LANGUAGES]
