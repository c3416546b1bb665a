"""Recording a lumbar puncture together with its CSF result, pathogen tests and intrathecal doses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction

from accounts.models import User

from ..models import CsfResult, IntrathecalDose, LumbarPuncture, PathogenTest, Patient
from .bulk import record_create_many
from .records import attribute


def _collect(errors: dict[str, list[str]], prefix: str, exc: ValidationError) -> None:
    for field, messages in exc.message_dict.items():
        key = f"{prefix}{field}" if field != "__all__" else (prefix.rstrip(".") or "__all__")
        errors.setdefault(key, []).extend(messages)


def _validate(obj: models.Model, errors: dict[str, list[str]], prefix: str, parent: str | None) -> None:
    """full_clean() without the parent link when the parent is new (it has no key to check yet)."""
    exclude = [parent] if parent and getattr(obj, f"{parent}_id") is None else None
    try:
        obj.full_clean(exclude=exclude)
    except ValidationError as exc:
        _collect(errors, prefix, exc)


@transaction.atomic
def lumbar_puncture_save(
    *,
    lp: LumbarPuncture,
    csf: CsfResult | None = None,
    pathogen_tests: Sequence[PathogenTest] = (),
    doses: Sequence[IntrathecalDose] = (),
    removed: Iterable[models.Model] = (),
    actor: User,
    reason: str,
) -> LumbarPuncture:
    """Save an LP and its CSF, pathogen tests and doses as one unit: all valid, or nothing written.

    Used for new and existing LPs alike; ``removed`` lists child records to delete. Errors come back
    keyed by field, prefixed for the nested records: ``csf.protein_g_per_l``, ``doses.1.dose_mg``
    (the second dose), ``pathogen_tests.0.result``.
    """
    errors: dict[str, list[str]] = {}
    _validate(lp, errors, "", None)
    if csf is not None:
        csf.lumbar_puncture = lp
        _validate(csf, errors, "csf.", "lumbar_puncture")
    if pathogen_tests and csf is None:
        errors.setdefault("pathogen_tests", []).append("Pathogen tests need a CSF result.")
    if csf is not None:
        for index, test in enumerate(pathogen_tests):
            test.csf_result = csf
            _validate(test, errors, f"pathogen_tests.{index}.", "csf_result")
    seen: set[tuple[str, str, str]] = set()
    for index, dose in enumerate(doses):
        dose.lumbar_puncture = lp
        _validate(dose, errors, f"doses.{index}.", "lumbar_puncture")
        key = (dose.drug, dose.drug_other, dose.timing)
        if key in seen:
            errors.setdefault(f"doses.{index}.drug", []).append(
                "This drug is entered twice for the same timing."
            )
        seen.add(key)
    if errors:
        raise ValidationError(errors)

    for obj in removed:
        attribute(obj, actor=actor, reason=reason)
        obj.delete()
    # Children hold the parent objects; Django copies each new parent's key onto them on save.
    for record in (lp, csf, *pathogen_tests, *(dose for dose in doses if dose.pk is not None)):
        if record is not None:
            attribute(record, actor=actor, reason=reason)
            record.save()
    # An LP's new doses (two or three) in set queries, validated above, under the same write hooks.
    record_create_many(
        [dose for dose in doses if dose.pk is None], actor=actor, reason=reason, validated=True
    )
    return lp


def lumbar_puncture_record(
    *,
    patient: Patient,
    actor: User,
    reason: str = "Lumbar puncture recorded",
    csf: Mapping[str, Any] | None = None,
    pathogen_tests: Iterable[Mapping[str, Any]] = (),
    doses: Iterable[Mapping[str, Any]] = (),
    **lp_fields: Any,
) -> LumbarPuncture:
    """Create an LP with its CSF result, pathogen tests and doses from plain values."""
    lp = LumbarPuncture(patient=patient, **lp_fields)
    return lumbar_puncture_save(
        lp=lp,
        csf=CsfResult(**csf) if csf else None,
        pathogen_tests=[PathogenTest(**fields) for fields in pathogen_tests],
        doses=[IntrathecalDose(**fields) for fields in doses],
        actor=actor,
        reason=reason,
    )
