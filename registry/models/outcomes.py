"""Outcomes: discharge from the index admission, response assessments and follow-up events."""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from ..choices import (
    ClinicalResponse,
    CytologyResponse,
    DischargeOutcomeCode,
    DiseaseArea,
    FollowUpEventType,
    MriChange,
    NeurologicalChange,
    Section,
)
from .base import MissingCodes, RegistryRecord, missing_codes_field, patient_date_errors
from .cart import CarTInfusion
from .patients import Patient


class DischargeOutcome(RegistryRecord):
    """How the patient left the index admission."""

    review_section = Section.OUTCOMES
    patient_lookup = "patient"

    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="discharge")
    outcome = models.CharField(max_length=16, choices=DischargeOutcomeCode.choices)
    discharge_date = models.DateField()

    class Meta:
        verbose_name = "discharge outcome"

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} on {self.discharge_date:%Y-%m-%d}"

    def clean(self) -> None:
        if not self.patient_id or not self.discharge_date:
            return
        errors = patient_date_errors(self.patient, self.discharge_date, "discharge")
        if self.discharge_date < self.patient.index_admission_date:
            errors.append("Discharge cannot be before the index admission.")
        if self.outcome == DischargeOutcomeCode.DEATH and self.patient.death_date != self.discharge_date:
            errors.append("A death at discharge needs the patient's date of death recorded as the same day.")
        if errors:
            raise ValidationError({"discharge_date": errors})


class ResponseAssessment(MissingCodes, RegistryRecord):
    """A response assessment: neurology, MRI and CSF cytology (RANO-LM components), overall response."""

    review_section = Section.OUTCOMES
    patient_lookup = "patient"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="response_assessments")
    assessed_on = models.DateField()
    neurological = models.CharField(
        max_length=16, choices=NeurologicalChange.choices, default=NeurologicalChange.NOT_ASSESSED
    )
    mri = models.CharField("MRI", max_length=16, choices=MriChange.choices, default=MriChange.NOT_REVIEWED)
    csf_cytology = models.CharField(
        "CSF cytology", max_length=16, choices=CytologyResponse.choices, default=CytologyResponse.NOT_DONE
    )
    clinical_response = models.CharField(max_length=16, choices=ClinicalResponse.choices, blank=True)
    icans_remission = models.BooleanField(
        "ICANS in remission",
        null=True,
        blank=True,
        help_text="ICANS studies: grade 3–4 ICANS down to grade ≤1, or grade 1–2 back to ICE 10 "
        "(the ICANS report derives remission from the ICANS assessments by this rule).",
    )
    notes = models.TextField(blank=True)
    missing_codes = missing_codes_field()

    class Meta:
        ordering = ["patient", "assessed_on"]

    def __str__(self) -> str:
        return f"Response assessment on {self.assessed_on:%Y-%m-%d}"

    def clean(self) -> None:
        if not self.patient_id or not self.assessed_on:
            return
        errors = patient_date_errors(self.patient, self.assessed_on, "response assessment")
        if self.assessed_on < self.patient.index_admission_date:
            errors.append("A response assessment cannot precede the index admission.")
        if errors:
            raise ValidationError({"assessed_on": errors})


class FollowUpEvent(RegistryRecord):
    """A dated event after the index admission: relapse, progression, death or last contact.

    A relapse or progression after CAR-T (the PFS event of the ICANS studies) belongs to an ICANS
    study and follows the patient's first CAR-T infusion.
    """

    review_section = Section.OUTCOMES
    patient_lookup = "patient"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="follow_up_events")
    event_type = models.CharField(max_length=16, choices=FollowUpEventType.choices)
    event_date = models.DateField()
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["patient", "event_date"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient"],
                condition=Q(event_type=FollowUpEventType.DEATH),
                name="follow_up_one_death",
                violation_error_message="A death is already recorded for this patient.",
            ),
            models.UniqueConstraint(
                fields=["patient"],
                condition=Q(event_type=FollowUpEventType.LAST_CONTACT),
                name="follow_up_one_last_contact",
                violation_error_message="A last contact is already recorded; update it instead.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_type_display()} on {self.event_date:%Y-%m-%d}"

    def clean(self) -> None:
        if not self.patient_id or not self.event_date:
            return
        patient = self.patient
        errors = []
        if self.event_date < patient.index_admission_date:
            errors.append("Follow-up events must come after the index admission.")
        if self.event_type == FollowUpEventType.DEATH:
            if patient.death_date != self.event_date:
                errors.append("The death event must carry the patient's recorded date of death.")
        else:
            errors.extend(patient_date_errors(patient, self.event_date, "follow-up event"))
        if self.event_type == FollowUpEventType.LAST_CONTACT and patient.death_date:
            errors.append("A patient with a recorded death has no 'last contact (alive)' event.")
        found: dict[str, list[str]] = {"event_date": errors} if errors else {}
        if self.event_type == FollowUpEventType.CART_RELAPSE:
            for field, messages in self._car_t_relapse_errors().items():
                found.setdefault(field, []).extend(messages)
        if found:
            raise ValidationError(found)

    def _car_t_relapse_errors(self) -> dict[str, list[str]]:
        """A relapse after CAR-T needs an ICANS study and a date after the first infusion."""
        study = self.patient.study
        if study.disease_area != DiseaseArea.ICANS:
            return {
                "event_type": [
                    f"A relapse or progression after CAR-T is recorded only in an "
                    f"{DiseaseArea.ICANS.label} study; {self.patient} is in "
                    f"{study.get_disease_area_display()}."
                ]
            }
        first = (
            CarTInfusion.objects.filter(patient=self.patient)
            .order_by("infusion_date")
            .values_list("infusion_date", flat=True)
            .first()
        )
        if first is None:
            return {
                "event_date": ["Record the CAR-T infusion first: a relapse after CAR-T is dated from it."]
            }
        if self.event_date <= first:
            return {
                "event_date": [
                    f"A relapse or progression after CAR-T must come after the first infusion ({first:%Y-%m-%d})."
                ]
            }
        return {}
