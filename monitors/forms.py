"""The monitor form: the URL passes the outgoing-webhook SSRF rules when saved."""

from __future__ import annotations

from typing import Any

import soupsieve
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from automations.outbound import OutboundError, check_url
from monitors.models import Monitor


class MonitorForm(forms.ModelForm):
    url = forms.URLField(
        label=gettext_lazy("URL"),
        max_length=2000,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://", "inputmode": "url"}),
        help_text=gettext_lazy(
            "http or https. Addresses inside our network are refused."
        ),
    )

    class Meta:
        model = Monitor
        fields = [
            "name",
            "url",
            "selector",
            "interval_minutes",
            "is_active",
            "is_price",
            "threshold",
            "direction",
            "alerts_admin_channel",
        ]
        help_texts = {
            "is_price": gettext_lazy(
                "Read the first number of the watched text as a price "
                "(₩1,250,000, $1,299.00, 1.299,00 € and 12,900원 all work)."
            ),
            "threshold": gettext_lazy("Alert when the price crosses this."),
        }
        widgets = {
            "selector": forms.TextInput(
                attrs={"placeholder": "#price, .product h1", "spellcheck": "false"}
            ),
            "threshold": forms.NumberInput(attrs={"step": "any"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        minimum = settings.MONITORS_MIN_INTERVAL_MINUTES
        interval = self.fields["interval_minutes"]
        interval.help_text = _("At least %(minutes)d minutes.") % {"minutes": minimum}
        interval.widget.attrs["min"] = minimum
        # Threshold and direction show only while this is ticked (edit.html).
        self.fields["is_price"].widget.attrs["aria-controls"] = "price-fields"
        # Checked as the lead leaves the field (the SSRF refusal shows inline).
        validate = reverse("monitors:monitor-validate")
        for name in ("url", "selector", "interval_minutes"):
            self.fields[name].widget.attrs.update(
                {
                    "hx-post": validate,
                    "hx-trigger": "change",
                    "hx-target": f"#id_{name}_errors",
                    "hx-swap": "innerHTML",
                    "hx-sync": "this:replace",
                }
            )

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            check_url(url)
        except OutboundError as exc:
            raise ValidationError(
                _("This address cannot be monitored: %(reason)s"),
                params={"reason": str(exc)},
                code="refused",
            ) from exc
        return url

    def clean_selector(self) -> str:
        selector = self.cleaned_data["selector"].strip()
        if selector:
            try:
                soupsieve.compile(selector)
            except soupsieve.SelectorSyntaxError as exc:
                raise ValidationError(
                    _("Not a CSS selector: %(reason)s"),
                    params={"reason": str(exc).splitlines()[0]},
                    code="selector",
                ) from exc
        return selector

    def clean_interval_minutes(self) -> int:
        minutes = self.cleaned_data["interval_minutes"]
        minimum = settings.MONITORS_MIN_INTERVAL_MINUTES
        if minutes < minimum:
            raise ValidationError(
                _("Check at most every %(minutes)d minutes."),
                params={"minutes": minimum},
                code="too_often",
            )
        return minutes

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("is_price") and data.get("threshold") is None:
            self.add_error("threshold", _("A price watch needs a threshold."))
        return data
