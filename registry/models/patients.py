"""Patients and their identifiers (kept apart so only authorised roles ever load them)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Site

from ..choices import DeathCause, FollowUpEventType, Section, Sex
from .base import MissingCodes, RegistryRecord, local_date, missing_codes_field
from .studies import Study


class Patient(MissingCodes, RegistryRecord):
    """A patient enrolled in one study at one site, known by a pseudonymous study code."""

    review_section = Section.IDENTITY
    patient_lookup = "self"
    #: Set by ``batch_check``: the bulk path checked the study's sites for the whole batch already.
    _checked_in_batch = False

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="patients")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="patients")
    study_code = models.CharField(
        max_length=32, help_text="Pseudonymous code, unique within the study (never the name or MRN)."
    )
    sex = models.CharField(max_length=1, choices=Sex.choices)
    birth_date = models.DateField(null=True, blank=True, help_text="Leave blank if only the year is known.")
    birth_year = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Filled from the birth date when that is given."
    )
    index_admission_date = models.DateField(help_text="Admission at which the patient entered the cohort.")
    death_date = models.DateField(null=True, blank=True)
    death_cause = models.CharField(max_length=16, choices=DeathCause.choices, blank=True)
    missing_codes = missing_codes_field()

    class Meta:
        ordering = ["study", "study_code"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "study_code"],
                name="patient_study_code_unique",
                violation_error_message="Another patient of this study already has this study code; "
                "choose the next free code, or find that patient under Patients if it is the same person.",
            ),
            models.CheckConstraint(
                condition=Q(birth_year__isnull=False) & Q(birth_year__gte=1900) & Q(birth_year__lte=2100),
                name="patient_birth_year_recorded",
                violation_error_message="Enter a birth date or at least the birth year (1900–2100).",
            ),
            models.CheckConstraint(
                condition=(Q(death_date__isnull=True) & Q(death_cause=""))
                | (Q(death_date__isnull=False) & ~Q(death_cause="")),
                name="patient_death_date_and_cause_together",
                violation_error_message="A death needs both its date and its cause.",
            ),
            models.CheckConstraint(
                condition=Q(death_date__isnull=True) | Q(death_date__gte=models.F("index_admission_date")),
                name="patient_death_not_before_index",
                violation_error_message="The death date cannot be before the index admission.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study.code}/{self.study_code}"

    @property
    def earliest_possible_date(self) -> dt.date | None:
        if self.birth_date:
            return self.birth_date
        if self.birth_year:
            return dt.date(self.birth_year, 1, 1)
        return None

    @property
    def age_at_index_years(self) -> float | None:
        """Age at the index admission: exact from the birth date, else whole years from the birth year."""
        if self.birth_date:
            return (self.index_admission_date - self.birth_date).days / 365.25
        if self.birth_year:
            return float(self.index_admission_date.year - self.birth_year)
        return None

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.birth_date and self.birth_year is None:
            self.birth_year = self.birth_date.year
        if self.birth_date and self.birth_year != self.birth_date.year:
            errors.setdefault("birth_year", []).append(
                f"The birth year {self.birth_year} does not match the birth date {self.birth_date:%Y-%m-%d}."
            )
        if self.birth_year is None:
            errors.setdefault("birth_date", []).append("Enter a birth date or at least the birth year.")
        today = timezone.localdate()
        for field in ("birth_date", "index_admission_date", "death_date"):
            value = getattr(self, field)
            if value and value > today:
                errors.setdefault(field, []).append(f"{value:%Y-%m-%d} is in the future.")
        earliest = self.earliest_possible_date
        if earliest and self.index_admission_date and self.index_admission_date < earliest:
            errors.setdefault("index_admission_date", []).append(
                "The index admission is before the patient's birth."
            )
        if self.death_date and self.index_admission_date and self.death_date < self.index_admission_date:
            errors.setdefault("death_date", []).append("The death date is before the index admission.")
        if self.death_date and not self.death_cause:
            errors.setdefault("death_cause", []).append("Enter the cause of death (use Other if unknown).")
        if self.death_cause and not self.death_date:
            errors.setdefault("death_date", []).append("A cause of death needs the date of death.")
        in_batch = self._checked_in_batch  # the bulk path checked the site already
        if (
            self.study_id
            and self.site_id
            and not in_batch
            and not self.study.sites.filter(pk=self.site_id).exists()
        ):
            errors.setdefault("site", []).append(self._site_outside_study_message())
        if self.pk and not errors:
            errors.update(self._dated_record_conflicts())
        if errors:
            raise ValidationError(errors)

    def _site_outside_study_message(self) -> str:
        return f"{self.site} does not take part in the study {self.study.code}."

    @classmethod
    def batch_check(cls, patients: list[Patient]) -> dict[int, dict[str, list[str]]]:
        """The database checks of ``clean()`` for a whole batch in one query (the audited bulk path).

        Returns errors by position; marks the objects so ``clean()`` skips its per-object query.
        """
        study_ids = {p.study_id for p in patients}
        pairs = set(
            Study.sites.through.objects.filter(study_id__in=study_ids).values_list("study_id", "site_id")
        )
        errors = {}
        for position, patient in enumerate(patients):
            patient._checked_in_batch = True
            if patient.study_id and patient.site_id and (patient.study_id, patient.site_id) not in pairs:
                errors[position] = {"site": [patient._site_outside_study_message()]}
        return errors

    def dated_records(self) -> Iterator[tuple[str, dt.date]]:
        """Every clinical date recorded for the patient, labelled, for the cross-record date rules."""

        for lp in self.lumbar_punctures.within_owner():
            yield f"lumbar puncture of {local_date(lp.performed_at):%Y-%m-%d}", local_date(lp.performed_at)
        for ae in self.adverse_events.within_owner():
            yield f"adverse event '{ae}'", ae.onset_date
        for event in self.follow_up_events.exclude(event_type=FollowUpEventType.DEATH).within_owner():
            yield f"follow-up event '{event.get_event_type_display()}'", event.event_date
        for therapy in self.systemic_therapies.within_owner():
            yield f"systemic therapy '{therapy}'", therapy.start_date
        for assessment in self.response_assessments.within_owner():
            yield "response assessment", assessment.assessed_on

    def _dated_record_conflicts(self) -> dict[str, list[str]]:
        earliest = self.earliest_possible_date
        errors: dict[str, list[str]] = {}
        for label, day in self.dated_records():
            if earliest and day < earliest:
                errors.setdefault("birth_date", []).append(f"The {label} would fall before birth.")
            if self.death_date and day > self.death_date:
                errors.setdefault("death_date", []).append(f"The {label} is after this death date.")
        return errors


class PatientIdentifier(RegistryRecord):
    """Directly identifying data. Only data-entry staff and reviewers of the patient's site may see it."""

    review_section = Section.IDENTITY
    patient_lookup = "patient"
    #: Set by ``batch_check``: the bulk path checked record-number uniqueness for the whole batch.
    _checked_in_batch = False
    holds_identifiers = True

    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="identifier")
    full_name = models.CharField(max_length=200)
    medical_record_number = models.CharField(max_length=64)

    class Meta:
        verbose_name = "patient identifier"
        indexes = [models.Index(fields=["medical_record_number"], name="identifier_mrn")]

    def __str__(self) -> str:
        return f"Identifiers of {self.patient}"

    MRN_CLASH = "Another patient of this study at this site has this medical record number; is the patient already enrolled?"

    @classmethod
    def batch_check(cls, identifiers: list[PatientIdentifier]) -> dict[int, dict[str, list[str]]]:
        """MRN clashes for a whole batch — with saved patients and within the batch — in one query."""
        mrns = {i.medical_record_number for i in identifiers}
        taken = set(
            PatientIdentifier.objects.filter(medical_record_number__in=mrns).values_list(
                "patient__study_id", "patient__site_id", "medical_record_number"
            )
        )
        errors, seen = {}, set()
        for position, identifier in enumerate(identifiers):
            identifier._checked_in_batch = True
            key = (identifier.patient.study_id, identifier.patient.site_id, identifier.medical_record_number)
            if key in taken or key in seen:
                errors[position] = {"medical_record_number": [cls.MRN_CLASH]}
            seen.add(key)
        return errors

    def clean(self) -> None:
        if not self.patient_id or self._checked_in_batch:
            return
        clash = PatientIdentifier.objects.filter(
            medical_record_number=self.medical_record_number,
            patient__site_id=self.patient.site_id,
            patient__study_id=self.patient.study_id,
        ).exclude(pk=self.pk)
        if clash.exists():
            raise ValidationError({"medical_record_number": self.MRN_CLASH})
