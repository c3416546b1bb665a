"""Live scores for the forms: the page sends the ticked items, the models compute as they do on save.

Keeping the arithmetic on the server means the SLEDAI-2K weights, the ICE/ICANS and CRS rules and
the CTCAE cut-points exist once (registry.scoring), not again in JavaScript.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.http import QueryDict

from registry.choices import (
    Consciousness,
    CtcaeVersion,
    Hypotension,
    Hypoxia,
    MotorFinding,
    RaisedIcpFinding,
    SeizureFinding,
)
from registry.models import AdverseEvent, CrsAssessment, IcansAssessment, Sledai2kAssessment
from registry.scoring import ICE_ITEM_FIELDS, SLEDAI_2K_DESCRIPTORS, ctcae_lab_unit


def _ticked(data: QueryDict, name: str) -> bool:
    return data.get(name) in ("on", "true", "1")


def _choice(data: QueryDict, name: str, enum) -> int:
    try:
        value = int(data.get(name, 0))
    except ValueError:
        return 0
    return value if value in enum.values else 0


def _decimal(data: QueryDict, name: str) -> Decimal | None:
    value = data.get(name)
    try:
        return Decimal(value) if value else None  # None or "" is no value
    except InvalidOperation:
        return None


def sledai(data: QueryDict) -> dict:
    assessment = Sledai2kAssessment(**{d.field: _ticked(data, d.field) for d in SLEDAI_2K_DESCRIPTORS})
    assessment.refresh_computed_fields()
    return {"total": assessment.total}


def icans(data: QueryDict) -> dict:
    assessment = IcansAssessment(
        **{field: _ticked(data, field) for field in ICE_ITEM_FIELDS},
        consciousness=_choice(data, "consciousness", Consciousness),
        seizure=_choice(data, "seizure", SeizureFinding),
        motor=_choice(data, "motor", MotorFinding),
        raised_icp=_choice(data, "raised_icp", RaisedIcpFinding),
    )
    assessment.refresh_computed_fields()
    return {"ice_score": assessment.ice_score, "icans_grade": assessment.icans_grade}


def crs(data: QueryDict) -> dict:
    assessment = CrsAssessment(
        fever=_ticked(data, "fever"),
        fever_masked_by_treatment=_ticked(data, "fever_masked_by_treatment"),
        hypotension=_choice(data, "hypotension", Hypotension),
        hypoxia=_choice(data, "hypoxia", Hypoxia),
        death_from_crs=_ticked(data, "death_from_crs"),
    )
    assessment.refresh_computed_fields()
    return {"crs_grade": assessment.crs_grade}


def ctcae(data: QueryDict) -> dict:
    """The grade a lab value implies, or a note saying why none can be suggested."""
    event = AdverseEvent(
        ctcae_term=data.get("ctcae_term", ""),
        ctcae_version=data.get("ctcae_version") or CtcaeVersion.V5,
        lab_value=_decimal(data, "lab_value"),
        lab_lower_limit=_decimal(data, "lab_lower_limit"),
        lab_upper_limit=_decimal(data, "lab_upper_limit"),
    )
    grade = event.suggested_grade
    unit = ctcae_lab_unit(event.ctcae_version, event.ctcae_term)
    if event.lab_value is None:
        note = (
            f"Enter the lab value ({unit}) to get a suggested grade."
            if unit
            else "No lab-based grade for this term."
        )
    elif grade is None:
        note = (
            "Enter the lab's reference limit to confirm grade 1."
            if unit
            else "No lab-based grade for this term."
        )
    elif grade == 0:
        note = "Within normal limits."
    else:
        note = f"Suggested: grade {grade}"
    return {"suggested_grade": grade, "ctcae_note": note, "lab_unit": unit or ""}


CALCULATORS = {"sledai": sledai, "icans": icans, "crs": crs, "ctcae": ctcae}
