"""The audit export: every change to a study's records in a date range, one row per changed field."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from accounts.models import Site
from registry import models as m
from registry.catalogue import history_owners, patient_record_models

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


def _patient_map(study_id: int, site_ids: set[int] | None) -> dict[int, tuple[str, str]]:
    """Patient id → (study code, site code) for everyone ever in the study at the allowed sites."""
    rows = (
        m.Patient.history.filter(study_id=study_id)
        .values_list("id", "study_code", "site_id")
        .order_by("history_id")
    )
    sites = dict(Site.objects.values_list("id", "code"))
    found: dict[int, tuple[str, str]] = {}
    for patient_id, code, site_id in rows:
        if site_ids is None or site_id in site_ids:
            found[patient_id] = (code, sites.get(site_id, str(site_id)))
    return found


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
    start = dt.datetime.combine(date_from, dt.time.min, tzinfo=dt.UTC) if date_from else None
    end = dt.datetime.combine(date_to, dt.time.max, tzinfo=dt.UTC) if date_to else None
    collected = []
    known: dict = {}
    # Every audited model that belongs to a patient (registry.catalogue), protocols' records included.
    for model in patient_record_models(include_identifiers=include_identifiers):
        owners = history_owners(model, ids, known)
        history = model.history.filter(id__in=list(owners)).select_related("history_user")
        for row, change in row_changes(model, history):
            if (start and change.at < start) or (end and change.at > end):
                continue
            code, site = patients[owners[row.id]]
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
