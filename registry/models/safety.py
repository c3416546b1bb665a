"""Adverse events graded by CTCAE, with the laboratory value a grade derives from."""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from ..branching import not_applicable_errors
from ..choices import Attribution, CtcaeTerm, CtcaeVersion, Section
from ..formatting import plain
from ..scoring import ctcae_grade_from_lab, ctcae_lab_unit
from .base import MissingCodes, RegistryRecord, missing_codes_field, patient_date_errors
from .patients import Patient
from .procedures import LumbarPuncture

#: Terms whose CTCAE scale stops short of grade 5 (or 4).
CTCAE_MAX_GRADE: dict[str, int] = {
    CtcaeTerm.HEADACHE: 3,
    CtcaeTerm.BACK_PAIN: 3,
    CtcaeTerm.NAUSEA: 3,
    CtcaeTerm.PARAESTHESIA: 3,
}


class AdverseEvent(MissingCodes, RegistryRecord):
    """An adverse event, its CTCAE grade and its attribution."""

    review_section = Section.SAFETY
    patient_lookup = "patient"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="adverse_events")
    lumbar_puncture = models.ForeignKey(
        LumbarPuncture,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="adverse_events",
        help_text="The lumbar puncture or injection the event followed, if any.",
    )
    ctcae_term = models.CharField("CTCAE term", max_length=32, choices=CtcaeTerm.choices)
    term_other = models.CharField("other term", max_length=200, blank=True)
    ctcae_version = models.CharField(
        "CTCAE version", max_length=4, choices=CtcaeVersion.choices, default=CtcaeVersion.V5
    )
    grade = models.PositiveSmallIntegerField(choices=[(g, f"Grade {g}") for g in range(1, 6)])
    lab_value = models.DecimalField(
        max_digits=10,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="The value the grade derives from, if any.",
    )
    lab_lower_limit = models.DecimalField(
        "lab lower limit of normal", max_digits=10, decimal_places=3, null=True, blank=True
    )
    lab_upper_limit = models.DecimalField(
        "lab upper limit of normal", max_digits=10, decimal_places=3, null=True, blank=True
    )
    onset_date = models.DateField()
    resolution_date = models.DateField(null=True, blank=True)
    attribution = models.CharField(max_length=16, choices=Attribution.choices, default=Attribution.UNKNOWN)
    serious = models.BooleanField(default=False)
    missing_codes = missing_codes_field()

    class Meta:
        ordering = ["patient", "onset_date"]
        constraints = [
            models.CheckConstraint(condition=Q(grade__gte=1) & Q(grade__lte=5), name="ae_grade_1_to_5"),
            models.CheckConstraint(
                condition=Q(resolution_date__isnull=True) | Q(resolution_date__gte=models.F("onset_date")),
                name="ae_resolution_not_before_onset",
                violation_error_message="An adverse event cannot resolve before its onset.",
            ),
        ]

    def __str__(self) -> str:
        term = self.term_other if self.ctcae_term == CtcaeTerm.OTHER else self.get_ctcae_term_display()
        return f"{term}, grade {self.grade}"

    @property
    def suggested_grade(self) -> int | None:
        """The grade the recorded lab value implies under this CTCAE version, if a rule exists."""
        if self.lab_value is None:
            return None
        return ctcae_grade_from_lab(
            self.ctcae_version,
            self.ctcae_term,
            self.lab_value,
            lower_limit=self.lab_lower_limit,
            upper_limit=self.lab_upper_limit,
        )

    def clean(self) -> None:
        errors = not_applicable_errors(self, None)
        if self.ctcae_term == CtcaeTerm.OTHER and not self.term_other:
            errors["term_other"] = ["Name the adverse event when the term is 'Other'."]
        maximum = CTCAE_MAX_GRADE.get(self.ctcae_term)
        if maximum and self.grade and self.grade > maximum:
            errors["grade"] = [
                f"CTCAE grades {self.get_ctcae_term_display().lower()} only up to grade {maximum}."
            ]
        suggested = self.suggested_grade
        if suggested == 0:
            errors["lab_value"] = [
                f"A value of {plain(self.lab_value)} {ctcae_lab_unit(self.ctcae_version, self.ctcae_term)} is within normal "
                f"limits, which is not an adverse event for this term."
            ]
        elif suggested is not None and self.grade and suggested != self.grade:
            errors["grade"] = [
                f"CTCAE v{self.ctcae_version} grades a value of {plain(self.lab_value)} "
                f"{ctcae_lab_unit(self.ctcae_version, self.ctcae_term)} as grade {suggested}, not {self.grade}."
            ]
        if self.onset_date and self.resolution_date and self.resolution_date < self.onset_date:
            errors["resolution_date"] = ["An adverse event cannot resolve before its onset."]
        if self.patient_id:
            found = patient_date_errors(self.patient, self.onset_date, "adverse event onset")
            if found:
                errors.setdefault("onset_date", []).extend(found)
            if self.grade == 5 and not self.patient.death_date:
                errors.setdefault("grade", []).append(
                    "Grade 5 means death; record the patient's date of death first."
                )
            lp = self.lumbar_puncture if self.lumbar_puncture_id else None
            if lp is not None and lp.patient_id != self.patient_id:
                errors["lumbar_puncture"] = ["That lumbar puncture belongs to another patient."]
        if errors:
            raise ValidationError(errors)
