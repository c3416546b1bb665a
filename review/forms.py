"""Forms of the review workflow."""

from typing import Any, cast

from django import forms
from django.db.models import QuerySet

from accounts.models import Site
from registry.formatting import sentence
from registry.models import Study

from .models import QueryStatus, ReviewStatus, Section, SignatureMeaning


class LockForm(forms.Form):
    sections = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, label="Sections to lock")
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        label="Your password (electronic signature)",
    )

    def __init__(self, *args, verified: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.MultipleChoiceField, self.fields["sections"]).choices = [
            (s, Section(s).label) for s in verified
        ]
        self.fields["sections"].initial = verified
        self.meaning = SignatureMeaning.REVIEW_AND_LOCK.label


class UnlockForm(forms.Form):
    """Unlocking is signed like locking (21 CFR 11.50): the reason, the password again, the meaning shown."""

    reason = forms.CharField(
        max_length=300,
        label="Reason for unlocking",
        help_text="Kept with the unlocking signature and in the section's history.",
    )
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        label="Your password (electronic signature)",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.meaning = SignatureMeaning.UNLOCK.label


class QueryRaiseForm(forms.Form):
    field_name = forms.ChoiceField(required=False, label="Field")
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Question")

    def __init__(self, *args, record=None, **kwargs):
        super().__init__(*args, **kwargs)
        if record is None:
            del self.fields["field_name"]
        else:
            cast(forms.ChoiceField, self.fields["field_name"]).choices = [("", "The record as a whole")] + [
                (f.name, sentence(f.verbose_name))
                for f in record._meta.concrete_fields
                if f.editable and f.name not in ("id", "version", "patient")
            ]


class QueryReplyForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Reply", required=False)


class QueryListForm(forms.Form):
    study = forms.ModelChoiceField(queryset=Study.objects.none(), required=False, empty_label="All studies")
    status = forms.ChoiceField(choices=[("", "Open and answered"), *QueryStatus.choices], required=False)

    def __init__(self, *args, studies, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["study"]).queryset = studies


class QualitySweepForm(forms.Form):
    """Which study a reviewer's data-quality sweep covers (blank: every study they review)."""

    study = forms.ModelChoiceField(queryset=Study.objects.none(), required=False)

    def __init__(self, *args, studies, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["study"]).queryset = studies


class RecordStatusForm(forms.Form):
    """Filters and order of the record-status grid."""

    SORTS = [
        ("patient", "Patient"),
        ("study", "Study"),
        ("site", "Site"),
        ("-updated", "Changed most recently"),
        ("-queries", "Most open queries"),
    ]

    study = forms.ModelChoiceField(queryset=Study.objects.none(), required=False, empty_label="All studies")
    site = forms.ModelChoiceField(queryset=Site.objects.none(), required=False, empty_label="All sites")
    status = forms.ChoiceField(
        choices=[("", "Any status"), *ReviewStatus.choices], required=False, label="A section is"
    )
    open_queries = forms.BooleanField(required=False, label="Has open queries")
    sort = forms.ChoiceField(choices=SORTS, required=False, label="Order")

    def __init__(self, *args: Any, studies: QuerySet[Study], sites: QuerySet[Site], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["study"]).queryset = studies
        cast(forms.ModelChoiceField, self.fields["site"]).queryset = sites
