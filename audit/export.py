"""The audit export: every change to a study's records in a date range, one row per changed field, and
every action event (submitted, locked, query closed, exported, imported…), one row each, in time order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.db.models import Exists, OuterRef, Q

from accounts.models import Site
from registry import models as m
from registry.catalogue import history_owners, patient_record_models
from registry.chunked import filter_in_chunks
from registry.history import related_records

from .models import ActionEvent, ActionEventPatient
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
    "signature_meaning",
    "signer",
    "detail",
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
        history = list(filter_in_chunks(model.history.select_related("history_user"), "id", owners))
        for row, change in row_changes(model, history, related_records([(model, history)])):
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
                            "signature_meaning": "",
                            "signer": "",
                            "detail": "",
                        },
                    )
                )
    collected.extend(_event_rows(study, start, end, patients, site_ids))
    for _, _, row in sorted(collected, key=lambda item: (item[0], item[1])):
        yield row


def _events(study: m.Study, start, end, site_ids: set[int] | None):
    """The study's action events in the range that the allowed sites may see.

    An event about a patient is shown with that patient; an event over many (an export, an import)
    when it covered a patient of the allowed sites; one about no patient (a report definition) to
    those who report on the study at every site, or hold a role at one of its sites.
    """
    events = ActionEvent.objects.filter(study=study).select_related("actor")
    if start:
        events = events.filter(occurred_at__gte=start)
    if end:
        events = events.filter(occurred_at__lte=end)
    if site_ids is None:
        return events
    covers_allowed = Exists(
        ActionEventPatient.objects.filter(event=OuterRef("pk"), patient__site_id__in=site_ids)
    )
    # The patients of ``_patient_map``: ever at an allowed site (a subquery, not a list of them all).
    ever_allowed = m.Patient.history.filter(study_id=study.pk, site_id__in=site_ids).values("id")
    allowed = Q(patient_id__in=ever_allowed) | Q(Q(patient__isnull=True), covers_allowed)
    if study.sites.filter(pk__in=site_ids).exists():
        covers_any = Exists(ActionEventPatient.objects.filter(event=OuterRef("pk")))
        allowed |= Q(Q(patient__isnull=True), ~covers_any)
    return events.filter(allowed)


def _event_values(event: ActionEvent) -> dict[str, str]:
    """An export's field is its tables (with the patient count); another event's, its state."""
    if "tables" in event.detail:
        tables = ", ".join(event.detail["tables"])
        return {
            "field": "tables",
            "old_value": "",
            "new_value": f"{event.detail['patients']} patients: {tables}",
        }
    changed = event.old_state or event.new_state
    return {"field": "state" if changed else "", "old_value": event.old_state, "new_value": event.new_state}


def _event_rows(study, start, end, patients: dict[int, tuple[str, str]], site_ids: set[int] | None):
    rows = []
    for event in _events(study, start, end, site_ids):
        code, site = patients.get(event.patient_id, ("", "")) if event.patient_id else ("", "")
        actor = event.actor
        detail = {k: v for k, v in event.detail.items() if k not in ("filters", "options", "summary")}
        rows.append(
            (
                event.occurred_at,
                0,
                {
                    "changed_at_utc": event.occurred_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
                    "user": (actor.get_full_name() or actor.get_username()) if actor else "system",
                    "action": str(event.get_kind_display()).lower(),
                    "section": event.section,
                    "model": event.object_model,
                    "object_id": event.object_id,
                    "patient": code,
                    "site": site,
                    **_event_values(event),
                    "reason": event.reason,
                    "signature_meaning": event.signature_meaning,
                    "signer": event.signer,
                    "detail": "; ".join(f"{k}: {v}" for k, v in detail.items()),
                },
            )
        )
    return rows
