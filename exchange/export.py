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
import math
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from django.db import models
from openpyxl import Workbook

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
from protocols import models as pm
from registry import missing
from registry.action_events import Action, ActionKind
from registry.formatting import spreadsheet_safe
from registry.models import LumbarPuncture, Patient, Study

from .codec import to_text
from .layout import TABLES, Table

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
    rows: list[dict[str, Any]]  # text for the layout tables; typed values for the dataset
    labels: dict[str, str]
    codes: dict[str, dict[str, str]]  # column → code → label


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
    allowed: set[int] | None = set()
    for capability in capabilities:
        ids = site_ids_with(user, capability)
        if ids is None:
            allowed = None
            break
        allowed |= ids
    if allowed is not None:
        if not allowed:
            raise ExportRefused(
                "Your role does not allow this export."
                if not options.identified
                else "Identified exports are only for study administrators (the identified-export right)."
            )
        patients = patients.filter(site_id__in=allowed)
    return patients


def _owner_chain(table: Table):
    """The lookup from a table's records to their patient."""
    return "" if table.name == "patients" else table.model.patient_lookup


def _parent_record(table: Table, obj):
    """The record whose key columns a child row repeats (an LP, a dose, a course)."""
    if table.name == "pathogen_tests":
        return obj.csf_result.lumbar_puncture
    return getattr(obj, table.parent_field)


def _parent_key_value(table: Table, obj, key: str):
    """A key column that belongs to the parent's key: (the field it is read from, its value)."""
    parent = _parent_record(table, obj)
    if key == "course_start_date":
        return pm.Course._meta.get_field("start_date"), parent.start_date
    if key == "performed_at":
        lp = parent if isinstance(parent, LumbarPuncture) else parent.lumbar_puncture
        return LumbarPuncture._meta.get_field("performed_at"), lp.performed_at
    return parent._meta.get_field(key), getattr(parent, key)


def _reference_text(patient_id: int, related, dates: _Dates) -> str:
    if related is None:
        return ""
    if isinstance(related, pm.Phase):
        return str(related.order)
    return _text(models.DateTimeField(), dates.convert(patient_id, related.performed_at))


#: How a reference column is labelled in the data dictionary.
REFERENCE_LABELS = {
    "lumbar_puncture_performed_at": "Lumbar puncture it followed (performed at)",
    "phase_number": "Phase of the protocol (its number)",
}
PARENT_KEY_LABELS = {
    "performed_at": "Performed at (of the lumbar puncture)",
    "course_start_date": "Start date of the course",
}


class _Dates:
    """Turns dates into shifted dates or days from index, per patient."""

    def __init__(self, study: Study, options: ExportOptions, patients: Iterable[Patient]):
        self.options = options
        self.index = {p.pk: p.index_admission_date for p in patients}
        self.shift = {pk: dt.timedelta(days=date_shift_days(study.code, pk)) for pk in self.index}

    def convert(self, patient_id: int, value):
        if value is None or self.options.dates == DateHandling.EXACT:
            return value
        if self.options.dates == DateHandling.SHIFT:
            return value + self.shift[patient_id]
        day = value.astimezone(dt.UTC).date() if isinstance(value, dt.datetime) else value
        return (day - self.index[patient_id]).days


def _text(model_field, value) -> str:
    if isinstance(value, int) and isinstance(model_field, models.DateField):
        return str(value)  # days from index
    return to_text(model_field, value)


def _layout_table(table: Table, patients, dates: _Dates, options: ExportOptions) -> ExportTable:
    owner = _owner_chain(table)
    patient_ids = [p.pk for p in patients]
    queryset = table.model._default_manager.all()
    queryset = (
        queryset.filter(pk__in=patient_ids) if not owner else queryset.filter(**{f"{owner}__in": patient_ids})
    )
    hidden = () if options.free_text or options.identified else table.free_text()
    keys = [key for key in table.keys if key not in hidden]
    fields = [f for f in table.value_fields() if f.name not in hidden]
    drop_birth = not options.identified and table.name == "patients"
    if drop_birth:
        fields = [f for f in fields if f.name not in ("birth_date", "birth_year")]
    model_fields = {f.name: f for f in table.model._meta.concrete_fields}
    codes = {
        f.name: {str(c): str(label) for c, label in f.flatchoices if c != ""} for f in fields if f.choices
    }
    for key in table.model_keys():
        if key in keys and model_fields[key].choices:
            codes[key] = {str(c): str(label) for c, label in model_fields[key].flatchoices if c != ""}
    studies = {p.pk: p.study_code for p in patients}
    rows = []
    for obj in queryset.select_related(
        *(path for path in [owner] if path), *(f for _, f in table.references)
    ):
        patient_id = obj.pk if not owner else obj.owning_patient_id()
        row: dict[str, Any] = {"study_code": studies[patient_id]}
        for key in keys[1:]:
            if key in model_fields:
                key_field, value = model_fields[key], getattr(obj, key)
            else:
                key_field, value = _parent_key_value(table, obj, key)
            if isinstance(key_field, models.DateField):
                value = dates.convert(patient_id, value)
            row[key] = _text(key_field, value)
        for model_field in fields:
            value = getattr(obj, model_field.name)
            if isinstance(model_field, models.DateField):
                value = dates.convert(patient_id, value)
            row[model_field.name] = _text(model_field, value)
        for column, field_name in table.references:
            row[column] = _reference_text(patient_id, getattr(obj, field_name), dates)
        if drop_birth:
            row["age_at_index"] = _capped_age(obj)
        rows.append(row)
    columns = [*keys, *(f.name for f in fields), *(c for c, _ in table.references)]
    if drop_birth:
        columns.insert(columns.index("index_admission_date"), "age_at_index")
    rows.sort(key=lambda r: tuple(r[k] for k in keys))
    labels = {
        "study_code": "Study code (pseudonym)",
        "age_at_index": f"Age at index (years; {AGE_CAP_YEARS} = {AGE_CAP_YEARS} or older)",
        **{c: PARENT_KEY_LABELS[c] for c in keys if c in PARENT_KEY_LABELS and c not in model_fields},
    }
    if "missing_codes" in columns:
        labels["missing_codes"] = missing_codes_label()
    for name in columns:
        if name in model_fields:
            labels.setdefault(name, str(model_fields[name].verbose_name))
    for column, _ in table.references:
        labels[column] = REFERENCE_LABELS[column]
    return ExportTable(table.name, columns, rows, labels, codes)


def missing_codes_label() -> str:
    """The missing-data codes column: why an empty cell is empty, as JSON {column: code}."""
    meanings = ", ".join(f"{code} {text.lower()}" for code, text in missing.codes().items())
    return f"Missing-data codes: JSON {{column: code}} for empty cells ({meanings})"


def _capped_age(patient: Patient) -> str:
    age = capped_age(patient.age_at_index_years)
    return "" if age is None else str(age)


def export_record(
    study: Study, tables: list[ExportTable], options: ExportOptions, *, fmt: str, request=None, user=None
):
    """The security event of an export: who, which study, which tables, how many patients, why.

    An identified export is its own kind of event (``identified_export``); the study's audit
    export lists those too.
    """
    patients = len(tables[0].rows)
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
            "sites": sorted({row["site"] for row in tables[0].rows if row.get("site")}),
        },
    )
    action_event_record(
        Action(
            kind=ActionKind.IDENTIFIED_EXPORT if options.identified else ActionKind.EXPORT,
            actor=user if user is not None else getattr(request, "user", None),
            study_id=study.pk,
            patient_codes=[row["study_code"] for row in tables[0].rows],
            object_label=f"{study.code} export ({fmt}): {patients} patients",
            reason=options.describe().get("reason", ""),
            detail={"format": fmt, "tables": [table.name for table in tables], "patients": patients},
        )
    )


def export_tables(study: Study, *, user, options: ExportOptions) -> list[ExportTable]:
    """Every exchange table of the study (the identifiers only in identified exports), then the dataset."""
    patients = list(exportable_patients(study, user, options))
    dates = _Dates(study, options, patients)
    tables = [
        _layout_table(table, patients, dates, options)
        for table in TABLES
        if options.identified or table.name != "patient_identifiers"
    ]
    tables.append(_dataset_table(study, patients, options))
    return tables


def _dataset_table(study: Study, patients: list[Patient], options: ExportOptions) -> ExportTable:
    frame = build_dataset(study, patients=Patient.objects.filter(pk__in=[p.pk for p in patients]))
    dictionary = {v.name: v for v in data_dictionary(study)}
    if options.identified:
        frame = frame.drop(columns=["patient_id"])
    else:
        frame = deidentified_dataset(frame, dates=options.dates, free_text=options.free_text)
    rows = [
        {k: (None if _missing(v) else v) for k, v in row.items()} for row in frame.to_dict(orient="records")
    ]
    labels = {name: dictionary[name].label for name in frame.columns if name in dictionary}
    return ExportTable("dataset", list(frame.columns), rows, labels, {})


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


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
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue().encode("utf-8")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return spreadsheet_safe(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    return buffer.getvalue()


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


def to_csv_zip(study: Study, tables: list[ExportTable], options: ExportOptions) -> bytes:
    files = {f"{t.name}.csv": _csv_bytes(t.columns, t.rows) for t in tables}
    files["data_dictionary.csv"] = _csv_bytes(["table", "column", "label", "codes"], dictionary_rows(tables))
    files["ABOUT.txt"] = _about(study, options)
    return _zip(files)


def to_xlsx(study: Study, tables: list[ExportTable], options: ExportOptions) -> bytes:
    workbook = Workbook()
    workbook.remove(workbook.active)
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
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _xlsx_cell(value):
    if isinstance(value, str):
        return spreadsheet_safe(value)
    return value


def to_statistics_zip(study: Study, tables: list[ExportTable], options: ExportOptions, kind: str) -> bytes:
    """One SPSS .sav or Stata .dta per table, with variable labels and (numeric) value labels."""
    import pyreadstat  # imported here: only these two downloads need it

    files = {}
    with tempfile.TemporaryDirectory() as folder:
        for table in tables:
            frame, value_labels = _typed_frame(table)
            path = Path(folder) / f"{table.name}.{kind}"
            labels = [table.labels.get(c, c)[:80] for c in frame.columns]
            if kind == "sav":
                pyreadstat.write_sav(
                    frame, str(path), column_labels=labels, variable_value_labels=value_labels
                )
            else:
                pyreadstat.write_dta(
                    frame, str(path), column_labels=labels, variable_value_labels=value_labels
                )
            files[path.name] = path.read_bytes()
    files["data_dictionary.csv"] = _csv_bytes(["table", "column", "label", "codes"], dictionary_rows(tables))
    files["ABOUT.txt"] = _about(study, options) + (
        b"Coded values are numbered 1, 2, ... in the order of data_dictionary.csv, with value labels.\n"
    )
    return _zip(files)


def _typed_frame(table: ExportTable) -> tuple[pd.DataFrame, dict[str, dict[int, str]]]:
    """Numbers as numbers and codes as labelled integers, as SPSS and Stata expect."""
    frame = pd.DataFrame(table.rows, columns=table.columns)
    value_labels: dict[str, dict[int, str]] = {}
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


def _as_number(values: pd.Series) -> pd.Series | None:
    converted = pd.to_numeric(values, errors="coerce")
    return converted.astype(float) if values.notna().sum() == converted.notna().sum() else None


def _as_date(values: pd.Series) -> pd.Series | None:
    converted = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
    return converted if values.notna().sum() == converted.notna().sum() and values.notna().any() else None


def _as_datetime(values: pd.Series) -> pd.Series | None:
    converted = pd.to_datetime(values, format="%Y-%m-%dT%H:%M:%SZ", errors="coerce")
    return converted if values.notna().sum() == converted.notna().sum() and values.notna().any() else None
