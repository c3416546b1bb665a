"""Saving a diagnosis together with its repeating parts (syndromes, mutations) as one change."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User

from ..choices import Specimen
from ..models import LmDiagnosis, MutationFinding, NpsleDiagnosis, NpsleManifestation
from .records import attribute, record_save


@transaction.atomic
def npsle_diagnosis_save(
    *, diagnosis: NpsleDiagnosis, syndromes: Mapping[str, dt.date | None], actor: User, reason: str
) -> NpsleDiagnosis:
    """Save the diagnosis and make its ACR-1999 syndromes exactly ``syndromes`` (code → onset date)."""
    record_save(diagnosis, actor=actor, reason=reason)
    existing = {m.syndrome: m for m in diagnosis.manifestations.all()}
    errors: dict[str, list[str]] = {}
    for code, manifestation in existing.items():
        if code not in syndromes:
            attribute(manifestation, actor=actor, reason=reason)
            manifestation.delete()
    for code, onset in syndromes.items():
        manifestation = existing.get(code) or NpsleManifestation(diagnosis=diagnosis, syndrome=code)
        if manifestation.pk and manifestation.onset_date == onset:
            continue
        manifestation.onset_date = onset
        try:
            record_save(manifestation, actor=actor, reason=reason)
        except ValidationError as exc:
            for messages in exc.message_dict.values():
                errors.setdefault(f"syndromes.{code}", []).extend(messages)
    if errors:
        raise ValidationError(errors)
    return diagnosis


@transaction.atomic
def lm_diagnosis_save(
    *, diagnosis: LmDiagnosis, tissue: Iterable[str], csf: Iterable[str], actor: User, reason: str
) -> LmDiagnosis:
    """Save the LM diagnosis and make its driver mutations exactly those listed per specimen."""
    record_save(diagnosis, actor=actor, reason=reason)
    errors: dict[str, list[str]] = {}
    for specimen, wanted, field in (
        (Specimen.TISSUE, set(tissue), "tissue_mutations"),
        (Specimen.CSF, set(csf), "csf_mutations"),
    ):
        current = {m.mutation: m for m in diagnosis.mutations.filter(specimen=specimen)}
        for code, finding in current.items():
            if code not in wanted:
                attribute(finding, actor=actor, reason=reason)
                finding.delete()
        for code in sorted(wanted - set(current)):
            try:
                record_save(
                    MutationFinding(diagnosis=diagnosis, specimen=specimen, mutation=code),
                    actor=actor,
                    reason=reason,
                )
            except ValidationError as exc:
                for messages in exc.message_dict.values():
                    errors.setdefault(field, []).extend(messages)
    if errors:
        raise ValidationError(errors)
    return diagnosis
