"""What one history row changed: the field-by-field difference with the record's previous row.

Both the audit views (a patient's timeline, the audit export) and the lost-update check (what
someone else changed since you opened the form) read history this way, so it lives here, below both.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models

from .chunked import filter_in_chunks

ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}

#: Bookkeeping fields never shown as changes.
SKIPPED_FIELDS = {"id", "created_at", "updated_at", "version"}


@dataclass(frozen=True)
class FieldChange:
    field: str
    label: str
    old: str
    new: str


#: Records by (model, primary key), read beforehand for many history rows (``related_records``).
Related = Mapping[tuple[type[models.Model], Any], models.Model]


def foreign_keys(model: type[models.Model]) -> list[models.ForeignKey[Any, Any]]:
    return [f for f in model._meta.concrete_fields if isinstance(f, models.ForeignKey)]


def related_records(
    histories: Iterable[tuple[type[models.Model], Sequence[Any]]],
) -> dict[tuple[type[models.Model], Any], models.Model]:
    """The records that the history rows' foreign keys point to, each model read once, with the
    records their own labels name (``select_related()``): a change shows a foreign key as the record's
    label, and a record's label may name its parent (a CSF result its LP). Read row by row, that was a
    query per value; a record deleted since is absent (its label says so)."""
    wanted: dict[type[models.Model], set[Any]] = defaultdict(set)
    for model, rows in histories:
        for foreign_key in foreign_keys(model):
            target = foreign_key.related_model
            assert isinstance(target, type)  # a concrete foreign key names its model
            wanted[target].update(v for row in rows if (v := getattr(row, foreign_key.attname)) is not None)
    return {
        (target, record.pk): record
        for target, ids in wanted.items()
        if ids
        for record in filter_in_chunks(target._default_manager.select_related(), "pk", ids)
    }


def _related_label(related_model: type[models.Model], pk: Any, related: Related | None) -> str:
    """The current label of the record a foreign key names: from ``related`` when the caller read
    them beforehand, else read now (never kept: a label changes when its record does)."""
    if related is None:
        obj = related_model._default_manager.filter(pk=pk).first()
    else:
        obj = related.get((related_model, pk))
    return str(obj) if obj is not None else f"{related_model._meta.verbose_name} #{pk} (deleted)"


def _display(model: type[models.Model], name: str, value: Any, related: Related | None = None) -> str:
    if value is None or value == "":
        return ""
    model_field = model._meta.get_field(name)
    if isinstance(model_field, models.ForeignObjectRel):  # not a concrete field: never tracked
        return str(value)
    if model_field.is_relation:
        target = model_field.related_model
        assert isinstance(target, type)  # a concrete relation names its model
        return _related_label(target, value, related)
    if model_field.choices:
        return str(dict(model_field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _tracked_fields(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    return [f for f in model._meta.concrete_fields if f.name not in SKIPPED_FIELDS]


def field_changes(
    model: type[models.Model], previous: Any, current: Any, related: Related | None = None
) -> tuple[FieldChange, ...]:
    """The tracked fields that differ between two history rows (previous None: a creation);
    ``related``: the records their foreign keys name, read beforehand (``related_records``)."""
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
                name,
                str(model_field.verbose_name),
                _display(model, name, old, related),
                _display(model, name, new, related),
            )
        )
    return tuple(changes)


def user_label(row: Any) -> str:
    """Who made the change a history row records, as people read it."""
    user = row.history_user
    return str(user.get_full_name() or user.get_username()) if user else "system (unattributed)"
