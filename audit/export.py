"""The audit export: every change to a study's records in a date range, one row per changed field, and
every action event (submitted, locked, query closed, exported, imported…), one row each, in time order."""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import pickle
import tempfile
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import IO, Any

from django.db.models import Exists, OuterRef, Q

from accounts.models import Site
from registry import models as m
from registry.catalogue import Owners, history_owners, patient_record_models
from registry.chunked import filter_in_chunks
from registry.history import related_records
from registry.models.base import RegistryRecord

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


#: An export row with its place in time order: (when, history id or 0 for an event, model's position).
_Keyed = tuple[tuple[dt.datetime, int, int], dict[str, str]]

#: Patients whose change rows are worked out and sorted together; the sorted runs wait on disk and
#: are merged in time order, so the export's memory is one chunk's rows, not the study's.
PATIENTS_PER_CHUNK = 500


def audit_rows(
    study: m.Study,
    *,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    site_ids: set[int] | None = None,
    include_identifiers: bool = False,
) -> Iterator[dict[str, str]]:
    """Audit rows for the study, oldest first; ``site_ids`` None means every site.

    Ties in time keep one order: a history row's fields in field order, rows of one model by history
    id, then models in catalogue order; events first at the same instant (as a history id of 0)."""
    patients = _patient_map(study.pk, site_ids)
    start = dt.datetime.combine(date_from, dt.time.min, tzinfo=dt.UTC) if date_from else None
    end = dt.datetime.combine(date_to, dt.time.max, tzinfo=dt.UTC) if date_to else None
    # Every audited model that belongs to a patient (registry.catalogue), protocols' records included.
    models = patient_record_models(include_identifiers=include_identifiers)
    ids, known = set(patients), Owners()
    owners = {model: history_owners(model, ids, known) for model in models}
    ordered = sorted(patients)
    chunk_of = {pid: i // PATIENTS_PER_CHUNK for i, pid in enumerate(ordered)}
    chunks = max(1, -(-len(ordered) // PATIENTS_PER_CHUNK))
    # Each model's records by the chunk of their (latest) patient, read once from the owners.
    records: dict[type, list[list[int]]] = {}
    for model, owned in owners.items():
        records[model] = [[] for _ in range(chunks)]
        for record_id, patient_id in owned.items():
            records[model][chunk_of[patient_id]].append(record_id)

    def chunk_rows(index: int) -> list[_Keyed]:
        rows: list[_Keyed] = []
        for position, model in enumerate(models):
            history = list(
                filter_in_chunks(model.history.select_related("history_user"), "id", records[model][index])
            )
            rows += _change_rows(model, position, history, owners[model], patients, start, end)
        rows.sort(key=itemgetter(0))
        return rows

    events = _event_rows(study, start, end, patients, site_ids)
    with contextlib.ExitStack() as files:
        if chunks == 1:
            runs: list[Iterable[_Keyed]] = [chunk_rows(0)]
        else:
            runs = [
                _spill(chunk_rows(i), files.enter_context(tempfile.TemporaryFile())) for i in range(chunks)
            ]
        for _, row in heapq.merge(*runs, events, key=itemgetter(0)):
            yield row


def _change_rows(
    model: type[RegistryRecord],
    position: int,
    history: list[Any],
    owners: dict[int, int],
    patients: dict[int, tuple[str, str]],
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> Iterator[_Keyed]:
    """One row per changed field of the model's history rows in the date range, each with its sort key."""
    for row, change in row_changes(model, history, related_records([(model, history)])):
        if (start and change.at < start) or (end and change.at > end):
            continue
        code, site = patients[owners[row.id]]
        for field in change.fields or ():
            yield (
                (change.at, change.history_id, position),
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


#: Rows pickled together, a list at a time (a call per row would be 428,058 calls for the demo study).
_SPILL_BATCH = 1_000


def _spill(rows: list[_Keyed], spill: IO[bytes]) -> Iterator[_Keyed]:
    """Write the sorted rows to ``spill`` now (and forget them); read them back in order when merged."""
    for begin in range(0, len(rows), _SPILL_BATCH):
        pickle.dump(rows[begin : begin + _SPILL_BATCH], spill, protocol=pickle.HIGHEST_PROTOCOL)
    rows.clear()
    spill.seek(0)

    def read() -> Iterator[_Keyed]:
        while True:
            try:
                yield from pickle.load(spill)
            except EOFError:
                return

    return read()


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


def _event_rows(
    study, start, end, patients: dict[int, tuple[str, str]], site_ids: set[int] | None
) -> Iterator[_Keyed]:
    """The events' rows in time order, read as they are merged (a study's events are not held);
    events of one instant newest first, as the events' own ordering lists them."""
    for event in (
        _events(study, start, end, site_ids).order_by("occurred_at", "-pk").iterator(chunk_size=2000)
    ):
        code, site = patients.get(event.patient_id, ("", "")) if event.patient_id else ("", "")
        actor = event.actor
        detail = {k: v for k, v in event.detail.items() if k not in ("filters", "options", "summary")}
        yield (
            (event.occurred_at, 0, 0),
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
