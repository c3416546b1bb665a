"""Reading the audit trail: a patient's timeline and study-wide audit rows.

Every registry model keeps a django-simple-history table. A change is one history row compared with
the previous row of the same record: who, when (UTC), what happened, the old and new value of each
changed field, and the reason given. Action events (``ActionEvent``: submitted, locked with a
signature, query closed, course stopped, exported…) say what happened and why; the timeline
interleaves both, newest first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.db import models
from django.db.models import Q, QuerySet

from registry.catalogue import history_owners, patient_record_models
from registry.history import (
    ACTIONS,
    FieldChange,
    Related,
    field_changes,
    foreign_keys,
    related_records,
    user_label,
)

from .models import ActionEvent

#: The "kind" filter of the history page: field changes, every action, or one kind of action.
CHANGES, EVENTS = "changes", "events"


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
    reason: str
    fields: tuple[FieldChange, ...] = field(default_factory=tuple)
    row: Any = field(default=None, repr=False, compare=False)
    related: Related = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def record(self) -> str:
        """The record's label as this row had it, worked out when shown (the audit export shows
        none). A label may name a parent record (a CSF result its LP, a diagnosis its patient): the
        parents come from ``related``, read beforehand for all the rows (``related_records``)."""
        instance = self.row.instance
        for foreign_key in foreign_keys(type(instance)):
            parent = self.related.get((foreign_key.related_model, getattr(instance, foreign_key.attname)))
            if parent is not None:
                foreign_key.set_cached_value(instance, parent)
        try:
            return str(instance)
        except Exception:  # a label that needs a related row that no longer exists
            return f"{self.model_label} #{self.object_id}"


def changes_of(model: type[models.Model], rows: Iterable, related: Related) -> Iterator[Change]:
    """Turn history rows of one model (any order) into changes, each against the record's previous row."""
    for _row, change in row_changes(model, rows, related):
        yield change


def row_changes(
    model: type[models.Model],
    rows: Iterable,
    related: Related | None = None,
) -> Iterator[tuple[Any, Change]]:
    """Each history row (oldest first) with the change it records; ``related`` gives the labels
    their parent records (``related_records``)."""
    previous: dict[int, object] = {}
    for row in sorted(rows, key=lambda r: (r.history_date, r.history_id)):
        before = previous.get(row.id)
        # A deletion shows the values the record had; a creation or change, what differs from before.
        fields = (
            field_changes(model, row, None, related)
            if row.history_type == "-"
            else field_changes(model, before, row, related)
        )
        previous[row.id] = row
        yield (
            row,
            Change(
                history_id=row.history_id,
                at=row.history_date,
                user=user_label(row),
                user_id=row.history_user_id,
                action=ACTIONS[row.history_type],
                model=model._meta.model_name or "",
                model_label=str(model._meta.verbose_name),
                section=getattr(model, "review_section", None) or "other",
                object_id=row.id,
                reason=row.history_change_reason or "",
                fields=fields,
                row=row,
                related=related or {},
            ),
        )


def patient_history_rows(
    patient_id: int, *, include_identifiers: bool
) -> list[tuple[type[models.Model], list]]:
    """History rows of everything that belongs (or belonged) to the patient, by model.

    Every audited model that belongs to a patient takes part (registry.catalogue), protocols'
    courses, planned injections, overrides and dose products included.
    """
    known: dict = {}
    found: list[tuple[type[models.Model], list]] = []
    for model in patient_record_models(include_identifiers=include_identifiers):
        ids = history_owners(model, {patient_id}, known)
        found.append((model, list(model.history.filter(id__in=ids).select_related("history_user"))))
    return found


def patient_timeline(
    patient_id: int, *, include_identifiers: bool, section: str | None = None, user_id: int | None = None
) -> list[Change]:
    """Every change to a patient's case record, newest first, optionally for one section or user."""
    histories = patient_history_rows(patient_id, include_identifiers=include_identifiers)
    related = related_records(histories)
    changes = [change for model, rows in histories for change in changes_of(model, rows, related)]
    if section:
        changes = [c for c in changes if c.section == section]
    if user_id:
        changes = [c for c in changes if c.user_id == user_id]
    return sorted(changes, key=lambda c: (c.at, c.history_id), reverse=True)


def patient_events(patient_id: int) -> QuerySet[ActionEvent]:
    """Action events about the patient, and those over many patients that covered them (exports, imports)."""
    covering = ActionEvent.objects.filter(covered__patient_id=patient_id).values("pk")
    return ActionEvent.objects.filter(Q(patient_id=patient_id) | Q(pk__in=covering)).select_related("actor")


@dataclass(frozen=True)
class Entry:
    """One line of a patient's timeline: a field-level change or an action event."""

    at: dt.datetime
    order: int
    change: Change | None = None
    event: ActionEvent | None = None

    @property
    def is_event(self) -> bool:
        return self.event is not None

    @property
    def section(self) -> str:
        if self.change:
            return self.change.section
        assert self.event is not None  # an entry is a change or an event
        return self.event.section or "other"

    @property
    def user_id(self) -> int | None:
        if self.change:
            return self.change.user_id
        assert self.event is not None  # an entry is a change or an event
        return self.event.actor_id

    @property
    def user(self) -> str:
        if self.change:
            return self.change.user
        assert self.event is not None  # an entry is a change or an event
        actor = self.event.actor
        return (actor.get_full_name() or actor.get_username()) if actor else "System (data-quality rule)"

    def matches(self, kind: str) -> bool:
        if not kind:
            return True
        if kind == CHANGES:
            return self.change is not None
        if kind == EVENTS:
            return self.event is not None
        return self.event is not None and self.event.kind == kind


def patient_entries(patient_id: int, *, include_identifiers: bool) -> list[Entry]:
    """Field changes and action events of the patient, interleaved, newest first."""
    entries = [
        Entry(at=c.at, order=c.history_id, change=c)
        for c in patient_timeline(patient_id, include_identifiers=include_identifiers)
    ]
    entries += [Entry(at=e.occurred_at, order=e.pk, event=e) for e in patient_events(patient_id)]
    return sorted(entries, key=lambda entry: (entry.at, entry.is_event, entry.order), reverse=True)
