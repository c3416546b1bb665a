"""CAR-T therapy and its toxicities: infusion, ICANS (ICE, ASTCT grade) and CRS assessments."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q

from ..choices import (
    CarTTarget,
    Consciousness,
    DiseaseArea,
    HaematologicalMalignancy,
    Hypotension,
    Hypoxia,
    MotorFinding,
    RaisedIcpFinding,
    Section,
    SeizureFinding,
)
from ..scoring import ASTCT_VERSION, ICE_ITEM_FIELDS, ICE_ITEMS, crs_grade, icans_grade, ice_score
from ..validators import validate_percentage
from ._disease import require_disease_area
from .base import ComputedScoreMixin, MissingCodes, RegistryRecord, missing_codes_field, patient_date_errors
from .patients import Patient


class CarTInfusion(MissingCodes, RegistryRecord):
    """A CAR-T cell infusion and the disease it treated."""

    review_section = Section.DIAGNOSIS
    patient_lookup = "patient"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="car_t_infusions")
    underlying_malignancy = models.CharField(max_length=16, choices=HaematologicalMalignancy.choices)
    product = models.CharField("CAR-T product", max_length=100)
    target = models.CharField("target antigen", max_length=16, choices=CarTTarget.choices)
    infusion_date = models.DateField()
    dose_1e6_cells_per_kg = models.DecimalField(
        "dose (×10⁶ cells/kg)", max_digits=7, decimal_places=3, null=True, blank=True
    )
    prior_lines = models.PositiveSmallIntegerField(
        "prior lines of therapy", null=True, blank=True, validators=[MaxValueValidator(30)]
    )
    marrow_blasts_pct = models.DecimalField(
        "marrow blasts (%)",
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[validate_percentage],
    )
    cns_involvement = models.BooleanField("CNS involvement", null=True, blank=True)
    missing_codes = missing_codes_field()

    class Meta:
        verbose_name = "CAR-T infusion"
        ordering = ["patient", "infusion_date"]
        constraints = [
            models.CheckConstraint(
                condition=Q(dose_1e6_cells_per_kg__isnull=True) | Q(dose_1e6_cells_per_kg__gt=0),
                name="cart_dose_positive",
            ),
            models.CheckConstraint(
                condition=Q(marrow_blasts_pct__isnull=True)
                | (Q(marrow_blasts_pct__gte=0) & Q(marrow_blasts_pct__lte=100)),
                name="cart_marrow_blasts_percentage",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product} ({self.get_target_display()}) on {self.infusion_date:%Y-%m-%d}"

    def clean(self) -> None:
        if not self.patient_id:
            return
        require_disease_area(self.patient, DiseaseArea.ICANS, "A CAR-T infusion")
        errors = patient_date_errors(self.patient, self.infusion_date, "infusion")
        if errors:
            raise ValidationError({"infusion_date": errors})


def _ice_item(field: str) -> models.BooleanField:
    item = next(i for i in ICE_ITEMS if i.field == field)
    return models.BooleanField(item.label, default=False, help_text=f"ICE {item.domain.lower()}, 1 point")


class IcansAssessment(ComputedScoreMixin, RegistryRecord):
    """An ICANS assessment: ICE items and the four other ASTCT domains; score and grade computed."""

    review_section = Section.DIAGNOSIS
    patient_lookup = "patient"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="icans_assessments")
    assessed_at = models.DateTimeField()
    orientation_year = _ice_item("orientation_year")
    orientation_month = _ice_item("orientation_month")
    orientation_city = _ice_item("orientation_city")
    orientation_hospital = _ice_item("orientation_hospital")
    naming_object_1 = _ice_item("naming_object_1")
    naming_object_2 = _ice_item("naming_object_2")
    naming_object_3 = _ice_item("naming_object_3")
    follows_commands = _ice_item("follows_commands")
    writes_sentence = _ice_item("writes_sentence")
    counts_backwards = _ice_item("counts_backwards")
    consciousness = models.PositiveSmallIntegerField(
        "depressed level of consciousness", choices=Consciousness.choices, default=Consciousness.NORMAL
    )
    seizure = models.PositiveSmallIntegerField(choices=SeizureFinding.choices, default=SeizureFinding.NONE)
    motor = models.PositiveSmallIntegerField(
        "motor findings", choices=MotorFinding.choices, default=MotorFinding.NONE
    )
    raised_icp = models.PositiveSmallIntegerField(
        "raised ICP / cerebral oedema", choices=RaisedIcpFinding.choices, default=RaisedIcpFinding.NONE
    )
    ice_score = models.PositiveSmallIntegerField("ICE score (0–10)", editable=False, default=0)
    icans_grade = models.PositiveSmallIntegerField("ICANS grade (ASTCT)", editable=False, default=0)
    scale_version = models.CharField(max_length=16, default=ASTCT_VERSION, editable=False)

    class Meta:
        verbose_name = "ICANS assessment"
        ordering = ["patient", "assessed_at"]
        constraints = [
            models.CheckConstraint(condition=Q(ice_score__lte=10), name="icans_ice_score_0_to_10"),
            models.CheckConstraint(condition=Q(icans_grade__lte=4), name="icans_grade_0_to_4"),
            models.CheckConstraint(
                condition=Q(consciousness__in=Consciousness.values), name="icans_consciousness_in_scale"
            ),
            models.CheckConstraint(
                condition=Q(seizure__in=SeizureFinding.values), name="icans_seizure_in_scale"
            ),
            models.CheckConstraint(condition=Q(motor__in=MotorFinding.values), name="icans_motor_in_scale"),
            models.CheckConstraint(
                condition=Q(raised_icp__in=RaisedIcpFinding.values), name="icans_raised_icp_in_scale"
            ),
        ]

    def __str__(self) -> str:
        return f"ICANS grade {self.icans_grade} (ICE {self.ice_score})"

    computed_fields = ("ice_score", "icans_grade")

    def refresh_computed_fields(self) -> None:
        self.ice_score = ice_score({field: getattr(self, field) for field in ICE_ITEM_FIELDS})
        self.icans_grade = icans_grade(
            ice=self.ice_score,
            consciousness=self.consciousness,
            seizure=self.seizure,
            motor=self.motor,
            raised_icp=self.raised_icp,
        )

    def clean(self) -> None:
        if not self.patient_id:
            return
        require_disease_area(self.patient, DiseaseArea.ICANS, "An ICANS assessment")
        errors: dict[str, list[str]] = {}
        found = patient_date_errors(self.patient, self.assessed_at, "ICANS assessment")
        if found:
            errors["assessed_at"] = found
        if self.consciousness == Consciousness.UNAROUSABLE and any(getattr(self, f) for f in ICE_ITEM_FIELDS):
            errors["consciousness"] = [
                "An unarousable patient cannot perform the ICE test; untick the ICE items or correct the "
                "level of consciousness."
            ]
        if errors:
            raise ValidationError(errors)


class CrsAssessment(ComputedScoreMixin, RegistryRecord):
    """A cytokine release syndrome assessment; the ASTCT grade is computed."""

    review_section = Section.DIAGNOSIS
    patient_lookup = "patient"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="crs_assessments")
    assessed_at = models.DateTimeField()
    fever = models.BooleanField("fever ≥38.0 °C (no other cause)", default=False)
    fever_masked_by_treatment = models.BooleanField(
        "after antipyretic or anti-cytokine therapy",
        default=False,
        help_text="Fever is then no longer required; the grade follows hypotension and hypoxia.",
    )
    hypotension = models.PositiveSmallIntegerField(choices=Hypotension.choices, default=Hypotension.NONE)
    hypoxia = models.PositiveSmallIntegerField(choices=Hypoxia.choices, default=Hypoxia.NONE)
    death_from_crs = models.BooleanField("death from CRS", default=False)
    crs_grade = models.PositiveSmallIntegerField("CRS grade (ASTCT)", editable=False, default=0)
    scale_version = models.CharField(max_length=16, default=ASTCT_VERSION, editable=False)

    class Meta:
        verbose_name = "CRS assessment"
        ordering = ["patient", "assessed_at"]
        constraints = [
            models.CheckConstraint(condition=Q(crs_grade__lte=5), name="crs_grade_0_to_5"),
            models.CheckConstraint(
                condition=Q(hypotension__in=Hypotension.values), name="crs_hypotension_in_scale"
            ),
            models.CheckConstraint(condition=Q(hypoxia__in=Hypoxia.values), name="crs_hypoxia_in_scale"),
        ]

    def __str__(self) -> str:
        return f"CRS grade {self.crs_grade}"

    computed_fields = ("crs_grade",)

    def refresh_computed_fields(self) -> None:
        self.crs_grade = crs_grade(
            fever=self.fever,
            hypotension=self.hypotension,
            hypoxia=self.hypoxia,
            fever_masked_by_treatment=self.fever_masked_by_treatment,
            death_from_crs=self.death_from_crs,
        )

    def clean(self) -> None:
        if not self.patient_id:
            return
        require_disease_area(self.patient, DiseaseArea.ICANS, "A CRS assessment")
        errors = patient_date_errors(self.patient, self.assessed_at, "CRS assessment")
        if self.death_from_crs and not self.patient.death_date:
            errors.append("Death from CRS needs the patient's date of death recorded.")
        if errors:
            raise ValidationError({"assessed_at": errors})
