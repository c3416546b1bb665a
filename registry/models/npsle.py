"""NPSLE diagnosis: ACR-1999 syndromes, organ involvement, serology, SLEDAI-2K and BILAG."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q

from ..choices import BilagGrade, DiseaseArea, NpsleSyndrome, Section, TestResult
from ..scoring import (
    SLEDAI_2K_BY_FIELD,
    SLEDAI_2K_DESCRIPTORS,
    SLEDAI_2K_MAXIMUM,
    SLEDAI_2K_VERSION,
    sledai_2k_total,
)
from ..validators import validate_c3_g_per_l, validate_c4_g_per_l
from ._disease import require_disease_area
from .base import ComputedScoreMixin, MissingCodes, RegistryRecord, missing_codes_field, patient_date_errors
from .patients import Patient


def _serology(label: str) -> models.CharField:
    return models.CharField(label, max_length=16, choices=TestResult.choices, default=TestResult.NOT_DONE)


class NpsleDiagnosis(MissingCodes, RegistryRecord):
    """The NPSLE picture at the index admission."""

    #: The organ systems outside the nervous system, in the order the forms, pages and datasets use.
    SLE_ORGANS = (
        "fever",
        "mucocutaneous",
        "musculoskeletal",
        "pulmonary",
        "cardiovascular",
        "haematological",
        "lupus_nephritis",
        "serositis",
        "antiphospholipid_syndrome",
    )

    review_section = Section.DIAGNOSIS
    patient_lookup = "patient"

    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="npsle_diagnosis")
    onset_with_npsle = models.BooleanField("SLE onset with NPSLE", default=False)
    sle_duration_months = models.PositiveSmallIntegerField(
        "SLE duration (months)", null=True, blank=True, validators=[MaxValueValidator(1200)]
    )
    # Organ involvement outside the nervous system.
    fever = models.BooleanField(default=False)
    mucocutaneous = models.BooleanField(default=False)
    musculoskeletal = models.BooleanField(default=False)
    pulmonary = models.BooleanField(default=False)
    cardiovascular = models.BooleanField(default=False)
    haematological = models.BooleanField(default=False)
    lupus_nephritis = models.BooleanField(default=False)
    serositis = models.BooleanField(default=False)
    antiphospholipid_syndrome = models.BooleanField("antiphospholipid syndrome (APS)", default=False)
    # Serology.
    anti_dsdna = _serology("anti-dsDNA")
    anti_rrnp = _serology("anti-ribosomal P (anti-rRNP)")
    c3_g_per_l = models.DecimalField(
        "C3 (g/L)", max_digits=5, decimal_places=3, null=True, blank=True, validators=[validate_c3_g_per_l]
    )
    c4_g_per_l = models.DecimalField(
        "C4 (g/L)", max_digits=5, decimal_places=3, null=True, blank=True, validators=[validate_c4_g_per_l]
    )
    lupus_anticoagulant_ratio = models.DecimalField(
        "lupus anticoagulant (normalised ratio)", max_digits=5, decimal_places=2, null=True, blank=True
    )
    coombs = _serology("direct Coombs test")
    anti_b2gp1 = _serology("anti-β2-glycoprotein I")
    anticardiolipin = _serology("anticardiolipin (aCL)")
    bilag_np_grade = models.CharField(
        "BILAG-2004 neuropsychiatric grade", max_length=1, choices=BilagGrade.choices, blank=True
    )
    missing_codes = missing_codes_field()

    class Meta:
        verbose_name = "NPSLE diagnosis"
        verbose_name_plural = "NPSLE diagnoses"
        constraints = [
            models.CheckConstraint(
                condition=Q(c3_g_per_l__isnull=True) | Q(c3_g_per_l__gte=0), name="npsle_c3_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(c4_g_per_l__isnull=True) | Q(c4_g_per_l__gte=0), name="npsle_c4_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(lupus_anticoagulant_ratio__isnull=True) | Q(lupus_anticoagulant_ratio__gt=0),
                name="npsle_la_ratio_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"NPSLE diagnosis of {self.patient}"

    def clean(self) -> None:
        if self.patient_id:
            require_disease_area(self.patient, DiseaseArea.NPSLE, "An NPSLE diagnosis")


class NpsleManifestation(RegistryRecord):
    """One ACR-1999 syndrome of a patient, with its onset date."""

    review_section = Section.DIAGNOSIS
    patient_lookup = "diagnosis__patient"

    diagnosis = models.ForeignKey(NpsleDiagnosis, on_delete=models.CASCADE, related_name="manifestations")
    syndrome = models.CharField(max_length=32, choices=NpsleSyndrome.choices)
    onset_date = models.DateField(null=True, blank=True)

    class Meta:
        verbose_name = "NPSLE manifestation"
        ordering = ["diagnosis", "syndrome"]
        constraints = [
            models.UniqueConstraint(
                fields=["diagnosis", "syndrome"],
                name="npsle_syndrome_once_per_patient",
                violation_error_message="This syndrome is already recorded for the patient.",
            )
        ]

    def __str__(self) -> str:
        return self.get_syndrome_display()

    def clean(self) -> None:
        if self.diagnosis_id and self.onset_date:
            errors = patient_date_errors(self.diagnosis.patient, self.onset_date, "syndrome onset")
            if errors:
                raise ValidationError({"onset_date": errors})


def _descriptor(field: str) -> models.BooleanField:
    descriptor = SLEDAI_2K_BY_FIELD[field]
    return models.BooleanField(
        f"{descriptor.label} ({descriptor.weight})", default=False, help_text=descriptor.definition
    )


class Sledai2kAssessment(ComputedScoreMixin, RegistryRecord):
    """SLEDAI-2K as its 24 descriptors; the total is computed on save, never typed."""

    review_section = Section.DIAGNOSIS
    patient_lookup = "patient"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="sledai_assessments")
    assessed_on = models.DateField()
    seizure = _descriptor("seizure")
    psychosis = _descriptor("psychosis")
    organic_brain_syndrome = _descriptor("organic_brain_syndrome")
    visual_disturbance = _descriptor("visual_disturbance")
    cranial_nerve_disorder = _descriptor("cranial_nerve_disorder")
    lupus_headache = _descriptor("lupus_headache")
    cva = _descriptor("cva")
    vasculitis = _descriptor("vasculitis")
    arthritis = _descriptor("arthritis")
    myositis = _descriptor("myositis")
    urinary_casts = _descriptor("urinary_casts")
    haematuria = _descriptor("haematuria")
    proteinuria = _descriptor("proteinuria")
    pyuria = _descriptor("pyuria")
    rash = _descriptor("rash")
    alopecia = _descriptor("alopecia")
    mucosal_ulcers = _descriptor("mucosal_ulcers")
    pleurisy = _descriptor("pleurisy")
    pericarditis = _descriptor("pericarditis")
    low_complement = _descriptor("low_complement")
    increased_dna_binding = _descriptor("increased_dna_binding")
    fever = _descriptor("fever")
    thrombocytopenia = _descriptor("thrombocytopenia")
    leukopenia = _descriptor("leukopenia")
    total = models.PositiveSmallIntegerField("SLEDAI-2K total", editable=False, default=0)
    scale_version = models.CharField(max_length=16, default=SLEDAI_2K_VERSION, editable=False)

    class Meta:
        verbose_name = "SLEDAI-2K assessment"
        ordering = ["patient", "assessed_on"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "assessed_on"],
                name="sledai_one_per_patient_day",
                violation_error_message="A SLEDAI-2K assessment already exists for this patient on this day.",
            ),
            models.CheckConstraint(
                condition=Q(total__gte=0) & Q(total__lte=SLEDAI_2K_MAXIMUM), name="sledai_total_in_scale"
            ),
        ]

    def __str__(self) -> str:
        return f"SLEDAI-2K {self.total} on {self.assessed_on:%Y-%m-%d}"

    computed_fields = ("total",)

    def refresh_computed_fields(self) -> None:
        self.total = sledai_2k_total({d.field: getattr(self, d.field) for d in SLEDAI_2K_DESCRIPTORS})

    def clean(self) -> None:
        if not self.patient_id:
            return
        require_disease_area(self.patient, DiseaseArea.NPSLE, "A SLEDAI-2K assessment")
        errors = patient_date_errors(self.patient, self.assessed_on, "SLEDAI-2K assessment")
        if errors:
            raise ValidationError({"assessed_on": errors})
