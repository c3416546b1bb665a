"""Study exports: the exchange tables and the analysis dataset, de-identified unless asked otherwise.

De-identified (the default, and the only choice for researchers):
- no identifiers table; free text left out unless asked for;
- dates shifted by a per-patient offset (derived from the server's secret, never exported, the same
  on every export, so intervals within a patient are preserved) — or replaced by whole days from the
  patient's index admission;
- birth date and year replaced by the age at index, capped at 90 ("90" means 90 or older).
Identified exports (exact dates, identifiers, free text) are for roles that may see identifiers.
Every export is recorded as a security event.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from django.db import models
from django.db.models import F
from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

from accounts.access import Capability, site_ids_with
from analytics.datasets import build_dataset, data_dictionary
from analytics.deidentify import (
    AGE_CAP_YEARS,
    DateHandling,
    capped_age,
    date_shift_days,
    deidentification_note,
    deidentified_dataset,
)
from audit.models import SecurityEventKind
from audit.services import action_event_record, security_event_record
from registry import missing
from registry.action_events import Action, ActionKind
from registry.formatting import FORMULA_PREFIXES, plain, spreadsheet_safe
from registry.models import Patient, Study

from . import copied_csv
from .codec import FALSE, TRUE, _natural_keys, datetime_text, to_text
from .copied_csv import AmongIds
from .layout import BY_NAME, TABLES, Table

#: A fixed timestamp inside the zip files, so the same data give the same bytes.
ZIP_TIMESTAMP = (2000, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ExportOptions:
    identified: bool = False
    free_text: bool = False
    dates: DateHandling = DateHandling.SHIFT
    #: Why identified data leave the registry (required for an identified export, kept in the logs).
    reason: str = ""

    def __post_init__(self):
        if self.dates == DateHandling.EXACT and not self.identified:
            raise ValueError(
                "Exact dates are only in identified exports; choose shifted dates or days from index."
            )
        if self.identified and not self.reason.strip():
            raise ValueError("An identified export needs a reason (it is recorded with the export).")

    def describe(self) -> dict[str, Any]:
        described = {"identified": self.identified, "free_text": self.free_text, "dates": str(self.dates)}
        return described | ({"reason": self.reason} if self.identified else {})


class ExportRefused(PermissionError):
    """The user may not take this export (e.g. identified data without the identifier right)."""


@dataclass
class ExportTable:
    name: str
    columns: list[str]
    rows: Iterable[dict[str, Any]]  # text for the layout tables; typed values for the dataset
    labels: dict[str, str]
    codes: dict[str, dict[str, str]]  # column → code → label
    #: The patients the export covers (on its first table, ``patients``): for its audit record.
    patients: ExportPatients | None = None
    #: The CSV file's rows (no header) as PostgreSQL writes them, where it can (``copied_csv``).
    csv_rows: Callable[[], Iterable[bytes]] | None = None


def exportable_patients(study: Study, user, options: ExportOptions):
    """The study's patients this user may export: identified needs the identified-export right
    (study administrators) at the patient's site, de-identified the records or reporting right.

    ``user=None`` is the server's operator (the command line): every site.
    """
    patients = Patient.objects.filter(study=study).select_related("site").order_by("study_code")
    if user is None:
        return patients
    capabilities = (
        [Capability.EXPORT_IDENTIFIERS]
        if options.identified
        else [Capability.VIEW_RECORDS, Capability.RUN_REPORTS]
    )
    allowed: set[int] = set()
    for capability in capabilities:
        ids = site_ids_with(user, capability)
        if ids is None:  # every site
            return patients
        allowed |= ids
    if not allowed:
        raise ExportRefused(
            "Your role does not allow this export."
            if not options.identified
            else "Identified exports are only for study administrators (the identified-export right)."
        )
    return patients.filter(site_id__in=allowed)


def _owner_chain(table: Table):
    """The lookup from a table's records to their patient."""
    return "" if table.name == "patients" else table.model.patient_lookup


def _parent_key_path(table: Table, key: str) -> str:
    """The lookup of a key column that belongs to a parent's key (a dose's ``performed_at`` is its
    LP's): up the parent chain to the first table that holds the field."""
    path, current = table.parent_field, BY_NAME[table.parent or ""]
    while True:
        name = "start_date" if key == "course_start_date" and current.name == "courses" else key
        if name in {f.name for f in current.model._meta.concrete_fields}:
            return f"{path}__{name}"
        path, current = f"{path}__{current.parent_field}", BY_NAME[current.parent or ""]


#: How a reference column is labelled in the data dictionary, and the linked record's field written.
REFERENCE_LABELS = {
    "lumbar_puncture_performed_at": "Lumbar puncture it followed (performed at)",
    "phase_number": "Phase of the protocol (its number)",
}
REFERENCE_FIELDS = {"lumbar_puncture": "performed_at", "phase": "order"}
PARENT_KEY_LABELS = {
    "performed_at": "Performed at (of the lumbar puncture)",
    "course_start_date": "Start date of the course",
}
#: Patients per query while streaming: memory stays that of one chunk's rows, whatever the study's size.
PATIENTS_PER_CHUNK = 2000
#: Patients per ``COPY`` of a table on PostgreSQL (``copied_csv``): each statement joins the table to
#: the patients (and a dose to its LP) by scanning them, so 2,000-patient chunks scanned them 50 times
#: at 100,000 patients; memory stays that of one chunk's CSV text.
PATIENTS_PER_COPY = 10_000


#: Patients per fetch of the export's patient list (through a server-side cursor on PostgreSQL).
PATIENTS_PER_FETCH = 10_000


@dataclass(frozen=True)
class ExportPatients:
    """The patients an export covers, in study-code order, as columns.

    At 100,000 patients a list of a small object per patient held 39 MiB for the whole export
    (memray), and reading it as one result (psycopg2 holds a client-side cursor's every row)
    lifted the process to 335 MiB; as arrays it is 4 MiB, read ``PATIENTS_PER_FETCH`` rows at a time.
    """

    ids: np.ndarray  # int64
    study_codes: np.ndarray  # str
    index_dates: np.ndarray  # datetime64[D]
    #: The export's sites (their codes, sorted).
    site_codes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def chunks(self, size: int) -> Iterator[tuple[list[int], list[str]]]:
        """The patients ``size`` at a time: their ids and study codes, as Python values."""
        for start in range(0, len(self), size):
            end = start + size
            yield self.ids[start:end].tolist(), self.study_codes[start:end].tolist()


class _Dates:
    """Turns dates into shifted dates or days from index, per patient."""

    def __init__(self, study: Study, options: ExportOptions, patients: ExportPatients):
        self.options = options
        # Each mode reads only what it needs (a dict entry per patient: exact dates need none).
        ids = patients.ids.tolist()
        days = options.dates == DateHandling.DAYS
        self.index = dict(zip(ids, patients.index_dates.tolist(), strict=True)) if days else {}
        # Shifted exports read the shifts (a keyed hash per patient; 100,000 of them kept).
        shifted = options.dates == DateHandling.SHIFT
        self.shift_days = {pk: date_shift_days(study.code, pk) for pk in ids} if shifted else {}
        self.shift = {pk: dt.timedelta(days=days) for pk, days in self.shift_days.items()}

    def convert(self, patient_id: int, value):
        if value is None or self.options.dates == DateHandling.EXACT:
            return value
        if self.options.dates == DateHandling.SHIFT:
            return value + self.shift[patient_id]
        day = value.astimezone(dt.UTC).date() if isinstance(value, dt.datetime) else value
        return (day - self.index[patient_id]).days


class _Rows:
    """Rows made on demand: each pass reads the database again, a chunk of patients at a time."""

    def __init__(self, make: Callable[[], Iterator[dict[str, Any]]]):
        self._make = make

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._make()


class _Links:
    """Links to reference data (a site, a protocol, a user) written as their natural key, each read once."""

    def __init__(self) -> None:
        self._text: dict[tuple[type[models.Model], int], str] = {}

    def text(self, model_field: models.ForeignKey, pk: int | None) -> str:
        if pk is None:
            return ""
        related = model_field.related_model
        if (related, pk) not in self._text:
            self._read(related)
        return self._text[(related, pk)]

    def every_text(self, model_field: models.ForeignKey) -> dict[int, str]:
        """Each record of the linked model's text, by its id."""
        related = model_field.related_model
        self._read(related)
        return {pk: text for (model, pk), text in self._text.items() if model is related}

    def _read(self, related: type[models.Model]) -> None:
        encode, _ = _natural_keys()[related]
        for obj in related._default_manager.all():  # reference data: a few rows per model
            self._text[(related, obj.pk)] = encode(obj)


@dataclass(frozen=True)
class _Spec:
    """Which columns a table's export has and where each value is read from (a ``values()`` path)."""

    table: Table
    keys: list[str]
    fields: list[models.Field]
    drop_birth: bool

    @property
    def columns(self) -> list[str]:
        columns = [*self.keys, *(f.name for f in self.fields), *(c for c, _ in self.table.references)]
        if self.drop_birth:
            columns.insert(columns.index("index_admission_date"), "age_at_index")
        return columns

    def paths(self) -> dict[str, str]:
        model_fields = {f.name for f in self.table.model._meta.concrete_fields}
        paths = {k: k if k in model_fields else _parent_key_path(self.table, k) for k in self.keys[1:]}
        paths |= {f.name: f.attname for f in self.fields}
        for column, field_name in self.table.references:
            paths[column] = f"{field_name}__{REFERENCE_FIELDS[field_name]}"
        if self.drop_birth:
            paths |= {name: name for name in ("birth_date", "birth_year", "index_admission_date")}
        paths["_patient"] = _owner_chain(self.table) or "pk"
        return paths


def _spec(table: Table, options: ExportOptions) -> _Spec:
    hidden = () if options.free_text or options.identified else table.free_text()
    keys = [key for key in table.keys if key not in hidden]
    fields = [f for f in table.value_fields() if f.name not in hidden]
    drop_birth = not options.identified and table.name == "patients"
    if drop_birth:
        fields = [f for f in fields if f.name not in ("birth_date", "birth_year")]
    return _Spec(table, keys, fields, drop_birth)


def _layout_table(
    table: Table, patients: ExportPatients, dates: _Dates, options: ExportOptions
) -> ExportTable:
    spec = _spec(table, options)
    model_fields = {f.name: f for f in table.model._meta.concrete_fields}
    codes = {
        f.name: {str(c): str(label) for c, label in f.flatchoices if c != ""}
        for f in spec.fields
        if f.choices
    }
    for key in table.model_keys():
        if key in spec.keys and model_fields[key].choices:
            codes[key] = {str(c): str(label) for c, label in model_fields[key].flatchoices if c != ""}
    labels = {
        "study_code": "Study code (pseudonym)",
        "age_at_index": f"Age at index (years; {AGE_CAP_YEARS} = {AGE_CAP_YEARS} or older)",
        **{c: PARENT_KEY_LABELS[c] for c in spec.keys if c in PARENT_KEY_LABELS and c not in model_fields},
    }
    if "missing_codes" in spec.columns:
        labels["missing_codes"] = missing_codes_label()
    for name in spec.columns:
        if name in model_fields:
            labels.setdefault(name, str(model_fields[name].verbose_name))
    for column, _ in table.references:
        labels[column] = REFERENCE_LABELS[column]
    rows = _Rows(lambda: _layout_rows(spec, patients, dates))
    return ExportTable(table.name, spec.columns, rows, labels, codes, csv_rows=_copied(spec, patients, dates))


def _copied(spec: _Spec, patients: ExportPatients, dates: _Dates) -> Callable[[], Iterable[bytes]] | None:
    """The table's CSV rows written by PostgreSQL (``copied_csv``), when the database is PostgreSQL
    and every column is of a kind it writes (not the de-identified patients' capped age)."""
    table = spec.table
    fields = [table.key_field(key) for key in spec.keys[1:]] + spec.fields
    if (
        spec.drop_birth
        or not copied_csv.usable(table.model._default_manager.db)
        or any(copied_csv.kind_of(f) is None for f in fields)
    ):
        return None
    return partial(_copied_rows, spec, patients, dates)


def _copied_rows(spec: _Spec, patients: ExportPatients, dates: _Dates) -> Iterator[bytes]:
    table, links, paths = spec.table, _Links(), spec.paths()
    read = [(paths[key], table.key_field(key), True) for key in spec.keys[1:]]
    read += [(paths[f.name], f, False) for f in spec.fields]
    columns = []
    for path, model_field, key in read:
        known = links.every_text(model_field) if isinstance(model_field, models.ForeignKey) else {}
        kind = copied_csv.kind_of(model_field) or copied_csv.Kind.TEXT
        formula_like = copied_csv.formula_like(model_field, known)
        columns.append(copied_csv.Column(path, kind, key=key, links=known, formula_like=formula_like))
    for column, field_name in table.references:
        kind = copied_csv.Kind.TEXT if field_name == "phase" else copied_csv.Kind.DATETIME
        columns.append(copied_csv.Column(paths[column], kind))
    how = copied_csv.Dates(dates.options.dates, dates.shift_days, dates.index)
    chunks = (ids for ids, _ in patients.chunks(PATIENTS_PER_COPY))
    return copied_csv.csv_chunks(table.model, _owner_chain(table), columns, chunks, how)


def missing_codes_label() -> str:
    """The missing-data codes column: why an empty cell is empty, as JSON {column: code}."""
    meanings = ", ".join(f"{code} {text.lower()}" for code, text in missing.codes().items())
    return f"Missing-data codes: JSON {{column: code}} for empty cells ({meanings})"


def _layout_rows(spec: _Spec, patients: ExportPatients, dates: _Dates) -> Iterator[dict[str, Any]]:
    """The table's rows as text, in key order, a chunk of patients (in study-code order) at a time,
    read with ``values_list()``: no model objects, one query per chunk, and each column's way to
    text chosen once per table rather than per cell."""
    table, paths = spec.table, spec.paths()
    columns = list(paths)
    position = {column: index for index, column in enumerate(columns)}
    links, owner = _Links(), _owner_chain(table)
    formatted = [
        (key, position[key], _formatter(table.key_field(key), dates, links)) for key in spec.keys[1:]
    ] + [(f.name, position[f.name], _formatter(f, dates, links)) for f in spec.fields]
    patient_at = position["_patient"]
    for ids, study_codes in patients.chunks(PATIENTS_PER_CHUNK):
        chunk = dict(zip(ids, study_codes, strict=True))
        found = table.model._default_manager.filter(AmongIds(F(owner or "pk"), ids=list(chunk)))
        read = list(found.order_by().values_list(*paths.values()))
        if not read:
            continue
        by_column = list(zip(*read, strict=True))
        pks = by_column[patient_at]
        names = ["study_code", *(column for column, _, _ in formatted)]
        texts = [[chunk[pk] for pk in pks]]
        texts += [as_text(by_column[index], pks) for _, index, as_text in formatted]
        rows = [dict(zip(names, row, strict=True)) for row in zip(*texts, strict=True)]
        if table.references or spec.drop_birth:
            for row, values in zip(rows, read, strict=True):
                _layout_extras(spec, dict(zip(columns, values, strict=True)), values[patient_at], dates, row)
        rows.sort(key=lambda r: tuple(r[k] for k in spec.keys))
        yield from rows


#: How a column of values becomes text: (the column's values, their patients' pks) -> texts. A column
#: at a time, with the common types written inline: a function call per cell was a third of an export.
Formatter = Callable[[Sequence[Any], Sequence[int]], list[str]]


def _formatter(field: models.Field | None, dates: _Dates, links: _Links) -> Formatter:
    """The column's way to text (as ``codec.to_text`` writes it), picked once from the field's type."""
    if isinstance(field, models.ForeignKey):
        return lambda values, _: [links.text(field, value) for value in values]
    if isinstance(field, models.DateField):  # DateTimeField too
        return _date_formatter(field, dates)
    if isinstance(field, models.JSONField):
        dumps = partial(json.dumps, ensure_ascii=False, sort_keys=True)
        # Most records' missing-data codes are {}: written without a call to the encoder.
        return lambda values, _: [
            "" if value is None else "{}" if value == {} else dumps(value) for value in values
        ]
    if isinstance(field, models.BooleanField):
        return lambda values, _: ["" if value is None else (TRUE if value else FALSE) for value in values]
    if isinstance(field, models.DecimalField):
        return lambda values, _: ["" if value is None else plain(value) for value in values]
    if isinstance(field, (models.CharField, models.TextField, models.IntegerField)):
        return lambda values, _: ["" if value is None else str(value) for value in values]
    any_field = field or models.Field()
    return lambda values, _: [to_text(any_field, value) for value in values]


def _date_formatter(field: models.DateField, dates: _Dates) -> Formatter:
    """Dates as they are, shifted per patient, or as days from the patient's index admission."""
    as_text = datetime_text if isinstance(field, models.DateTimeField) else dt.date.isoformat
    if dates.options.dates == DateHandling.EXACT:
        return lambda values, _: ["" if value is None else as_text(value) for value in values]
    if dates.options.dates == DateHandling.SHIFT:
        shift = dates.shift
        return lambda values, pks: [
            "" if value is None else as_text(value + shift[pk]) for value, pk in zip(values, pks, strict=True)
        ]
    return lambda values, pks: [
        "" if value is None else str(dates.convert(pk, value)) for value, pk in zip(values, pks, strict=True)
    ]


def _layout_extras(
    spec: _Spec, read: dict[str, Any], patient_id: int, dates: _Dates, row: dict[str, Any]
) -> None:
    """The columns not read from the table's own fields: links to planned injections, and the capped
    age that replaces the birth date in de-identified exports."""
    for column, field_name in spec.table.references:
        value = read[column]
        if field_name == "phase":
            row[column] = "" if value is None else str(value)
        else:
            moment = dates.convert(patient_id, value)  # an int: days from index
            row[column] = (
                "" if moment is None else str(moment) if isinstance(moment, int) else datetime_text(moment)
            )
    if spec.drop_birth:
        age = Patient(
            birth_date=read["birth_date"],
            birth_year=read["birth_year"],
            index_admission_date=read["index_admission_date"],
        ).age_at_index_years
        capped = capped_age(age)
        row["age_at_index"] = "" if capped is None else str(capped)


def export_record(
    study: Study, tables: list[ExportTable], options: ExportOptions, *, fmt: str, request=None, user=None
):
    """The security event of an export: who, which study, which tables, how many patients, why.

    An identified export is its own kind of event (``identified_export``); the study's audit
    export lists those too.
    """
    covered = tables[0].patients
    assert covered is not None, "export_tables puts the patients on the first table"
    patients = len(covered)
    kind = SecurityEventKind.IDENTIFIED_EXPORT if options.identified else SecurityEventKind.EXPORT
    security_event_record(
        kind,
        request=request,
        user=user,
        detail={
            "what": f"study export ({fmt})",
            "study": study.code,
            **options.describe(),
            "tables": [table.name for table in tables],
            "patients": patients,
            "sites": list(covered.site_codes),
        },
    )
    action_event_record(
        Action(
            kind=ActionKind.IDENTIFIED_EXPORT if options.identified else ActionKind.EXPORT,
            actor=user if user is not None else getattr(request, "user", None),
            study_id=study.pk,
            # By id: the export has them, and 100,000 study codes cost a query of as many parameters.
            patient_ids=covered.ids.tolist(),
            object_label=f"{study.code} export ({fmt}): {patients} patients",
            reason=options.describe().get("reason", ""),
            detail={"format": fmt, "tables": [table.name for table in tables], "patients": patients},
        )
    )


def export_patients(study: Study, user, options: ExportOptions) -> ExportPatients:
    """The patients an export covers, in study-code order (as Python orders the codes), read in
    batches of ``PATIENTS_PER_FETCH`` into columns (``ExportPatients`` says why)."""
    rows = (
        exportable_patients(study, user, options)
        .order_by()
        .values_list("pk", "study_code", "index_admission_date", "site__code")
        .iterator(chunk_size=PATIENTS_PER_FETCH)
    )
    ids, codes, dates = [np.empty(0, np.int64)], [np.empty(0, str)], [np.empty(0, "M8[D]")]
    sites: set[str] = set()
    while batch := list(itertools.islice(rows, PATIENTS_PER_FETCH)):
        pks, study_codes, index_dates, site_codes = zip(*batch, strict=True)
        ids.append(np.array(pks, dtype=np.int64))
        codes.append(np.array(study_codes, dtype=str))
        dates.append(np.array(index_dates, dtype="M8[D]"))
        sites.update(site_codes)
    order = np.argsort(np.concatenate(codes), kind="stable")  # code points, as sorted() compares str
    return ExportPatients(
        ids=np.concatenate(ids)[order],
        study_codes=np.concatenate(codes)[order],
        index_dates=np.concatenate(dates)[order],
        site_codes=tuple(sorted(sites)),
    )


def export_tables(study: Study, *, user, options: ExportOptions, stream: bool = False) -> list[ExportTable]:
    """Every exchange table of the study (the identifiers only in identified exports), then the dataset.

    ``stream``: the rows are read while they are written, a chunk of patients at a time (the
    downloads); otherwise each table's rows are a list (small studies, tests).
    """
    patients = export_patients(study, user, options)
    dates = _Dates(study, options, patients)
    tables = [
        _layout_table(table, patients, dates, options)
        for table in TABLES
        if options.identified or table.name != "patient_identifiers"
    ]
    tables.append(_dataset_table(study, patients, options))
    tables[0].patients = patients
    if not stream:
        for table in tables:
            table.rows = list(table.rows)
    return tables


#: Patients per analysis-dataset build while streaming. Each build has a fixed cost (about 0.7 s:
#: one query per kind of record, the derivations), so 2,000-patient chunks made 35 s of a
#: 100,000-patient export; memory stays that of one chunk's frame.
DATASET_PATIENTS_PER_CHUNK = 10_000


def _dataset_frame(study: Study, patients, options: ExportOptions) -> pd.DataFrame:
    frame = build_dataset(study, patients=patients)
    if options.identified:
        return frame.drop(columns=["patient_id"])
    return deidentified_dataset(frame, dates=options.dates, free_text=options.free_text)


def _dataset_table(study: Study, patients: ExportPatients, options: ExportOptions) -> ExportTable:
    """The analysis dataset, built a chunk of patients at a time (in the dataset's own order, by id):
    every column is the patient's own, so the chunks together are the whole dataset.

    A chunk is a range of ids at the export's sites — the same patients as listing the ids, without
    a query of 10,000 parameters (which SQLite may refuse)."""
    ids = np.sort(patients.ids)
    covered = Patient.objects.filter(study=study, site__code__in=patients.site_codes)
    columns = list(_dataset_frame(study, covered.filter(pk__in=ids[:1].tolist()), options).columns)
    dictionary = {v.name: v for v in data_dictionary(study)}

    def frames() -> Iterator[pd.DataFrame]:
        for start in range(0, len(ids), DATASET_PATIENTS_PER_CHUNK):
            chunk = ids[start : start + DATASET_PATIENTS_PER_CHUNK]
            first, last = int(chunk[0]), int(chunk[-1])
            yield _dataset_frame(study, covered.filter(pk__gte=first, pk__lte=last), options)

    def rows() -> Iterator[dict[str, Any]]:
        for frame in frames():
            yield from _frame_rows(frame)

    labels = {name: dictionary[name].label for name in columns if name in dictionary}
    return ExportTable(
        "dataset",
        columns,
        _Rows(rows),
        labels,
        {},
        csv_rows=lambda: (_frame_csv(frame, columns) for frame in frames()),
    )


def _frame_columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """The frame's columns as lists of Python values, missing ones (NaN, NaT, NA) as None."""
    frame = frame.copy(deep=False)
    frame.attrs = {}  # else every column taken from the frame deep-copies the data dictionary
    return {
        name: frame[name].astype(object).where(frame[name].notna(), None).tolist() for name in frame.columns
    }


def _frame_rows(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """The frame's rows as dicts of Python values — converted a column at a time (``to_dict`` and a
    test per cell took 16 s of a 100,000-patient export)."""
    columns = _frame_columns(frame)
    names = list(columns)
    for values in zip(*columns.values(), strict=True):
        yield dict(zip(names, values, strict=True))


def _frame_csv(frame: pd.DataFrame, names: list[str]) -> bytes:
    """The frame's CSV rows (no header) with the cells ``_csv_chunks`` writes, made a column at a
    time and written by the csv module at once: no dict, and no list made in Python, per row."""
    frame = frame.copy(deep=False)
    frame.attrs = {}  # else every column taken from the frame deep-copies the data dictionary
    if not set(frame.columns) <= set(names):
        raise ValueError(f"A row has columns the file does not: {sorted(set(frame.columns) - set(names))}")
    blank = [""] * len(frame)
    texts = [_column_cells(frame[name]) if name in frame.columns else blank for name in names]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(zip(*texts, strict=True))
    return buffer.getvalue().encode("utf-8")


def _column_cells(values: pd.Series) -> Sequence[str]:
    """A column's cells as ``_csv_chunks`` writes its Python values. Numbers, dates, yes/no and
    categories repeat: each distinct value's text is made once and spread by its codes (a missing
    value's code is -1: the empty text put last). Text (object) columns are written value by value,
    as distinct objects that compare equal (1, 1.0, True) must keep their own texts."""
    if values.dtype == object:
        listed = values.where(values.notna(), None).tolist()
        return [v if type(v) is str and not (v and v[0] in _FORMULA_STARTS) else _cell(v) for v in listed]
    codes, uniques = values.factorize()
    texts = [_cell(value) for value in pd.Series(uniques).astype(object).tolist()]
    return np.array([*texts, ""], dtype=object)[codes]


# --- file formats --------------------------------------------------------------------------


def dictionary_rows(tables: list[ExportTable]) -> list[dict[str, str]]:
    rows = []
    for table in tables:
        for column in table.columns:
            codes = table.codes.get(column, {})
            rows.append(
                {
                    "table": table.name,
                    "column": column,
                    "label": table.labels.get(column, column),
                    "codes": "; ".join(f"{code}={label}" for code, label in codes.items()),
                }
            )
    return rows


def _csv_bytes(columns: list[str], rows: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(_csv_chunks(columns, rows))


#: Rows written to a CSV before its text is handed on (a chunk of a streamed download).
ROWS_PER_CHUNK = 2000


def _csv_chunks(columns: list[str], rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """A CSV file as UTF-8 chunks of ``ROWS_PER_CHUNK`` rows (the header first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    known, formula = set(columns), _FORMULA_STARTS  # plain text is written as it is, without a call
    for number, row in enumerate(rows, start=1):
        if len(row) > len(known) or not known.issuperset(row):
            raise ValueError(f"A row has columns the file does not: {sorted(set(row) - known)}")
        writer.writerow(
            [
                value if type(value) is str and not (value and value[0] in formula) else _cell(value)
                for value in map(row.get, columns)
            ]
        )
        if number % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _csv_file(table: ExportTable) -> Iterator[bytes]:
    """The table's CSV file: its header, then the rows PostgreSQL wrote, else the rows path's."""
    if table.csv_rows is None:
        yield from _csv_chunks(table.columns, table.rows)
        return
    yield from _csv_chunks(table.columns, [])
    yield from table.csv_rows()


#: The first characters a spreadsheet reads as the start of a formula (``spreadsheet_safe``'s).
_FORMULA_STARTS = frozenset(FORMULA_PREFIXES)


def _cell(value) -> str:
    if value is None:
        return ""
    if type(value) is str:
        return "'" + value if value and value[0] in _FORMULA_STARTS else value
    if isinstance(value, str):
        return spreadsheet_safe(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


class _Pipe(io.RawIOBase):
    """Where a zip being streamed writes: the bytes wait here until the next chunk is handed on
    (a raw stream that answers ``writable`` and takes ``write``; zipfile needs no ``seek``)."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.pending.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        data = b"".join(self.pending)
        self.pending.clear()
        return data


def _zip_chunks(files: dict[str, Callable[[], Iterable[bytes]]]) -> Iterator[bytes]:
    """A zip archive made and handed on as it is written: each member's content comes in chunks, so
    neither a member nor the archive is ever whole in memory. Members are in name order with a fixed
    timestamp, so the same data give the same bytes."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                for chunk in files[name]():
                    member.write(chunk)
                    yield pipe.drain()
    yield pipe.drain()


def _zip(files: dict[str, bytes]) -> bytes:
    def member(data: bytes) -> Callable[[], Iterable[bytes]]:
        return lambda: [data]

    return b"".join(_zip_chunks({name: member(data) for name, data in files.items()}))


def _about(study: Study, options: ExportOptions) -> bytes:
    lines = [
        f"Study: {study.code} — {study.title}",
        f"Identified: {'yes' if options.identified else 'no (de-identified)'}",
        f"Dates: {options.dates.value}",
        f"Free text: {'included' if options.free_text or options.identified else 'left out'}",
        "Tables: see data_dictionary.csv. The tables follow the registry's exchange layout (README).",
    ]
    if not options.identified:
        lines.append(deidentification_note(dates=options.dates, free_text=options.free_text))
    return ("\n".join(lines) + "\n").encode("utf-8")


def stream_csv_zip(study: Study, tables: list[ExportTable], options: ExportOptions) -> Iterator[bytes]:
    """The CSV export as a stream of bytes: row by row, a chunk of patients read at a time."""
    files: dict[str, Callable[[], Iterable[bytes]]] = {f"{t.name}.csv": partial(_csv_file, t) for t in tables}
    files["data_dictionary.csv"] = lambda: _csv_chunks(
        ["table", "column", "label", "codes"], dictionary_rows(tables)
    )
    files["ABOUT.txt"] = lambda: [_about(study, options)]
    return _zip_chunks(files)


def write_xlsx(study: Study, tables: list[ExportTable], options: ExportOptions, out: IO[bytes]) -> None:
    """The workbook, written with openpyxl's write-only mode: each row goes to the sheet's file on
    disk as it is appended, so memory stays flat; the workbook is then zipped into ``out``."""
    workbook = Workbook(write_only=True)
    for table in [
        *tables,
        ExportTable(
            "data_dictionary", ["table", "column", "label", "codes"], dictionary_rows(tables), {}, {}
        ),
    ]:
        sheet = workbook.create_sheet(table.name[:31])
        sheet.append(table.columns)
        for row in table.rows:
            sheet.append([_xlsx_cell(row.get(column)) for column in table.columns])
    # openpyxl writes naive times; a fixed one keeps the same data giving the same workbook properties
    workbook.properties.created = workbook.properties.modified = dt.datetime(
        2000, 1, 1, tzinfo=dt.UTC
    ).replace(tzinfo=None)
    # Not ``workbook.save``: it stamps the save time into docProps/core.xml, and its zip members
    # carry the time of writing, so the same data gave different bytes.
    with _FixedTimeZip(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        ExcelWriter(workbook, archive).write_data()


class _FixedTimeZip(zipfile.ZipFile):
    """A zip whose members all carry ZIP_TIMESTAMP, for openpyxl's writer (``write_xlsx``), which
    names its members by string (``writestr``) or copies a write-only sheet's file (``write``)."""

    def _member(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o600 << 16  # what writestr gives a member named by string
        return info

    def writestr(self, zinfo_or_arcname, data, compress_type=None, compresslevel=None) -> None:
        if isinstance(zinfo_or_arcname, str):
            zinfo_or_arcname = self._member(zinfo_or_arcname)
        super().writestr(zinfo_or_arcname, data, compress_type, compresslevel)

    def write(self, filename, arcname=None, compress_type=None, compresslevel=None) -> None:
        with (
            open(filename, "rb") as source,
            self.open(self._member(str(arcname or filename)), "w", force_zip64=True) as target,
        ):
            shutil.copyfileobj(source, target, 1 << 20)


def _xlsx_cell(value):
    if isinstance(value, str):
        return spreadsheet_safe(value)
    return value


def to_statistics_zip(study: Study, tables: list[ExportTable], options: ExportOptions, kind: str) -> bytes:
    """One SPSS .sav or Stata .dta per table, with variable labels, (numeric) value labels, and the
    missing-data codes as user-missing values (``_user_missing``)."""
    import pyreadstat  # imported here: only these two downloads need it

    files = {}
    with tempfile.TemporaryDirectory() as folder:
        for table in tables:
            frame, value_labels = _typed_frame(table)
            declared = _user_missing(frame, value_labels, kind)
            path = Path(folder) / f"{table.name}.{kind}"
            labels = [table.labels.get(c, c)[:80] for c in frame.columns]
            if kind == "sav":
                pyreadstat.write_sav(
                    frame,
                    str(path),
                    column_labels=labels,
                    variable_value_labels=value_labels,
                    missing_ranges=declared or None,
                )
            else:
                pyreadstat.write_dta(
                    frame,
                    str(path),
                    column_labels=labels,
                    variable_value_labels=value_labels,
                    missing_user_values=declared or None,
                )
            files[path.name] = path.read_bytes()
    files["data_dictionary.csv"] = _csv_bytes(["table", "column", "label", "codes"], dictionary_rows(tables))
    files["ABOUT.txt"] = _about(study, options) + (
        b"Coded values are numbered 1, 2, ... in the order of data_dictionary.csv, with value labels.\n"
        + _user_missing_note(kind).encode("utf-8")
    )
    return _zip(files)


def _typed_frame(table: ExportTable) -> tuple[pd.DataFrame, dict[str, dict[int | float, str]]]:
    """Numbers as numbers and codes as labelled integers, as SPSS and Stata expect."""
    frame = pd.DataFrame(table.rows, columns=table.columns)
    value_labels: dict[str, dict[int | float, str]] = {}  # as pyreadstat types them
    for column in table.columns:
        codes = table.codes.get(column)
        if codes:
            numbering = {code: position for position, code in enumerate(codes, start=1)}
            frame[column] = frame[column].map(
                lambda v, n=numbering: n.get(v) if v not in (None, "") else None
            )
            frame[column] = frame[column].astype("Int64").astype("float")
            value_labels[column] = {position: codes[code][:120] for code, position in numbering.items()}
            continue
        present = frame[column].replace("", None)
        for parse in (_as_number, _as_date, _as_datetime):
            converted = parse(present)
            if converted is not None:
                frame[column] = converted
                break
        else:
            frame[column] = frame[column].fillna("").astype(str)
    return frame, value_labels


# --- missing-data codes as user-missing values (SPSS, Stata) ----------------------------------

#: SPSS: the n-th missing-data code (in ``MISSING_DATA_CODES`` order) is the value
#: ``SPSS_MISSING_BASE - n`` (NA -99991, UNK -99992, NASK -99993, ND -99994), declared user-missing as
#: one range. Far below any value of the registry, days from index included (-99991 days is 273
#: years): a real value in the range is refused rather than read as missing.
SPSS_MISSING_BASE = -99990
#: SPSS counts dates and times in seconds from this moment: a date column's code is the same number
#: of seconds, so one declaration fits every column.
SPSS_EPOCH = dt.datetime(1582, 10, 14, tzinfo=dt.UTC)  # pyreadstat reads any datetime as UTC


def _code_label(code: str) -> str:
    return f"{code} {missing.meaning(code).lower()}"[:120]


def _user_missing(frame: pd.DataFrame, value_labels: dict[str, dict[Any, str]], kind: str):
    """Put each missing-data code of the ``missing_codes`` column into its (empty) value cell, as an
    SPSS user-missing value or a Stata extended missing value, each labelled with its code and meaning.

    Returns what the writer declares: SPSS ``missing_ranges`` or Stata ``missing_user_values``.
    Numbers, coded choices, dates and times take codes; a text column keeps its cell empty (neither
    format has a labelled missing value for text) and the ``missing_codes`` column still says why.
    The ``missing_codes`` column itself stays, so CSV, workbook and these files say the same.
    """
    if "missing_codes" not in frame.columns:
        return {}
    order = {code: number for number, code in enumerate(missing.codes(), start=1)}
    if kind == "dta" and len(order) > 26:
        raise ValueError("Stata has 26 extended missing values (.a to .z); configure at most 26 codes.")
    given: dict[str, dict[int, str]] = {}
    for row, text in frame["missing_codes"].items():
        for column, code in (json.loads(text) if text else {}).items():
            if column in frame.columns and code in order:
                given.setdefault(column, {})[row] = code
    declared: dict[str, list[Any]] = {}
    for column, cells in given.items():
        values = frame[column]
        is_date = pd.api.types.is_datetime64_any_dtype(values)
        if not (is_date or pd.api.types.is_float_dtype(values)):
            continue  # text: no labelled missing value for strings in either format
        marks = _marks(kind, order, is_date)
        if kind == "sav" and not is_date:
            lowest, highest = SPSS_MISSING_BASE - len(order), SPSS_MISSING_BASE - 1
            clash = values[(values >= lowest) & (values <= highest)]
            if len(clash):
                raise ValueError(
                    f"{column}: the value {clash.iloc[0]} is in the range kept for missing-data codes."
                )
        # An object column of Python values, empty cells None: pyreadstat tells the marks apart
        # from the values only there (a datetime64 or float column cannot hold a letter).
        cells_as = pd.Series(
            [None if pd.isna(v) else (v.to_pydatetime() if is_date else float(v)) for v in values],
            index=values.index,
            dtype=object,
        )
        for row, code in cells.items():
            cells_as.at[row] = marks[code]
        frame[column] = cells_as
        labels = value_labels.setdefault(column, {})
        for code in sorted(set(cells.values()), key=order.__getitem__):
            labels[marks[code]] = _code_label(code)
        if kind == "sav":
            lowest, highest = SPSS_MISSING_BASE - len(order), SPSS_MISSING_BASE - 1
            declared[column] = [{"lo": lowest, "hi": highest}]
        else:
            declared[column] = sorted({marks[code] for code in cells.values()})
    return declared


def _marks(kind: str, order: dict[str, int], is_date: bool) -> dict[str, Any]:
    """What stands in a cell for each code: SPSS its number (or that many seconds from SPSS's
    epoch, in a date column), Stata its extended missing value's letter (.a for the first code)."""
    if kind == "dta":
        return {code: chr(ord("a") + number - 1) for code, number in order.items()}
    numbers = {code: SPSS_MISSING_BASE - number for code, number in order.items()}
    if is_date:
        return {code: SPSS_EPOCH + dt.timedelta(seconds=value) for code, value in numbers.items()}
    return {code: float(value) for code, value in numbers.items()}


def _user_missing_note(kind: str) -> str:
    """ABOUT.txt: how the missing-data codes appear in these files."""
    codes = list(missing.codes())
    if kind == "dta":
        marks = ", ".join(f".{chr(ord('a') + n)} {code}" for n, code in enumerate(codes))
        return (
            f"Missing-data codes are Stata extended missing values with value labels ({marks}); "
            "a plain . is not entered.\n"
        )
    marks = ", ".join(f"{SPSS_MISSING_BASE - n} {code}" for n, code in enumerate(codes, start=1))
    return (
        f"Missing-data codes are SPSS user-missing values with value labels ({marks}; in a date "
        "column as many seconds from 14 Oct 1582); a system-missing value is not entered.\n"
    )


def _as_number(values: pd.Series) -> pd.Series | None:
    converted = pd.to_numeric(values, errors="coerce")
    return converted.astype(float) if values.notna().sum() == converted.notna().sum() else None


def _as_date(values: pd.Series) -> pd.Series | None:
    converted = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
    return converted if values.notna().sum() == converted.notna().sum() and values.notna().any() else None


def _as_datetime(values: pd.Series) -> pd.Series | None:
    converted = pd.to_datetime(values, format="%Y-%m-%dT%H:%M:%SZ", errors="coerce")
    return converted if values.notna().sum() == converted.notna().sum() and values.notna().any() else None
