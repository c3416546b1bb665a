"""The repeating records a case record holds, and which section of the page each belongs to."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models

from registry.choices import DiseaseArea, Section
from registry.models import (
    AdverseEvent,
    CarTInfusion,
    CrsAssessment,
    DischargeOutcome,
    FollowUpEvent,
    IcansAssessment,
    Patient,
    ResponseAssessment,
    Sledai2kAssessment,
    SystemicTherapy,
)

from . import forms

#: The page's sections, in order.
#: Section key → title, in page order (the sections themselves are registry.choices.Section).
SECTIONS: dict[str, str] = dict(Section.choices)


@dataclass(frozen=True)
class RecordKind:
    slug: str
    model: type[models.Model]
    form: type[forms.RecordForm]
    section: str
    label: str
    template: str = "casebook/forms/record_form.html"
    areas: frozenset[str] | None = None  # None: every study
    single: bool = False  # at most one per patient (e.g. the discharge)

    def applies_to(self, patient: Patient) -> bool:
        return self.areas is None or patient.study.disease_area in self.areas

    def records(self, patient: Patient) -> models.QuerySet:
        return self.model._default_manager.filter(patient=patient)


KINDS: dict[str, RecordKind] = {
    kind.slug: kind
    for kind in (
        RecordKind(
            "sledai",
            Sledai2kAssessment,
            forms.SledaiForm,
            "diagnosis",
            "SLEDAI-2K assessment",
            template="casebook/forms/sledai_form.html",
            areas=frozenset({DiseaseArea.NPSLE}),
        ),
        RecordKind(
            "infusion",
            CarTInfusion,
            forms.CarTInfusionForm,
            "diagnosis",
            "CAR-T infusion",
            areas=frozenset({DiseaseArea.ICANS}),
        ),
        RecordKind(
            "icans",
            IcansAssessment,
            forms.IcansAssessmentForm,
            "diagnosis",
            "ICANS assessment",
            template="casebook/forms/icans_form.html",
            areas=frozenset({DiseaseArea.ICANS}),
        ),
        RecordKind(
            "crs",
            CrsAssessment,
            forms.CrsAssessmentForm,
            "diagnosis",
            "CRS assessment",
            template="casebook/forms/crs_form.html",
            areas=frozenset({DiseaseArea.ICANS}),
        ),
        RecordKind("therapy", SystemicTherapy, forms.SystemicTherapyForm, "therapy", "systemic therapy"),
        RecordKind(
            "adverse-event",
            AdverseEvent,
            forms.AdverseEventForm,
            "safety",
            "adverse event",
            template="casebook/forms/adverse_event_form.html",
        ),
        RecordKind(
            "discharge",
            DischargeOutcome,
            forms.DischargeOutcomeForm,
            "outcomes",
            "discharge outcome",
            single=True,
        ),
        RecordKind(
            "response", ResponseAssessment, forms.ResponseAssessmentForm, "outcomes", "response assessment"
        ),
        RecordKind("follow-up", FollowUpEvent, forms.FollowUpEventForm, "outcomes", "follow-up event"),
    )
}
