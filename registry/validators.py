"""Field-level plausibility and unit-trap validators.

Each says what is wrong and the likely fix, so a study nurse can correct a value typed in the wrong
unit. They run in ``full_clean()`` (forms, admin, services, importers); the database constraints on
the models are the backstop for the hard ranges.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError

from .csf_limits import (
    CHLORIDE_RANGE_MMOL_PER_L,
    GLUCOSE_MAX_MMOL_PER_L,
    OPENING_PRESSURE_MAX_MMH2O,
    OPENING_PRESSURE_MIN_MMH2O,
    PROTEIN_MAX_G_PER_L,
)
from .dosing import dose_cap_message

C3_MAX_G_PER_L = Decimal("5")
C4_MAX_G_PER_L = Decimal("2")


def validate_pressure_mmh2o(value: int | None) -> None:
    if value is None:
        return
    if value < OPENING_PRESSURE_MIN_MMH2O:
        raise ValidationError(
            "%(value)s mmH2O is implausibly low. Was it measured in cmH2O or kPa? Enter mmH2O "
            "(%(value)s cmH2O = %(as_mm)s mmH2O; 1 kPa ≈ 102 mmH2O).",
            code="pressure_unit",
            params={"value": value, "as_mm": value * 10},
        )
    if value > OPENING_PRESSURE_MAX_MMH2O:
        raise ValidationError(
            "%(value)s mmH2O is above what a manometer reads (%(max)s mmH2O). Check the value and unit.",
            code="pressure_too_high",
            params={"value": value, "max": OPENING_PRESSURE_MAX_MMH2O},
        )


def validate_csf_protein_g_per_l(value: Decimal | None) -> None:
    if value is not None and value > PROTEIN_MAX_G_PER_L:
        raise ValidationError(
            "%(value)s g/L of CSF protein is implausible (above %(max)s g/L). Is this mg/dL or mg/L? "
            "%(value)s mg/dL = %(from_mg_dl)s g/L; %(value)s mg/L = %(from_mg_l)s g/L.",
            code="protein_unit",
            params={
                "value": value,
                "max": PROTEIN_MAX_G_PER_L,
                "from_mg_dl": value / 100,
                "from_mg_l": value / 1000,
            },
        )


def validate_csf_glucose_mmol_per_l(value: Decimal | None) -> None:
    if value is not None and value > GLUCOSE_MAX_MMOL_PER_L:
        raise ValidationError(
            "%(value)s mmol/L of CSF glucose is implausible. Was it entered in mg/dL? "
            "%(value)s mg/dL = %(converted)s mmol/L.",
            code="glucose_unit",
            params={"value": value, "converted": (value * Decimal("0.0555")).quantize(Decimal("0.01"))},
        )


def validate_csf_chloride_mmol_per_l(value: Decimal | None) -> None:
    low, high = CHLORIDE_RANGE_MMOL_PER_L
    if value is not None and not low <= value <= high:
        raise ValidationError(
            "%(value)s mmol/L of CSF chloride is outside the plausible %(low)s–%(high)s mmol/L. "
            "Check the value (mEq/L equals mmol/L for chloride).",
            code="chloride_range",
            params={"value": value, "low": low, "high": high},
        )


def validate_c3_g_per_l(value: Decimal | None) -> None:
    if value is not None and value > C3_MAX_G_PER_L:
        raise ValidationError(
            "C3 of %(value)s g/L is implausible. Was it entered in mg/dL? %(value)s mg/dL = %(converted)s g/L.",
            code="complement_unit",
            params={"value": value, "converted": value / 100},
        )


def validate_c4_g_per_l(value: Decimal | None) -> None:
    if value is not None and value > C4_MAX_G_PER_L:
        raise ValidationError(
            "C4 of %(value)s g/L is implausible. Was it entered in mg/dL? %(value)s mg/dL = %(converted)s g/L.",
            code="complement_unit",
            params={"value": value, "converted": value / 100},
        )


def validate_percentage(value: Decimal | None) -> None:
    if value is not None and not 0 <= value <= 100:
        raise ValidationError("A percentage must lie between 0 and 100.", code="percentage_range")


def validate_intrathecal_dose(drug: str, dose_mg: Decimal | None) -> None:
    """Refuse a dose above the drug's intrathecal cap (raised against the ``dose_mg`` field)."""
    if dose_mg is None:
        return
    message = dose_cap_message(drug, dose_mg)
    if message:
        raise ValidationError({"dose_mg": ValidationError(message, code="dose_above_cap")})
