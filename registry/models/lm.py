"""Leptomeningeal metastasis of lung cancer: primary, driver mutations, LM diagnosis, ECOG."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q

from ..choices import (
    EXCLUSIVE_MUTATION_CODES,
    CsfCytology,
    DiseaseArea,
    DriverMutation,
    EanoEsmoType,
    LmMriPattern,
    NsclcHistology,
    Section,
    Specimen,
)
from ._disease import require_disease_area
from .base import MissingCodes, RegistryRecord, missing_codes_field, patient_date_errors
from .patients import Patient


class LmDiagnosis(MissingCodes, RegistryRecord):
    """The diagnosis of leptomeningeal metastasis in a patient with NSCLC."""

    review_section = Section.DIAGNOSIS
    patient_lookup = "patient"

    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="lm_diagnosis")
    histology = models.CharField("NSCLC histology", max_length=16, choices=NsclcHistology.choices)
    primary_diagnosis_date = models.DateField("lung cancer diagnosed on", null=True, blank=True)
    lm_diagnosis_date = models.DateField("LM diagnosed on")
    brain_metastases = models.BooleanField("brain parenchymal metastases", null=True, blank=True)
    mri_pattern = models.CharField(
        "EANO–ESMO MRI pattern", max_length=1, choices=LmMriPattern.choices, blank=True
    )
    mri_findings = models.TextField("MRI findings", blank=True)
    csf_cytology = models.CharField(
        "CSF cytology at diagnosis", max_length=16, choices=CsfCytology.choices, default=CsfCytology.NOT_DONE
    )
    eano_esmo_type = models.CharField(
        "EANO–ESMO type", max_length=2, choices=EanoEsmoType.choices, blank=True
    )
    ecog = models.PositiveSmallIntegerField(
        "ECOG performance status (0–5)", null=True, blank=True, validators=[MaxValueValidator(5)]
    )
    missing_codes = missing_codes_field()

    class Meta:
        verbose_name = "LM diagnosis"
        verbose_name_plural = "LM diagnoses"
        constraints = [
            models.CheckConstraint(condition=Q(ecog__isnull=True) | Q(ecog__lte=5), name="lm_ecog_0_to_5"),
        ]

    def __str__(self) -> str:
        return f"LM diagnosis of {self.patient}"

    def clean(self) -> None:
        if not self.patient_id:
            return
        require_disease_area(self.patient, DiseaseArea.LM, "An LM diagnosis")
        errors: dict[str, list[str]] = {}
        for field, what in (
            ("lm_diagnosis_date", "LM diagnosis"),
            ("primary_diagnosis_date", "lung cancer diagnosis"),
        ):
            found = patient_date_errors(self.patient, getattr(self, field), what)
            if found:
                errors[field] = found
        if (
            self.primary_diagnosis_date
            and self.lm_diagnosis_date
            and self.primary_diagnosis_date > self.lm_diagnosis_date
        ):
            errors.setdefault("lm_diagnosis_date", []).append(
                "LM cannot be diagnosed before the lung cancer."
            )
        if self.eano_esmo_type == EanoEsmoType.TYPE_I and self.csf_cytology not in (
            "",
            CsfCytology.MALIGNANT,
        ):
            errors.setdefault("eano_esmo_type", []).append(
                "Type I means malignant cells in the CSF; the cytology recorded is not malignant."
            )
        if errors:
            raise ValidationError(errors)


class MutationFinding(RegistryRecord):
    """One driver-mutation result in one specimen (tissue or CSF)."""

    review_section = Section.DIAGNOSIS
    patient_lookup = "diagnosis__patient"
    #: Set by ``batch_check``: the specimen's other results, read for the whole batch at once.
    _codes_in_batch: set[str] | None = None

    diagnosis = models.ForeignKey(LmDiagnosis, on_delete=models.CASCADE, related_name="mutations")
    specimen = models.CharField(max_length=8, choices=Specimen.choices)
    mutation = models.CharField(max_length=24, choices=DriverMutation.choices)
    detail = models.CharField(max_length=200, blank=True, help_text="Exact variant or assay, if useful.")

    class Meta:
        ordering = ["diagnosis", "specimen", "mutation"]
        constraints = [
            models.UniqueConstraint(
                fields=["diagnosis", "specimen", "mutation"],
                name="mutation_once_per_specimen",
                violation_error_message="This mutation is already recorded for this specimen.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_mutation_display()} ({self.get_specimen_display()})"

    @classmethod
    def batch_check(cls, findings: list[MutationFinding]) -> dict[int, dict[str, list[str]]]:
        """The other results of each specimen, for a whole batch in one query: the saved ones and those
        earlier in the batch (as if saved one by one); ``clean()`` then judges each without a query."""
        saved: dict[tuple[int, str], list[tuple[int | None, str]]] = {}
        rows = cls.objects.filter(diagnosis_id__in={f.diagnosis_id for f in findings})
        for pk, diagnosis_id, specimen, mutation in rows.values_list(
            "pk", "diagnosis_id", "specimen", "mutation"
        ):
            saved.setdefault((diagnosis_id, specimen), []).append((pk, mutation))
        for finding in findings:
            group = saved.setdefault((finding.diagnosis_id, finding.specimen), [])
            finding._codes_in_batch = {code for pk, code in group if pk is None or pk != finding.pk}
            group.append((None, finding.mutation))
        return {}

    def clean(self) -> None:
        if not self.diagnosis_id:
            return
        if self._codes_in_batch is not None:  # the bulk path read the specimen's results already
            codes = self._codes_in_batch
        else:
            others = self.diagnosis.mutations.filter(specimen=self.specimen).exclude(pk=self.pk)
            codes = set(others.values_list("mutation", flat=True))
        if self.mutation in EXCLUSIVE_MUTATION_CODES and codes:
            raise ValidationError(
                {
                    "mutation": f"'{self.get_mutation_display()}' cannot be combined with other results for this specimen."
                }
            )
        if codes & EXCLUSIVE_MUTATION_CODES:
            raise ValidationError(
                {"mutation": "This specimen is already recorded as wild-type or unknown; remove that first."}
            )
