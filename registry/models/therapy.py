"""Systemic (non-intrathecal) therapy: immunosuppression, targeted therapy, chemotherapy, CAR-T support."""

from django.core.exceptions import ValidationError
from django.db import models

from ..choices import Section, SystemicTherapyCategory
from .base import MissingCodes, RegistryRecord, missing_codes_field, patient_date_errors
from .patients import Patient


class SystemicTherapy(MissingCodes, RegistryRecord):
    """A systemic treatment with its dates; whether it was 'prior' or 'concurrent' follows from them."""

    review_section = Section.THERAPY
    patient_lookup = "patient"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="systemic_therapies")
    category = models.CharField(max_length=24, choices=SystemicTherapyCategory.choices)
    agent = models.CharField(max_length=200, blank=True, help_text="Drug or regimen, e.g. osimertinib, TC.")
    dose_description = models.CharField(
        max_length=200, blank=True, help_text="As prescribed, e.g. '500 mg/day ×3 days' or '80 mg daily'."
    )
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True, help_text="Leave blank while ongoing.")
    missing_codes = missing_codes_field()

    class Meta:
        verbose_name_plural = "systemic therapies"
        ordering = ["patient", "start_date", "category"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end_date__isnull=True) | models.Q(end_date__gte=models.F("start_date")),
                name="therapy_end_not_before_start",
                violation_error_message="A therapy cannot end before it starts.",
            )
        ]

    def __str__(self) -> str:
        return self.agent or self.get_category_display()

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.patient_id:
            for field, what in (("start_date", "therapy start"), ("end_date", "therapy end")):
                found = patient_date_errors(self.patient, getattr(self, field), what)
                if found:
                    errors[field] = found
        if self.start_date and self.end_date and self.end_date < self.start_date:
            errors.setdefault("end_date", []).append("A therapy cannot end before it starts.")
        if self.category == SystemicTherapyCategory.OTHER and not self.agent:
            errors.setdefault("agent", []).append("Name the agent when the category is 'Other'.")
        if errors:
            raise ValidationError(errors)

    def overlaps(self, start, end) -> bool:
        """Whether the therapy was given at any time in [start, end]."""
        return self.start_date <= end and (self.end_date is None or self.end_date >= start)
