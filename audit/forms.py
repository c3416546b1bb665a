"""Filters of the history page and the audit export."""

from typing import cast

from django import forms

from accounts.access import Capability, scope
from registry.action_events import ActionKind
from registry.choices import Section
from registry.models import Study

from .timeline import CHANGES, EVENTS

SECTIONS = [("", "All sections"), *Section.choices]
KINDS = [
    ("", "Changes and actions"),
    (CHANGES, "Field changes"),
    (EVENTS, "All actions"),
    *ActionKind.choices,
]


class TimelineFilterForm(forms.Form):
    kind = forms.ChoiceField(choices=KINDS, required=False, label="Kind")
    section = forms.ChoiceField(choices=SECTIONS, required=False)
    user = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Changed by")

    def __init__(self, *args, users, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.TypedChoiceField, self.fields["user"]).choices = [("", "Anyone"), *users]


class AuditExportForm(forms.Form):
    study = forms.ModelChoiceField(queryset=Study.objects.none())
    date_from = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From (UTC)"
    )
    date_to = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To (UTC)"
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        studies = Study.objects.none()
        for capability in (Capability.REVIEW, Capability.MANAGE_SITE):
            studies = studies | scope(Study.objects.all(), user, capability)
        cast(forms.ModelChoiceField, self.fields["study"]).queryset = studies.distinct()

    def clean(self):
        data = super().clean() or {}
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return data
