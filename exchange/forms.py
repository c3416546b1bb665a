"""Forms of the import and export pages."""

from typing import Any, cast

from django import forms
from django.db.models import QuerySet

from accounts.access import Capability, has_capability, scope
from accounts.models import Site
from analytics.deidentify import DateHandling
from registry.models import Study


def _studies_at(sites) -> QuerySet[Study]:
    return Study.objects.filter(sites__in=sites).distinct()


class ImportForm(forms.Form):
    study = forms.ModelChoiceField(queryset=Study.objects.none())
    site = forms.ModelChoiceField(
        queryset=Site.objects.none(), help_text="New patients are enrolled at this site."
    )
    file = forms.FileField(
        help_text="CSV (one table, named after it), XLSX (a sheet per table) or a zip of CSVs — "
        "or, for REDCap, the records CSV."
    )
    redcap_dictionary = forms.FileField(required=False, label="REDCap data dictionary (CSV)")
    redcap_mapping = forms.FileField(required=False, label="REDCap mapping (JSON)")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        sites = scope(Site.objects.all(), user, Capability.MANAGE_SITE)
        cast(forms.ModelChoiceField, self.fields["site"]).queryset = sites
        cast(forms.ModelChoiceField, self.fields["study"]).queryset = _studies_at(sites)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data  # what Form.clean() returns
        if bool(data.get("redcap_dictionary")) != bool(data.get("redcap_mapping")):
            raise forms.ValidationError(
                "A REDCap import needs both its data dictionary and the mapping file."
            )
        study, site = data.get("study"), data.get("site")
        if study and site and not study.sites.filter(pk=site.pk).exists():
            self.add_error("site", f"{site} does not take part in {study.code}.")
        return data


class ExportForm(forms.Form):
    FORMATS = [
        ("csv", "CSV (zip)"),
        ("xlsx", "Excel workbook"),
        ("sav", "SPSS (.sav, zip)"),
        ("dta", "Stata (.dta, zip)"),
    ]

    study = forms.ModelChoiceField(queryset=Study.objects.none())
    format = forms.ChoiceField(choices=FORMATS)
    dates = forms.ChoiceField(
        choices=[
            (DateHandling.SHIFT, "Shifted by a secret offset per patient (intervals kept)"),
            (DateHandling.DAYS, "Days from the index admission"),
        ],
        initial=DateHandling.SHIFT,
    )
    free_text = forms.BooleanField(
        required=False,
        label="Include free text (other-specify terms, drug names, MRI findings, notes, …)",
        help_text="Warning: free text is typed by staff and may contain names, dates or other identifiers. "
        "Read it before you share the export.",
    )
    identified = forms.BooleanField(
        required=False, label="Identified export: names, MRNs, exact dates, free text"
    )
    reason = forms.CharField(
        required=False,
        max_length=200,
        label="Reason for the identified export",
        help_text="Required for an identified export; recorded with who took it, the tables and the patients.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        ids = set()
        for capability in (Capability.VIEW_RECORDS, Capability.RUN_REPORTS):
            ids |= set(scope(Site.objects.all(), user, capability).values_list("pk", flat=True))
        #: The studies this user may export (none: the page is refused).
        self.studies = _studies_at(ids)
        cast(forms.ModelChoiceField, self.fields["study"]).queryset = self.studies
        if not has_capability(user, Capability.EXPORT_IDENTIFIERS):
            del self.fields["identified"], self.fields["reason"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data  # what Form.clean() returns
        if data.get("identified") and not (data.get("reason") or "").strip():
            self.add_error("reason", "Give the reason for taking identified data out of the registry.")
        return data
