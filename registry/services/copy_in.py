"""Bulk inserts written with PostgreSQL's COPY instead of a bulk INSERT: the records and their history.

Profiled on a 44,190-row import (2,000 patients), ``bulk_create_with_history`` was 55% of the import
and two thirds of it the history rows: Django prepares every value through its field (``get_db_prep_save``)
and compiles one huge INSERT per batch. Here each column's way to COPY text is chosen once per model
and the rows go in COPY's text format to ``COPY … FROM STDIN``. The history rows are those
simple-history's ``bulk_history_create`` makes — the tracked fields' values, the date, the user, the
reason, "+" — so the history reads the same. The records themselves followed (``copy_insert``): their
keys are drawn from the table's sequence first, as the INSERT … RETURNING of ``bulk_create`` would
have given them, and each value passes its field's ``pre_save`` as there (dates of creation, the
version). Only on PostgreSQL; elsewhere the library's path runs.
"""

from __future__ import annotations

import io
import json
import operator
from collections.abc import Callable, Sequence
from typing import Any, cast

from django.db import connection, models
from django.utils import timezone

from accounts.models import User

#: A value of one column as COPY text (escaped); NULL is ``\N``.
ToText = Callable[[Any], str]
NULL = "\\N"


def _escaped(text: str) -> str:
    """COPY's text format: backslash, tab, newline and carriage return escaped."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _to_text(field: models.Field) -> ToText:
    """How one column's Python value is written for COPY (chosen once per column)."""
    if isinstance(field, models.BooleanField):
        return lambda value: NULL if value is None else ("t" if value else "f")
    if isinstance(field, models.DateTimeField):  # before DateField: a subclass of it
        return lambda value: NULL if value is None else value.isoformat()
    if isinstance(field, models.DateField):
        return lambda value: NULL if value is None else value.isoformat()
    if isinstance(field, models.JSONField):
        encoder = field.encoder
        return lambda value: NULL if value is None else _escaped(json.dumps(value, cls=encoder))
    if isinstance(field, (models.IntegerField, models.DecimalField, models.ForeignKey)):
        return lambda value: NULL if value is None else str(value)
    if isinstance(field, (models.CharField, models.TextField)):
        return lambda value: NULL if value is None else _escaped(str(value))
    prepare = field.get_db_prep_save
    return lambda value: NULL if value is None else _escaped(str(prepare(value, connection)))


def copy_history(
    model: type[models.Model], objects: Sequence[models.Model], *, actor: User, reason: str
) -> None:
    """Write one "+" history row per saved object of ``model`` (objects carry their new keys)."""
    history = model.history.model  # type: ignore[attr-defined]
    tracked = {field.attname for field in history.tracked_fields}
    stamp = {
        "history_date": timezone.now(),
        "history_user_id": actor.pk,
        "history_change_reason": reason,
        "history_type": "+",
    }
    columns = [field for field in history._meta.concrete_fields if not field.primary_key]
    for field in columns:
        if field.attname not in tracked and field.attname not in stamp:
            raise LookupError(f"{history.__name__}.{field.name}: no value for a COPY of the history")
    writers = [(field.attname, _to_text(field), field.attname in stamp) for field in columns]
    fixed = {name: to_text(stamp[name]) for name, to_text, stamped in writers if stamped}
    buffer = io.StringIO()
    for obj in objects:
        buffer.write(
            "\t".join(
                fixed[name] if stamped else to_text(getattr(obj, name)) for name, to_text, stamped in writers
            )
        )
        buffer.write("\n")
    buffer.seek(0)
    names = ", ".join(connection.ops.quote_name(field.column) for field in columns)
    table = connection.ops.quote_name(history._meta.db_table)
    with connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {table} ({names}) FROM STDIN", buffer)


def copy_insert(model: type[models.Model], objects: Sequence[models.Model]) -> None:
    """Insert new ``objects`` of ``model`` (one table, no inheritance) as ``bulk_create`` would:
    each gets its key from the table's sequence and its ``pre_save`` values, and is then saved."""
    meta = model._meta
    table = connection.ops.quote_name(meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, meta.pk.column, len(objects)],
        )
        keys = sorted(key for (key,) in cursor.fetchall())
    columns = list(meta.concrete_fields)
    writers = [(_value_to_save(field), _to_text(field)) for field in columns]
    buffer = io.StringIO()
    for obj, key in zip(objects, keys, strict=True):
        obj.pk = key
        buffer.write("\t".join(to_text(value_of(obj)) for value_of, to_text in writers))
        buffer.write("\n")
    buffer.seek(0)
    names = ", ".join(connection.ops.quote_name(cast(str, field.column)) for field in columns)
    with connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {table} ({names}) FROM STDIN", buffer)
    for obj in objects:
        obj._state.adding, obj._state.db = False, connection.alias


def _value_to_save(field: models.Field) -> Callable[[models.Model], Any]:
    """``field.pre_save(obj, add=True)``, read straight from the object where the field's class keeps
    Django's plain ``pre_save`` (most fields: it only reads the attribute)."""
    if type(field).pre_save is models.Field.pre_save:
        return operator.attrgetter(field.attname)
    return lambda obj: field.pre_save(obj, True)
