"""Lumbar punctures (or Ommaya taps), the CSF they yield, and the intrathecal doses given."""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from ..branching import not_applicable_errors
from ..choices import (
    CsfCytology,
    Diluent,
    DoseTiming,
    IntrathecalDrug,
    LpRoute,
    PathogenTestType,
    Section,
    TestResult,
)
from ..csf_limits import OPENING_PRESSURE_MAX_MMH2O
from ..dosing import INTRATHECAL_DOSE_LIMITS
from ..formatting import plain
from ..validators import (
    validate_csf_chloride_mmol_per_l,
    validate_csf_glucose_mmol_per_l,
    validate_csf_protein_g_per_l,
    validate_intrathecal_dose,
    validate_pressure_mmh2o,
)
from .base import MissingCodes, RegistryRecord, missing_codes_field, patient_date_errors
from .patients import Patient


class LumbarPuncture(MissingCodes, RegistryRecord):
    """One access to the CSF: a lumbar puncture or a tap of an Ommaya reservoir."""

    review_section = Section.PROCEDURES
    patient_lookup = "patient"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="lumbar_punctures")
    performed_at = models.DateTimeField()
    route = models.CharField(
        "route (lumbar puncture or Ommaya reservoir)",
        max_length=8,
        choices=LpRoute.choices,
        default=LpRoute.LUMBAR,
    )
    opening_pressure_mmh2o = models.PositiveSmallIntegerField(
        "opening pressure (mmH2O)", null=True, blank=True, validators=[validate_pressure_mmh2o]
    )
    closing_pressure_mmh2o = models.PositiveSmallIntegerField(
        "closing pressure (mmH2O)", null=True, blank=True, validators=[validate_pressure_mmh2o]
    )
    post_lp_headache = models.BooleanField("post-LP headache", default=False)
    low_icp = models.BooleanField("low intracranial pressure", default=False)
    numbness = models.BooleanField(default=False)
    infection = models.BooleanField(default=False)
    other_complication = models.CharField("other complication", max_length=200, blank=True)
    missing_codes = missing_codes_field()

    class Meta:
        verbose_name = "lumbar puncture"
        ordering = ["patient", "performed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "performed_at"],
                name="lp_once_per_patient_time",
                violation_error_message="A lumbar puncture is already recorded for this patient at this time.",
            ),
            models.CheckConstraint(
                condition=Q(opening_pressure_mmh2o__isnull=True)
                | Q(opening_pressure_mmh2o__lte=OPENING_PRESSURE_MAX_MMH2O),
                name="lp_opening_pressure_range",
            ),
            models.CheckConstraint(
                condition=Q(closing_pressure_mmh2o__isnull=True)
                | Q(closing_pressure_mmh2o__lte=OPENING_PRESSURE_MAX_MMH2O),
                name="lp_closing_pressure_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_route_display()} on {self.performed_at:%Y-%m-%d %H:%M}"

    @property
    def has_complication(self) -> bool:
        return (
            self.post_lp_headache
            or self.low_icp
            or self.numbness
            or self.infection
            or bool(self.other_complication)
        )

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.patient_id and self.performed_at:
            found = patient_date_errors(self.patient, self.performed_at, "lumbar puncture")
            if found:
                errors["performed_at"] = found
        if (
            self.opening_pressure_mmh2o is not None
            and self.closing_pressure_mmh2o is not None
            and self.closing_pressure_mmh2o > self.opening_pressure_mmh2o
        ):
            errors["closing_pressure_mmh2o"] = [
                "The closing pressure is higher than the opening pressure; are the two swapped?"
            ]
        if errors:
            raise ValidationError(errors)


class CsfResult(MissingCodes, RegistryRecord):
    """The laboratory results of one LP's CSF, in the registry's units, with the lab's reference limits."""

    review_section = Section.PROCEDURES
    patient_lookup = "lumbar_puncture__patient"

    lumbar_puncture = models.OneToOneField(LumbarPuncture, on_delete=models.CASCADE, related_name="csf")
    wbc_1e6_per_l = models.DecimalField(
        "white cells (×10⁶/L)", max_digits=8, decimal_places=1, null=True, blank=True
    )
    rbc_1e6_per_l = models.DecimalField(
        "red cells (×10⁶/L)", max_digits=9, decimal_places=1, null=True, blank=True
    )
    protein_g_per_l = models.DecimalField(
        "protein (g/L)",
        max_digits=6,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[validate_csf_protein_g_per_l],
    )
    glucose_mmol_per_l = models.DecimalField(
        "glucose (mmol/L)",
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[validate_csf_glucose_mmol_per_l],
    )
    chloride_mmol_per_l = models.DecimalField(
        "chloride (mmol/L)",
        max_digits=5,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[validate_csf_chloride_mmol_per_l],
    )
    cytology = models.CharField(max_length=16, choices=CsfCytology.choices, default=CsfCytology.NOT_DONE)
    il6_pg_per_ml = models.DecimalField(
        "IL-6 (pg/mL)", max_digits=10, decimal_places=2, null=True, blank=True
    )
    car_t_cells_per_ul = models.DecimalField(
        "CAR-T cells (cells/µL)", max_digits=10, decimal_places=2, null=True, blank=True
    )
    ngs_findings = models.TextField("NGS findings", blank=True)
    # The reporting laboratory's reference limits (they differ between labs).
    protein_upper_limit_g_per_l = models.DecimalField(
        "protein upper reference limit (g/L)", max_digits=5, decimal_places=3, null=True, blank=True
    )
    glucose_lower_limit_mmol_per_l = models.DecimalField(
        "glucose lower reference limit (mmol/L)", max_digits=5, decimal_places=2, null=True, blank=True
    )
    chloride_lower_limit_mmol_per_l = models.DecimalField(
        "chloride lower reference limit (mmol/L)", max_digits=5, decimal_places=1, null=True, blank=True
    )
    wbc_upper_limit_1e6_per_l = models.DecimalField(
        "white cell upper reference limit (×10⁶/L)", max_digits=6, decimal_places=1, null=True, blank=True
    )
    missing_codes = missing_codes_field()

    class Meta:
        verbose_name = "CSF result"
        constraints = [
            models.CheckConstraint(
                condition=Q(wbc_1e6_per_l__isnull=True) | Q(wbc_1e6_per_l__gte=0), name="csf_wbc_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(rbc_1e6_per_l__isnull=True) | Q(rbc_1e6_per_l__gte=0), name="csf_rbc_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(protein_g_per_l__isnull=True) | Q(protein_g_per_l__gte=0),
                name="csf_protein_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(glucose_mmol_per_l__isnull=True) | Q(glucose_mmol_per_l__gte=0),
                name="csf_glucose_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(chloride_mmol_per_l__isnull=True) | Q(chloride_mmol_per_l__gte=0),
                name="csf_chloride_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(il6_pg_per_ml__isnull=True) | Q(il6_pg_per_ml__gte=0), name="csf_il6_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(car_t_cells_per_ul__isnull=True) | Q(car_t_cells_per_ul__gte=0),
                name="csf_car_t_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"CSF of {self.lumbar_puncture}"

    def clean(self) -> None:
        # getattr: a CSF being validated before its LP is attached has no patient to ask yet.
        patient = getattr(getattr(self, "lumbar_puncture", None), "patient", None)
        errors = not_applicable_errors(self, patient.study.disease_area if patient else None)
        if errors:
            raise ValidationError(errors)


class PathogenTest(RegistryRecord):
    """A microbiological test on the CSF, to exclude infection."""

    review_section = Section.PROCEDURES
    patient_lookup = "csf_result__lumbar_puncture__patient"

    csf_result = models.ForeignKey(CsfResult, on_delete=models.CASCADE, related_name="pathogen_tests")
    test = models.CharField(max_length=16, choices=PathogenTestType.choices)
    result = models.CharField(max_length=16, choices=TestResult.choices)
    organism = models.CharField(max_length=200, blank=True, help_text="For a positive result.")

    class Meta:
        ordering = ["csf_result", "test"]
        constraints = [
            models.UniqueConstraint(
                fields=["csf_result", "test"],
                name="pathogen_test_once_per_csf",
                violation_error_message="This test is already recorded for this CSF sample.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_test_display()}: {self.get_result_display()}"

    def clean(self) -> None:
        errors = not_applicable_errors(self, None)
        if errors:
            raise ValidationError(errors)


class IntrathecalDose(MissingCodes, RegistryRecord):
    """One drug injected into the CSF during a lumbar puncture or Ommaya tap."""

    review_section = Section.PROCEDURES
    patient_lookup = "lumbar_puncture__patient"

    lumbar_puncture = models.ForeignKey(LumbarPuncture, on_delete=models.CASCADE, related_name="doses")
    drug = models.CharField(max_length=24, choices=IntrathecalDrug.choices)
    drug_other = models.CharField("other drug (name)", max_length=100, blank=True)
    dose_mg = models.DecimalField("dose (mg)", max_digits=6, decimal_places=2)
    timing = models.CharField(max_length=8, choices=DoseTiming.choices, default=DoseTiming.WITH)
    volume_ml = models.DecimalField("volume (mL)", max_digits=5, decimal_places=1, null=True, blank=True)
    diluent = models.CharField(max_length=16, choices=Diluent.choices, blank=True)
    course_number = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Which course of intrathecal therapy this injection belongs to (1, 2, …).",
    )
    missing_codes = missing_codes_field()

    class Meta:
        verbose_name = "intrathecal dose"
        ordering = ["lumbar_puncture", "drug"]
        constraints = [
            models.UniqueConstraint(
                fields=["lumbar_puncture", "drug", "drug_other", "timing"],
                name="it_drug_once_per_lp_and_timing",
                violation_error_message="This drug is already recorded at this point of the lumbar puncture.",
            ),
            models.CheckConstraint(condition=Q(dose_mg__gt=0), name="it_dose_positive"),
            models.CheckConstraint(
                condition=Q(volume_ml__isnull=True) | (Q(volume_ml__gt=0) & Q(volume_ml__lte=50)),
                name="it_volume_range",
            ),
            # The per-drug caps come from the one dose table shared with validation and protocols.
            *(
                models.CheckConstraint(
                    condition=~Q(drug=limit.drug) | Q(dose_mg__lte=limit.max_mg), name=f"it_{limit.drug}_cap"
                )
                for limit in INTRATHECAL_DOSE_LIMITS.values()
            ),
        ]

    def __str__(self) -> str:
        return f"{self.drug_label} {plain(self.dose_mg)} mg"

    @property
    def drug_label(self) -> str:
        return (
            self.drug_other
            if self.drug == IntrathecalDrug.OTHER and self.drug_other
            else self.get_drug_display()
        )

    def clean(self) -> None:
        errors = not_applicable_errors(self, None)
        if self.drug == IntrathecalDrug.OTHER and not self.drug_other:
            errors["drug_other"] = ["Name the drug when choosing 'Other'."]
        try:
            validate_intrathecal_dose(self.drug, self.dose_mg)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                errors.setdefault(field, []).extend(messages)
        if errors:
            raise ValidationError(errors)
