"""Reading the change history: a patient's timeline and study-wide audit rows.

Every registry model keeps a django-simple-history table. A change is one history row compared with
the previous row of the same record: who, when (UTC), what happened, the old and new value of each
changed field, and the reason given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from django.db import models

from registry import models as registry_models

ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}

#: The case-record section each model belongs to (as on the patient page).
SECTION_OF: dict[str, str] = {
    "patient": "identity",
    "patientidentifier": "identity",
    "npslediagnosis": "diagnosis",
    "npslemanifestation": "diagnosis",
    "sledai2kassessment": "diagnosis",
    "lmdiagnosis": "diagnosis",
    "mutationfinding": "diagnosis",
    "cartinfusion": "diagnosis",
    "icansassessment": "diagnosis",
    "crsassessment": "diagnosis",
    "lumbarpuncture": "procedures",
    "csfresult": "procedures",
    "pathogentest": "procedures",
    "intrathecaldose": "procedures",
    "systemictherapy": "therapy",
    "adverseevent": "safety",
    "dischargeoutcome": "outcomes",
    "responseassessment": "outcomes",
    "followupevent": "outcomes",
    "course": "procedures",
    "plannedinjection": "procedures",
    "safetyoverride": "procedures",
    "doseformulation": "procedures",
}

#: Bookkeeping fields never shown as changes.
SKIPPED_FIELDS = {"id", "created_at", "updated_at", "version"}


@dataclass(frozen=True)
class FieldChange:
    field: str
    label: str
    old: str
    new: str


@dataclass(frozen=True)
class Change:
    history_id: int
    at: dt.datetime
    user: str
    user_id: int | None
    action: str
    model: str
    model_label: str
    section: str
    object_id: int
    record: str
    reason: str
    fields: tuple[FieldChange, ...] = field(default_factory=tuple)


@lru_cache(maxsize=4096)
def _related_label(related_model: type[models.Model], pk) -> str:
    obj = related_model._default_manager.filter(pk=pk).first()
    return str(obj) if obj is not None else f"{related_model._meta.verbose_name} #{pk} (deleted)"


def _display(model: type[models.Model], name: str, value) -> str:
    if value is None or value == "":
        return ""
    model_field = model._meta.get_field(name)
    if model_field.is_relation:
        return _related_label(model_field.related_model, value)
    if model_field.choices:
        return str(dict(model_field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _tracked_fields(model: type[models.Model]) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if f.name not in SKIPPED_FIELDS]


def _field_changes(model, previous, current) -> tuple[FieldChange, ...]:
    changes = []
    for model_field in _tracked_fields(model):
        attname = model_field.attname
        old = getattr(previous, attname) if previous is not None else None
        new = getattr(current, attname) if current is not None else None
        if previous is not None and current is not None and old == new:
            continue
        if previous is None and new in (None, "", False):
            continue
        name = model_field.name
        changes.append(
            FieldChange(
                name, str(model_field.verbose_name), _display(model, name, old), _display(model, name, new)
            )
        )
    return tuple(changes)


def changes_of(model: type[models.Model], rows: Iterable) -> Iterator[Change]:
    """Turn history rows of one model (any order) into changes, each against the record's previous row."""
    for _row, change in row_changes(model, rows):
        yield change


def row_changes(model: type[models.Model], rows: Iterable) -> Iterator[tuple[object, Change]]:
    """Each history row (oldest first) with the change it records."""
    previous: dict[int, object] = {}
    for row in sorted(rows, key=lambda r: (r.history_date, r.history_id)):
        before = previous.get(row.id)
        # A deletion shows the values the record had; a creation or change, what differs from before.
        fields = (
            _field_changes(model, row, None)
            if row.history_type == "-"
            else _field_changes(model, before, row)
        )
        previous[row.id] = row
        user = row.history_user
        yield (
            row,
            Change(
                history_id=row.history_id,
                at=row.history_date,
                user=user.get_full_name() or user.get_username() if user else "system (unattributed)",
                user_id=row.history_user_id,
                action=ACTIONS[row.history_type],
                model=model._meta.model_name,
                model_label=str(model._meta.verbose_name),
                section=SECTION_OF.get(model._meta.model_name, "other"),
                object_id=row.id,
                record=_record_label(model, row),
                reason=row.history_change_reason or "",
                fields=fields,
            ),
        )


def _record_label(model, row) -> str:
    try:
        return str(row.instance)
    except Exception:  # a label that needs a related row that no longer exists
        return f"{model._meta.verbose_name} #{row.id}"


def patient_history_rows(
    patient_id: int, *, include_identifiers: bool
) -> list[tuple[type[models.Model], list]]:
    """History rows of everything that belongs (or belonged) to the patient, by model."""
    m = registry_models

    def rows(model, **lookup):
        return list(model.history.filter(**lookup).select_related("history_user"))

    lp_ids = set(m.LumbarPuncture.history.filter(patient_id=patient_id).values_list("id", flat=True))
    csf_ids = set(m.CsfResult.history.filter(lumbar_puncture_id__in=lp_ids).values_list("id", flat=True))
    npsle_ids = set(m.NpsleDiagnosis.history.filter(patient_id=patient_id).values_list("id", flat=True))
    lm_ids = set(m.LmDiagnosis.history.filter(patient_id=patient_id).values_list("id", flat=True))
    found = [(m.Patient, rows(m.Patient, id=patient_id))]
    if include_identifiers:
        found.append((m.PatientIdentifier, rows(m.PatientIdentifier, patient_id=patient_id)))
    for model in (
        m.NpsleDiagnosis,
        m.Sledai2kAssessment,
        m.LmDiagnosis,
        m.CarTInfusion,
        m.IcansAssessment,
        m.CrsAssessment,
        m.LumbarPuncture,
        m.SystemicTherapy,
        m.AdverseEvent,
        m.DischargeOutcome,
        m.ResponseAssessment,
        m.FollowUpEvent,
    ):
        found.append((model, rows(model, patient_id=patient_id)))
    found += [
        (m.NpsleManifestation, rows(m.NpsleManifestation, diagnosis_id__in=npsle_ids)),
        (m.MutationFinding, rows(m.MutationFinding, diagnosis_id__in=lm_ids)),
        (m.CsfResult, rows(m.CsfResult, id__in=csf_ids)),
        (m.PathogenTest, rows(m.PathogenTest, csf_result_id__in=csf_ids)),
        (m.IntrathecalDose, rows(m.IntrathecalDose, lumbar_puncture_id__in=lp_ids)),
    ]
    return found


def patient_timeline(
    patient_id: int, *, include_identifiers: bool, section: str | None = None, user_id: int | None = None
) -> list[Change]:
    """Every change to a patient's case record, newest first, optionally for one section or user."""
    changes = [
        change
        for model, rows in patient_history_rows(patient_id, include_identifiers=include_identifiers)
        for change in changes_of(model, rows)
    ]
    if section:
        changes = [c for c in changes if c.section == section]
    if user_id:
        changes = [c for c in changes if c.user_id == user_id]
    return sorted(changes, key=lambda c: (c.at, c.history_id), reverse=True)
