"""What one history row changed: the field-by-field difference with the record's previous row.

Both the audit views (a patient's timeline, the audit export) and the lost-update check (what
someone else changed since you opened the form) read history this way, so it lives here, below both.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.db import models

ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}

#: Bookkeeping fields never shown as changes.
SKIPPED_FIELDS = {"id", "created_at", "updated_at", "version"}


@dataclass(frozen=True)
class FieldChange:
    field: str
    label: str
    old: str
    new: str


@lru_cache(maxsize=4096)
def _related_label(related_model: type[models.Model], pk: Any) -> str:
    obj = related_model._default_manager.filter(pk=pk).first()
    return str(obj) if obj is not None else f"{related_model._meta.verbose_name} #{pk} (deleted)"


def _display(model: type[models.Model], name: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    model_field = model._meta.get_field(name)
    if isinstance(model_field, models.ForeignObjectRel):  # not a concrete field: never tracked
        return str(value)
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


def _tracked_fields(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    return [f for f in model._meta.concrete_fields if f.name not in SKIPPED_FIELDS]


def field_changes(model: type[models.Model], previous: Any, current: Any) -> tuple[FieldChange, ...]:
    """The tracked fields that differ between two history rows (previous None: a creation)."""
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


def user_label(row: Any) -> str:
    """Who made the change a history row records, as people read it."""
    user = row.history_user
    return str(user.get_full_name() or user.get_username()) if user else "system (unattributed)"
