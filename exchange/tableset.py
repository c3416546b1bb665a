"""One exchange table imported as a set: read, matched, validated and written together.

Row by row, an import cost 10–14 queries and two savepoints per row (~100 rows per CPU-second).
Here a table costs a fixed number of queries: the records it may match are read once
(``RecordIndex``: one query per table for the patients the file names), parents and references are
found in memory, every row is validated with the model's own rules (``full_clean`` and its check
constraints in Python, ``Model.batch_check`` for the rules that need the database, uniqueness in
memory against the records read), the review's locks and reasons are asked for the whole table
(``write_hooks.batch_refusals``), and new records are inserted with their history rows in bulk
(``bulk_record_create``). A changed record is saved on its own (``save()``: its version, its lock
check, its history row), since a correction file changes few records. A row with errors is reported
with its line and column and writes nothing; the importer rolls everything back if any row failed.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.db.models.expressions import DatabaseDefault

from registry import write_hooks
from registry.models.base import ComputedScoreMixin
from registry.models.constraints import evaluate
from registry.services.bulk import bulk_record_create
from registry.services.records import attribute

from .layout import Table

if TYPE_CHECKING:
    from .importer import Importer, ImportResult

#: Patients per ``IN (...)`` list (SQLite takes at most 32,766 parameters in one statement).
IDS_PER_QUERY = 5000


@dataclass
class Candidate:
    """One row of a table on its way to a record."""

    line: int
    row: dict[str, str]
    instance: Any = None
    existing: bool = False
    changed: list[str] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, column: str, message: str) -> None:
        self.errors.setdefault(column, []).append(message)

    @property
    def writes(self) -> bool:
        return not self.errors and (not self.existing or bool(self.changed))


class RecordIndex:
    """The records an import may match, by natural key: read once per table, then kept up to date.

    The key is the parent's id followed by the table's own key columns (a dose: its LP's id, drug,
    other drug, timing), as the layout declares them.
    """

    def __init__(self, patient_ids: Iterable[int]):
        self.patient_ids = sorted(set(patient_ids))
        self._tables: dict[str, dict[tuple, models.Model]] = {}

    @staticmethod
    def key(table: Table, obj: models.Model) -> tuple:
        return _key_reader(table)(obj)

    def records(self, table: Table) -> dict[tuple, models.Model]:
        if table.name not in self._tables:
            lookup = f"{table.model.patient_lookup}__in"
            found: dict[tuple, models.Model] = {}
            for start in range(0, len(self.patient_ids), IDS_PER_QUERY):
                chunk = self.patient_ids[start : start + IDS_PER_QUERY]
                for obj in table.model._default_manager.filter(**{lookup: chunk}):
                    found[self.key(table, obj)] = obj
            self._tables[table.name] = found
        return self._tables[table.name]

    def find(self, table: Table, key: tuple) -> models.Model | None:
        return self.records(table).get(key)

    def add(self, table: Table, objects: Iterable[models.Model]) -> None:
        records = self.records(table)
        for obj in objects:
            records[self.key(table, obj)] = obj


class TableImport:
    """Import the rows of one table (see the module docstring)."""

    def __init__(self, importer: Importer, table: Table, reason: str):
        self.importer, self.table, self.reason = importer, table, reason
        self.model = table.model
        self.fields = {f.name: f for f in self.model._meta.concrete_fields}
        #: The columns read into the model, in order (the same for every row).
        self.parsed = [
            name
            for name in [*table.model_keys(), *(f.name for f in table.value_fields())]
            if not (name == "study_code" and table.name != "patients")
        ]
        self.model_keys = table.model_keys()
        self.readers = [(name, importer.reader(self.fields[name])) for name in self.parsed]
        #: Each concrete field's default, in the order of Model(*args); None when the model has other
        #: forward fields and keyword construction must fill them.
        meta = self.model._meta
        self.defaults = (
            [f.get_default for f in meta.concrete_fields]
            if len(meta.fields) == len(meta.concrete_fields)
            else None
        )

    def run(self, rows: list[tuple[int, dict[str, str]]], result: ImportResult) -> None:
        candidates = [self._resolve(line, row) for line, row in rows]
        writing = [c for c in candidates if c.writes]
        self._validate(writing)
        self._write([c for c in writing if not c.errors])
        self._report(candidates, result)

    def _report(self, candidates: list[Candidate], result: ImportResult) -> None:
        from .importer import Issue  # imported here: importer imports this module

        name = self.table.name
        for c in candidates:
            if c.errors:
                for column, messages in c.errors.items():
                    for message in messages:
                        column_name = "" if column == NON_FIELD_ERRORS else column
                        result.issues.append(Issue(name, c.line, column_name, message))
            elif not c.existing:
                result.created[name] += 1
                result.changes.append(f"created {name} line {c.line}")
            elif c.changed:
                result.changed[name] += 1
                described = "; ".join(f"{f} {c.before[f]!s} → {getattr(c.instance, f)!s}" for f in c.changed)
                result.changes.append(f"changed {name} line {c.line}: {described}")
            else:
                result.unchanged[name] += 1

    # --- from a row to an instance -------------------------------------------------------------

    def _resolve(self, line: int, row: dict[str, str]) -> Candidate:
        c = Candidate(line, row)
        patient = self.importer.row_patient(self.table, row, c)
        if c.errors:
            return c
        values = self._parse(row, c)
        if self.table.name == "patients":
            c.instance, c.existing = self.importer.patient_instance(row, values, c)
        else:
            assert patient is not None, "row_patient reports a child row that names no patient"
            parent = self.importer.parent_of(self.table, patient, row, c)
            if c.errors:
                return c
            key = (parent.pk, *(values[k] for k in self.model_keys))
            found = self.importer.index.find(self.table, key)
            c.existing = found is not None
            c.instance = found if found is not None else self._new_instance(parent)
            setattr(c.instance, self.table.parent_field, parent)  # known already: no query to reach it
        for column, field_name in self.table.references:
            values[field_name] = self.importer.reference(
                c.instance, field_name, row.get(column, ""), column, c
            )
        if c.errors:
            return c
        self._apply(c, values)
        return c

    def _new_instance(self, parent: models.Model) -> models.Model:
        """A new record with its fields' defaults, built as ``from_db`` builds one (positional values,
        Django's fast path): keyword construction was 8% of a 44,190-row import. The parent is set
        by the caller, through its descriptor, as the keyword would have been."""
        if self.defaults is None:
            return self.model(**{self.table.parent_field: parent})
        model: Any = self.model  # django-stubs types the arguments by keyword only
        return model(*[default() for default in self.defaults])

    def _parse(self, row: dict[str, str], c: Candidate) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, read in self.readers:
            if name not in row:
                continue  # a column the file does not have keeps the record's current value
            try:
                values[name] = read(row[name])
            except ValueError as error:
                c.add(name, str(error))
        return values

    def _apply(self, c: Candidate, values: dict[str, Any]) -> None:
        instance = c.instance
        if c.existing:
            c.changed = [
                name for name, value in values.items() if _differs(instance, self.fields[name], value)
            ]
            if not c.changed:
                return
            c.before = {name: getattr(instance, name) for name in c.changed}
        for name, value in values.items():
            setattr(instance, name, value)
        if isinstance(instance, ComputedScoreMixin):
            instance.refresh_computed_fields()  # bulk_create skips save(), where scores are computed
        for name in self.table.computed:
            given = (c.row.get(name) or "").strip()
            if given and given != str(getattr(instance, name)):
                c.add(
                    name,
                    f"is computed by the registry: {getattr(instance, name)} from the items in this row, not {given}",
                )
        attribute(instance, actor=self.importer.actor, reason=self.reason)

    # --- validation of the whole table ----------------------------------------------------------

    def _validate(self, candidates: list[Candidate]) -> None:
        """The model's rules for every row at once; errors land on each row, by field."""
        if not candidates:
            return
        new = [c for c in candidates if not c.existing]
        batch_check = getattr(self.model, "batch_check", None)
        if batch_check and new:  # the database-backed rules of clean(), one query for the table
            for position, errors in batch_check([c.instance for c in new]).items():
                for column, messages in errors.items():
                    for message in messages:
                        new[position].add(column, message)
        foreign_keys = [f for f in self.model._meta.concrete_fields if isinstance(f, models.ForeignKey)]
        by_column = _clean_fields_by_column(self.model, candidates)
        for c in candidates:
            # Links found by the importer exist; an empty one is still judged by its field.
            exclude = [f.name for f in foreign_keys if getattr(c.instance, f.attname) is not None]
            for column, messages in _clean(c.instance, exclude, by_column).items():
                for message in messages:
                    c.add(column, message)
        self._check_unique(candidates)
        refusals = write_hooks.batch_refusals(self.model, [c.instance for c in candidates])
        for position, problems in refusals.items():
            for column, message in problems.items():
                candidates[position].add(column, message)

    def _unique_rules(self) -> list[tuple[tuple[str, ...], Any, models.UniqueConstraint | None]]:
        rules: list[tuple[tuple[str, ...], Any, models.UniqueConstraint | None]] = [
            (tuple(constraint.fields), constraint.condition, constraint)
            for constraint in self.model._meta.constraints
            if isinstance(constraint, models.UniqueConstraint) and constraint.fields
        ]
        rules += [
            ((f.name,), None, None)
            for f in self.model._meta.concrete_fields
            if f.unique and not f.primary_key
        ]
        return rules

    def _check_unique(self, candidates: list[Candidate]) -> None:
        """Unique fields and constraints, in memory: against the records read for these patients that
        this table does not rewrite, then row by row in file order (a later row clashes, as if saved
        one by one)."""
        writing = {c.instance.pk for c in candidates if c.existing}
        if self.table.name == "patients":
            stored: Iterable[models.Model] = self.importer.patients.values()
        else:
            stored = self.importer.index.records(self.table).values()
        others = [obj for obj in stored if obj.pk not in writing]
        for fields, condition, constraint in self._unique_rules():
            attnames = [_attname(self.model, name) for name in fields]

            def value(obj, attnames=attnames, condition=condition):
                if condition is not None and evaluate(condition, obj) is not True:
                    return None
                found = tuple(getattr(obj, name) for name in attnames)
                return None if None in found else found  # NULLs never clash (SQL's unique rule)

            taken = {value(obj) for obj in others} - {None}
            for c in candidates:
                found = value(c.instance)
                if found is None or c.errors:
                    continue
                if found in taken:
                    column, message = self._unique_message(c.instance, fields, constraint)
                    c.add(column, message)
                taken.add(found)

    def _unique_message(self, instance, fields: tuple[str, ...], constraint) -> tuple[str, str]:
        """Django's own wording and field for a unique clash (as ``full_clean`` gives it)."""
        if constraint is None:
            return fields[0], instance.unique_error_message(self.model, fields).messages[0]
        default = constraint.violation_error_message == constraint.default_violation_error_message
        if constraint.condition is None and default:
            message = instance.unique_error_message(self.model, fields).messages[0]
        else:
            message = str(constraint.get_violation_error_message())
        column = instance._error_field(constraint) if hasattr(instance, "_error_field") else None
        return column or NON_FIELD_ERRORS, message

    # --- writing --------------------------------------------------------------------------------

    def _write(self, candidates: list[Candidate]) -> None:
        for c in candidates:
            if c.existing:
                c.instance.save()  # its version, its lock check, its history row
        new = [c.instance for c in candidates if not c.existing]
        if new:
            bulk_record_create(new, actor=self.importer.actor, reason=self.reason, validated=True)
            write_hooks.after_batch(self.model, new)
        written = [c.instance for c in candidates]
        if self.table.name == "patients":
            self.importer.patients.update({p.study_code: p for p in written})
        else:
            self.importer.index.add(self.table, written)


@cache
def _key_reader(table: Table) -> Callable[[models.Model], tuple]:
    """A record's key in ``RecordIndex``, its attributes named once per table (not per record)."""
    names = (_attname(table.model, table.parent_field), *table.model_keys())
    if len(names) == 1:  # attrgetter of one name gives the value, not a 1-tuple
        parent = operator.attrgetter(names[0])
        return lambda obj: (parent(obj),)
    return operator.attrgetter(*names)


def _attname(model: models.Model | type[models.Model], name: str) -> str:
    """The attribute a concrete field is stored under (a link's ``…_id``); the layout and the unique
    rules name concrete fields only, never a reverse relation."""
    return cast(models.Field, model._meta.get_field(name)).attname


def _differs(instance: models.Model, model_field: models.Field, value: Any) -> bool:
    if model_field.is_relation:  # compared by id: reading the related record would cost a query
        return getattr(instance, model_field.attname) != (value.pk if value is not None else None)
    return getattr(instance, model_field.name) != value


def _clean(instance: models.Model, exclude: list[str], cleaned: list[str]) -> dict[str, list[str]]:
    """``full_clean``'s field rules (but for the fields ``cleaned`` already), ``clean()`` and the check
    constraints (in Python), as plain text."""
    found: dict[str, list[str]] = {}
    try:
        instance.full_clean(exclude=[*exclude, *cleaned], validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        found = plain_messages(error)
    try:
        instance.validate_constraints(exclude=exclude)
    except ValidationError as error:
        for column, messages in plain_messages(error).items():
            found.setdefault(column, []).extend(messages)
    return found


#: Value types whose equal values are the same value (a Decimal is keyed by its text: 1.0 == 1.00).
_SAME_WHEN_EQUAL = (str, int, bool, type(None), dt.date)


def _memo_key(value: Any) -> tuple | None:
    kind = type(value)
    if kind in _SAME_WHEN_EQUAL:
        return (kind, value)
    if kind is Decimal:
        return (kind, str(value))
    return None  # a date-time (its zone), JSON, anything else: cleaned every time


def _value_only(model_field: models.Field) -> bool:
    """Whether the field's ``clean`` reads nothing but the value: Django's own ``clean``, ``validate``
    and ``run_validators`` (``to_python`` and validators take only the value)."""
    kind = type(model_field)
    return (
        kind.clean is models.Field.clean
        and kind.validate is models.Field.validate
        and kind.run_validators is models.Field.run_validators
    )


def _clean_fields_by_column(model: type[models.Model], candidates: list[Candidate]) -> list[str]:
    """Django's ``Model.clean_fields`` a column at a time, each distinct value of a column cleaned
    once; errors go on each row, by field, in field order as ``clean_fields`` gives them. Returns the
    fields cleaned, for ``full_clean`` to skip. A link the importer found is skipped, as before.

    Hand-rolled for speed, the same loop as Django's: a value that failed is cleaned again for each
    row (its message is Django's own, every time); one that passed is not, when its field's ``clean``
    depends on the value alone (``_value_only``). Per record, ``clean_fields`` was 9% of a 44,190-row
    import (pyinstrument)."""
    names = []
    for model_field in model._meta.fields:
        if model_field.generated:
            continue
        names.append(model_field.name)
        attname, is_link = model_field.attname, isinstance(model_field, models.ForeignKey)
        memo = _value_only(model_field)
        passed: dict[tuple, Any] = {}  # a value that passed → its cleaned value (when ``memo``)
        for c in candidates:
            raw = getattr(c.instance, attname)
            if (is_link and raw is not None) or (model_field.blank and raw in model_field.empty_values):
                continue
            if isinstance(raw, DatabaseDefault):
                continue
            key = _memo_key(raw) if memo else None
            if key is not None and key in passed:
                setattr(c.instance, attname, passed[key])
                continue
            try:
                value = model_field.clean(raw, c.instance)
            except ValidationError as error:
                for message in error.messages:
                    c.add(model_field.name, message)
                continue
            setattr(c.instance, attname, value)
            if key is not None:
                passed[key] = value
    return names


def plain_messages(error: ValidationError) -> dict[str, list[str]]:
    """A ValidationError as plain sentences per field (never the repr of a list)."""
    if hasattr(error, "error_dict"):
        return error.message_dict
    return {NON_FIELD_ERRORS: error.messages}
