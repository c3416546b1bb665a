"""The cohort filter of a report page, and saving a filtered view as a report definition."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError

from accounts.models import Site
from analytics.datasets import data_dictionary
from analytics.models import ReportDefinition
from analytics.reports.base import StudyReport
from analytics.reports.filters import FilterError, as_line, canonical, parse_conditions
from registry.choices import DiseaseArea, IntrathecalDrug, NpsleSyndrome
from registry.models import Study

#: Filters with a field of their own; every other filter is a line of "conditions".
FIELD_FILTERS = ("site", "index_from", "index_to", "syndromes", "it_drug")


class ReportFilterForm(forms.Form):
    """Site, index-date range, syndromes, intrathecal drug, any dataset column, and the options.

    Sites offered are the study's sites where the person may run reports; whatever is chosen,
    the dataset never holds other sites' patients (the runner scopes it).
    """

    site = forms.MultipleChoiceField(label="Sites", required=False, widget=forms.CheckboxSelectMultiple)
    index_from = forms.DateField(
        label="Index admission from", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    index_to = forms.DateField(label="to", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    syndromes = forms.MultipleChoiceField(
        label="NPSLE syndromes (any of)",
        required=False,
        choices=NpsleSyndrome.choices,
        widget=forms.SelectMultiple(attrs={"size": 6}),
    )
    it_drug = forms.MultipleChoiceField(
        label="Intrathecal drug",
        required=False,
        choices=[c for c in IntrathecalDrug.choices if c[0] != IntrathecalDrug.DEXAMETHASONE],
        widget=forms.CheckboxSelectMultiple,
    )
    conditions = forms.CharField(
        label="Other conditions",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "age>=18\nsex_male=1"}),
        help_text="One per line, on any column of the data dictionary: age>=18, sex_male=1, "
        "mutation_class=EGFR,ALK (a comma means any of).",
    )

    def __init__(
        self, *args, study: Study, sites: Iterable[Site], report: type[StudyReport], **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.study = study
        self.dictionary = data_dictionary(study)
        cast(forms.MultipleChoiceField, self.fields["site"]).choices = [
            (site.code, site.name) for site in sites
        ]
        if study.disease_area != DiseaseArea.NPSLE:
            del self.fields["syndromes"]
        if "it_drug" not in {variable.name for variable in self.dictionary}:
            del self.fields["it_drug"]
        for spec in report.option_specs:
            self.fields[spec.name] = forms.ChoiceField(
                label=spec.label, choices=spec.choices, initial=spec.default, required=False
            )

    @classmethod
    def initial_for(cls, filters: Mapping[str, Any], options: Mapping[str, str]) -> dict[str, Any]:
        """Form values showing a stored definition's filters and options."""
        initial: dict[str, Any] = {key: filters[key] for key in FIELD_FILTERS if key in filters}
        others = [as_line(key, value) for key, value in filters.items() if key not in FIELD_FILTERS]
        return initial | {"conditions": "\n".join(others)} | dict(options)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data  # what Form.clean() returns
        start, end = data.get("index_from"), data.get("index_to")
        if start and end and start > end:
            self.add_error("index_to", "The end of the index-date range is before its start.")
        filters: dict[str, Any] = {
            "site": data.get("site"),
            "index_from": start.isoformat() if start else None,
            "index_to": end.isoformat() if end else None,
            "syndromes": data.get("syndromes"),
            "it_drug": data.get("it_drug"),
        }
        try:
            filters |= parse_conditions(data.get("conditions", "").splitlines(), self.dictionary)
        except FilterError as exc:
            self.add_error("conditions", str(exc))
        self.filters = canonical(filters)
        self.options = {
            name: data[name] for name in self.fields if name not in self.base_fields and name in data
        }
        return data


class SaveDefinitionForm(forms.Form):
    """The name under which a filtered view is saved as a report definition."""

    name = forms.CharField(label="Save this view as", max_length=200)

    def __init__(self, *args, study: Study, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.study = study

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if ReportDefinition.objects.filter(study=self.study, name=name).exists():
            raise ValidationError(
                f"The {self.study.code} study already has a report called {name!r}; choose another name."
            )
        return name
