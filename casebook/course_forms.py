"""Forms of the course pages: start a course, stop it, mark an injection missed."""

from __future__ import annotations

from typing import cast

from django import forms

from protocols.choices import CourseStatus
from protocols.models import Course
from protocols.selectors import active_protocols

from .forms import RecordForm


class CourseStartForm(RecordForm):
    future_dates = frozenset({"start_date"})

    class Meta:
        model = Course
        fields = ["version", "protocol", "start_date"]
        help_texts = {"start_date": "The day of the first injection; the calendar is planned from it."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = cast(forms.ModelChoiceField, self.fields["protocol"])
        field.queryset = active_protocols(self.instance.patient.study.disease_area)
        field.empty_label = None


class CourseStopForm(RecordForm):
    class Meta:
        model = Course
        fields = ["version", "ended_on", "stop_reason", "stop_note"]
        labels = {"ended_on": "Stopped on", "stop_reason": "Why"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["ended_on"].required = True
        self.fields["stop_reason"].required = True

    def clean(self):
        # The model's rules are those of a stopped course (a date and a reason).
        self.instance.status = CourseStatus.STOPPED
        return super().clean()


class InjectionMissedForm(forms.Form):
    deviation_reason = forms.CharField(
        label="Why was it not given?", max_length=300, help_text="Kept with the plan and in the audit trail."
    )
