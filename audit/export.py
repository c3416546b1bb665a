"""The audit export: every change to a study's records in a date range, one row per changed field."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator

from registry import models as m

from .models import SecurityEvent, SecurityEventKind
from .timeline import row_changes

COLUMNS = [
    "changed_at_utc",
    "user",
    "action",
    "section",
    "model",
    "object_id",
    "patient",
    "site",
    "field",
    "old_value",
    "new_value",
    "reason",
]

#: How each model's history reaches the patient (a patient_id column, or via its parent's ids).
VIA_PARENT = {
    "npslemanifestation": ("diagnosis_id", m.NpsleDiagnosis),
    "mutationfinding": ("diagnosis_id", m.LmDiagnosis),
    "csfresult": ("lumbar_puncture_id", m.LumbarPuncture),
    "intrathecaldose": ("lumbar_puncture_id", m.LumbarPuncture),
}


def _patient_map(study_id: int, site_ids: set[int] | None) -> dict[int, tuple[str, str]]:
    """Patient id → (study code, site code) for everyone ever in the study at the allowed sites."""
    rows = (
        m.Patient.history.filter(study_id=study_id)
        .values_list("id", "study_code", "site_id")
        .order_by("history_id")
    )
    sites = dict(m.Site.objects.values_list("id", "code"))
    found: dict[int, tuple[str, str]] = {}
    for patient_id, code, site_id in rows:
        if site_ids is None or site_id in site_ids:
            found[patient_id] = (code, sites.get(site_id, str(site_id)))
    return found


def _owner_map(patients: set[int]) -> dict[str, dict[int, int]]:
    """For models without a patient column: object id → patient id, through their parents' history."""
    lp = dict(m.LumbarPuncture.history.filter(patient_id__in=patients).values_list("id", "patient_id"))
    csf = {
        cid: lp[lid]
        for cid, lid in m.CsfResult.history.filter(lumbar_puncture_id__in=lp).values_list(
            "id", "lumbar_puncture_id"
        )
        if lid in lp
    }
    npsle = dict(m.NpsleDiagnosis.history.filter(patient_id__in=patients).values_list("id", "patient_id"))
    lm = dict(m.LmDiagnosis.history.filter(patient_id__in=patients).values_list("id", "patient_id"))
    return {"lumbarpuncture": lp, "csfresult": csf, "npslediagnosis": npsle, "lmdiagnosis": lm}


def audit_rows(
    study: m.Study,
    *,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    site_ids: set[int] | None = None,
    include_identifiers: bool = False,
) -> Iterator[dict[str, str]]:
    """Audit rows for the study, oldest first; ``site_ids`` None means every site."""
    patients = _patient_map(study.pk, site_ids)
    ids = set(patients)
    owners = _owner_map(ids)
    models = [
        model
        for model in (
            m.Patient,
            m.PatientIdentifier,
            m.NpsleDiagnosis,
            m.NpsleManifestation,
            m.Sledai2kAssessment,
            m.LmDiagnosis,
            m.MutationFinding,
            m.CarTInfusion,
            m.IcansAssessment,
            m.CrsAssessment,
            m.LumbarPuncture,
            m.CsfResult,
            m.PathogenTest,
            m.IntrathecalDose,
            m.SystemicTherapy,
            m.AdverseEvent,
            m.DischargeOutcome,
            m.ResponseAssessment,
            m.FollowUpEvent,
        )
        if include_identifiers or model is not m.PatientIdentifier
    ]
    start = dt.datetime.combine(date_from, dt.time.min, tzinfo=dt.UTC) if date_from else None
    end = dt.datetime.combine(date_to, dt.time.max, tzinfo=dt.UTC) if date_to else None
    collected = []
    for model in models:
        name = model._meta.model_name
        history = model.history.select_related("history_user")
        if model is m.Patient:
            history, owner_of = history.filter(id__in=ids), (lambda row: row.id)
        elif model is m.PathogenTest:
            csf = owners["csfresult"]
            history, owner_of = (
                history.filter(csf_result_id__in=csf),
                (lambda row, csf=csf: csf[row.csf_result_id]),
            )
        elif name in VIA_PARENT:
            column, parent = VIA_PARENT[name]
            parents = owners[parent._meta.model_name]
            history = history.filter(**{f"{column}__in": parents})
            owner_of = lambda row, column=column, parents=parents: parents[getattr(row, column)]  # noqa: E731
        else:
            history, owner_of = history.filter(patient_id__in=ids), (lambda row: row.patient_id)
        for row, change in row_changes(model, history):
            if (start and change.at < start) or (end and change.at > end):
                continue
            code, site = patients[owner_of(row)]
            for field in change.fields or ():
                collected.append(
                    (
                        change.at,
                        change.history_id,
                        {
                            "changed_at_utc": change.at.astimezone(dt.UTC).isoformat(timespec="seconds"),
                            "user": change.user,
                            "action": change.action,
                            "section": change.section,
                            "model": change.model,
                            "object_id": str(change.object_id),
                            "patient": code,
                            "site": site,
                            "field": field.field,
                            "old_value": field.old,
                            "new_value": field.new,
                            "reason": change.reason,
                        },
                    )
                )
    collected.extend(
        _identified_exports(study, start, end, {site for _, site in patients.values()}, site_ids)
    )
    for _, _, row in sorted(collected, key=lambda item: (item[0], item[1])):
        yield row


def _identified_exports(study, start, end, site_codes: set[str], site_ids: set[int] | None):
    """Identified exports of the study as audit rows (who, when, why, which tables, how many patients)."""
    events = SecurityEvent.objects.filter(kind=SecurityEventKind.IDENTIFIED_EXPORT, detail__study=study.code)
    if start:
        events = events.filter(occurred_at__gte=start)
    if end:
        events = events.filter(occurred_at__lte=end)
    rows = []
    for event in events.select_related("user"):
        sites = event.detail.get("sites", [])
        if site_ids is not None and not set(sites) & site_codes:
            continue
        rows.append(
            (
                event.occurred_at,
                0,
                {
                    "changed_at_utc": event.occurred_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
                    "user": event.user.get_username() if event.user else event.username,
                    "action": "identified export",
                    "section": "",
                    "model": "study",
                    "object_id": study.code,
                    "patient": "",
                    "site": ", ".join(sites),
                    "field": "tables",
                    "old_value": "",
                    "new_value": f"{event.detail.get('patients', 0)} patients: {', '.join(event.detail.get('tables', []))}",
                    "reason": event.detail.get("reason", ""),
                },
            )
        )
    return rows


def spreadsheet_safe(value: str) -> str:
    """Prefix text a spreadsheet would run as a formula (=, +, -, @, tab, CR) with an apostrophe."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def write_csv(rows: Iterator[dict[str, str]], handle: io.TextIOBase) -> int:
    writer = csv.DictWriter(handle, fieldnames=COLUMNS)
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow({key: spreadsheet_safe(value) for key, value in row.items()})
        count += 1
    return count
