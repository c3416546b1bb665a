"""Importing exchange tables: per-row, per-field errors; all or nothing; re-importing changes nothing.

Every row is found by its natural key (a patient by ``study_code``, an LP by its patient and
``performed_at``, ...). A row that matches a record with the same values is *unchanged* and writes
nothing; otherwise the record is *changed* or *created* through ``record_save`` — the same validation,
review locks, reasons, versions and history as a page — each row inside its own savepoint so one bad
row is reported without hiding the others. The whole file then commits only if every row passed and
it is not a dry run; otherwise everything is rolled back. Killing the process mid-way leaves nothing:
the transaction never committed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from openpyxl import load_workbook

from accounts.access import Capability, site_ids_with
from accounts.models import Site
from audit.services import action_event_record
from protocols.models import Course, Phase
from registry import models as m
from registry.action_events import Action, ActionKind
from registry.services import record_save

from .batches import batches_mark_interrupted, this_host
from .codec import from_text
from .layout import BY_NAME, TABLES, Table
from .limits import ImportFileError, ImportLimitError, ImportLimits
from .models import ImportBatch, ImportStatus

__all__ = ["ImportFileError", "ImportLimitError", "Importer", "read_tables", "sha256_of"]

#: Files an export contains that are derived or descriptive, not records to import.
NOT_IMPORTED = {"dataset", "data_dictionary", "ABOUT"}
#: The only thing a row learns about a patient enrolled at a site the importing user does not manage.
NOT_MANAGED = "belongs to a site you do not manage; nothing changed"


@dataclass(frozen=True)
class Issue:
    table: str
    line: int  # line of the CSV file / row of the sheet (the header is line 1)
    column: str
    message: str

    def __str__(self) -> str:
        where = f"{self.table}, line {self.line}" if self.line else self.table
        return f"{where}, {self.column}: {self.message}" if self.column else f"{where}: {self.message}"


@dataclass
class ImportResult:
    batch: ImportBatch
    created: Counter = field(default_factory=Counter)
    changed: Counter = field(default_factory=Counter)
    unchanged: Counter = field(default_factory=Counter)
    issues: list[Issue] = field(default_factory=list)
    changes: list[str] = field(
        default_factory=list
    )  # "changed lumbar_punctures line 3: opening pressure 180 → 210"
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    def summary(self) -> dict[str, dict[str, int]]:
        names = sorted(set(self.created) | set(self.changed) | set(self.unchanged))
        return {
            n: {"created": self.created[n], "changed": self.changed[n], "unchanged": self.unchanged[n]}
            for n in names
        }


# --- reading files -------------------------------------------------------------------------------

Rows = list[tuple[int, dict[str, str]]]


_SHORT = object()  # the value csv gives the missing cells of a row shorter than its header


def _csv_rows(content: bytes, *, table: str, limits: ImportLimits) -> Rows:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFileError(f"{table}: the CSV file is not UTF-8 text.") from None
    rows: Rows = []
    try:
        reader = csv.DictReader(io.StringIO(text), restval=_SHORT)
        for number, row in enumerate(reader, start=2):
            limits.check_rows(table, number - 1)
            if None in row:
                raise ImportFileError(f"{table}, line {number}: more values than the header has columns.")
            if _SHORT in row.values():
                raise ImportFileError(f"{table}, line {number}: fewer values than the header has columns.")
            rows.append((number, row))
    except csv.Error as error:
        raise ImportFileError(f"{table}: the CSV file cannot be read ({error}).") from None
    return rows


def _xlsx_tables(content: bytes, limits: ImportLimits, found: dict[str, Rows], notes: list[str]) -> None:
    """Each sheet, streamed (openpyxl read-only; its XML parsed by defusedxml), stopped at the row limit."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            limits.check_archive(archive, what="the workbook")
            if "[Content_Types].xml" not in archive.namelist():
                raise ImportFileError(
                    "The .xlsx file is not an Excel workbook (it has no [Content_Types].xml)."
                )
    except zipfile.BadZipFile:
        raise ImportFileError("The .xlsx file is not an Excel workbook (it is not a zip archive).") from None
    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        for sheet in workbook.worksheets:
            if sheet.title in NOT_IMPORTED:
                notes.append(f"sheet {sheet.title}: derived or descriptive, not imported")
                continue
            values = sheet.iter_rows(values_only=True)
            header = [str(h) if h is not None else "" for h in next(values, ())]
            rows: Rows = []
            for number, row in enumerate(values, start=2):
                limits.check_rows(sheet.title, number - 1)
                if any(v not in (None, "") for v in row):
                    rows.append(
                        (number, {h: "" if v is None else str(v) for h, v in zip(header, row, strict=False)})
                    )
            found[sheet.title] = rows
        workbook.close()
    except ImportFileError:
        raise
    except Exception as error:  # openpyxl and defusedxml raise many kinds; each means "unreadable"
        raise ImportFileError(
            f"The workbook cannot be read ({type(error).__name__}: {str(error)[:200]}). Save it again from "
            "Excel as .xlsx, or import CSV files."
        ) from None


def read_tables(
    name: str, content: bytes, *, table: str | None = None, limits: ImportLimits | None = None
) -> tuple[dict[str, Rows], list[str]]:
    """The exchange tables in a CSV (one table, named by the file or ``table``), an XLSX workbook (one
    sheet per table) or a zip of CSVs (as exported). Returns the tables and notes on skipped parts.

    Every read is bounded by ``limits`` (default: the command's, see exchange.limits).
    """
    limits = limits or ImportLimits.for_command()
    suffix = PurePath(name).suffix.lower()
    notes: list[str] = []
    found: dict[str, Rows] = {}
    if suffix == ".csv":
        found[table or PurePath(name).stem] = _csv_rows(
            content, table=table or PurePath(name).stem, limits=limits
        )
    elif suffix == ".zip":
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                limits.check_archive(archive, what="the zip file")
                for member in sorted(archive.namelist()):
                    stem = PurePath(member).stem
                    if stem in NOT_IMPORTED:
                        notes.append(f"{member}: derived or descriptive, not imported")
                    elif member.endswith(".csv"):
                        data = limits.read_member(archive, member, what="the zip file")
                        found[stem] = _csv_rows(data, table=stem, limits=limits)
                    else:
                        raise ImportFileError(f"{member}: only CSV files can be imported from a zip")
        except zipfile.BadZipFile:
            raise ImportFileError("The .zip file is not a zip archive (or it is damaged).") from None
    elif suffix == ".xlsx":
        _xlsx_tables(content, limits, found, notes)
    else:
        raise ImportFileError("Import a .csv, .xlsx or .zip file in the registry's exchange layout.")
    unknown = sorted(set(found) - set(BY_NAME))
    if unknown:
        raise ImportFileError(
            f"Unknown table(s): {', '.join(unknown)}. The tables are: {', '.join(BY_NAME)}."
        )
    limits.check_total(sum(len(rows) for rows in found.values()))
    return found, notes


# --- importing -----------------------------------------------------------------------------------


class _RowError(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class Importer:
    """One import of tables into one study (see the module docstring)."""

    def __init__(
        self,
        *,
        study: m.Study,
        actor,
        site: Site | None = None,
        as_operator: bool = False,
        progress: Callable[[int], None] | None = None,
    ):
        self.study, self.actor, self.site, self.progress = study, actor, site, progress
        self.as_operator = as_operator  # the command line: the server's operator, every site
        self.patients: dict[str, m.Patient] = {
            p.study_code: p for p in m.Patient.objects.filter(study=study).select_related("site")
        }
        #: The sites whose patients this import may match, create and change (None: every site).
        self.managed_site_ids = self._allowed_site_ids(Capability.MANAGE_SITE)

    # permissions: the upload page imports only into the user's sites, identifiers only with the right
    def _allowed_site_ids(self, capability: Capability) -> set[int] | None:
        return None if self.as_operator else site_ids_with(self.actor, capability)

    def _managed(self, patient: m.Patient) -> bool:
        return self.managed_site_ids is None or patient.site_id in self.managed_site_ids

    def _sees_identifiers(self, patient: m.Patient) -> bool:
        allowed = self._allowed_site_ids(Capability.VIEW_IDENTIFIERS)
        return allowed is None or patient.site_id in allowed

    def run(
        self,
        tables: dict[str, Rows],
        *,
        dry_run: bool,
        file_name: str,
        sha256: str,
        source_format: str,
        notes: Iterable[str] = (),
    ) -> ImportResult:
        batches_mark_interrupted()
        batch = ImportBatch.objects.create(
            study=self.study,
            site=self.site,
            file_name=file_name,
            file_sha256=sha256,
            source_format=source_format,
            dry_run=dry_run,
            started_by=self.actor,
            host=this_host(),
            process_id=os.getpid(),
        )
        result = ImportResult(batch=batch, notes=list(notes))
        self._check_columns(tables, result)
        self._check_duplicate_keys(tables, result)
        if result.ok:
            try:
                with transaction.atomic():
                    for table in TABLES:
                        for line, row in tables.get(table.name, []):
                            self._import_row(table, line, row, result, batch.reason)
                            if self.progress:
                                self.progress(1)
                    if dry_run or not result.ok:
                        transaction.set_rollback(True)
            except BaseException:
                # Nothing was written (the transaction rolled back); the batch says so instead of "running".
                batch.status, batch.finished_at = ImportStatus.INTERRUPTED, timezone.now()
                batch.errors = ["The import stopped with an unexpected error; nothing was written."]
                batch.save(update_fields=["status", "finished_at", "errors"])
                raise
        batch.status = (
            ImportStatus.DRY_RUN if dry_run else (ImportStatus.APPLIED if result.ok else ImportStatus.REFUSED)
        )
        batch.summary = result.summary()
        batch.errors = [str(issue) for issue in result.issues[:1000]]
        batch.finished_at = timezone.now()
        batch.save()
        if batch.status == ImportStatus.APPLIED:
            self._record_applied(batch, tables)
        return result

    def _record_applied(self, batch: ImportBatch, tables: dict[str, Rows]) -> None:
        """The audit trail's event: the batch, its file and hash, and the patients the file covers."""
        action_event_record(
            Action(
                kind=ActionKind.IMPORT_APPLIED,
                actor=self.actor,
                study_id=self.study.pk,
                patient_codes={
                    (row.get("study_code") or "").strip() for rows in tables.values() for _, row in rows
                },
                object_label=str(batch),
                reason=batch.reason,
                detail={
                    "batch": batch.pk,
                    "file": batch.file_name,
                    "sha256": batch.file_sha256,
                    "summary": batch.summary,
                },
            )
        )

    def _check_columns(self, tables: dict[str, Rows], result: ImportResult) -> None:
        for name, rows in tables.items():
            table = BY_NAME[name]
            if not rows:
                continue
            given = set(rows[0][1])
            expected = (
                set(table.columns())
                | set(table.computed)
                | ({"age_at_index"} if name == "patients" else set())
            )
            unknown = sorted(given - expected)
            if unknown:
                result.issues.append(
                    Issue(
                        name,
                        1,
                        "",
                        f"unknown column(s) {', '.join(unknown)}; nothing is dropped "
                        "silently, so remove or rename them",
                    )
                )
            missing = [key for key in table.keys if key not in given]
            if missing:
                result.issues.append(Issue(name, 1, "", f"missing key column(s) {', '.join(missing)}"))
            if name == "patient_identifiers" and not self.as_operator:
                allowed = self._allowed_site_ids(Capability.VIEW_IDENTIFIERS)
                if allowed is not None and not allowed:
                    result.issues.append(Issue(name, 1, "", "your role may not import identifiers"))
            if "age_at_index" in given:
                result.issues.append(
                    Issue(
                        name,
                        1,
                        "age_at_index",
                        "a de-identified export cannot be imported (it has no birth date or exact dates)",
                    )
                )

    def _check_duplicate_keys(self, tables: dict[str, Rows], result: ImportResult) -> None:
        """Two rows with the same natural key in one file are an error, never "the last one wins"."""
        for name, rows in tables.items():
            table = BY_NAME[name]
            seen: dict[tuple, tuple[int, dict[str, str]]] = {}
            for line, row in rows:
                key = tuple(self._key_value(table, column, row.get(column, "")) for column in table.keys)
                if key not in seen:
                    seen[key] = (line, row)
                    continue
                first_line, first = seen[key]
                same = first == row
                described = ", ".join(f"{column} {row.get(column, '')!r}" for column in table.keys)
                result.issues.append(
                    Issue(
                        name,
                        line,
                        "",
                        f"repeats line {first_line} ({described})"
                        + ("" if same else " with different values")
                        + "; a record may appear only once in a file — keep one of the two rows",
                    )
                )

    @staticmethod
    def _key_value(table: Table, column: str, text: str):
        field = table.key_field(column)
        try:
            return from_text(field, text) if field is not None else text.strip()
        except ValueError:
            return text.strip()  # the row's own check reports the unreadable value

    def _import_row(
        self, table: Table, line: int, row: dict[str, str], result: ImportResult, reason: str
    ) -> None:
        try:
            with transaction.atomic():
                action, changes = self._write_row(table, row, reason)
        except _RowError as error:
            for column, messages in error.errors.items():
                for message in messages:
                    # A model's ValidationError prints as a list ("['18 mmH2O is…']"): keep its text.
                    text = " ".join(ValidationError(message).messages)
                    result.issues.append(Issue(table.name, line, "" if column == "__all__" else column, text))
            return
        {"created": result.created, "changed": result.changed, "unchanged": result.unchanged}[action][
            table.name
        ] += 1
        if action != "unchanged":
            result.changes.append(f"{action} {table.name} line {line}" + (f": {changes}" if changes else ""))

    def _write_row(self, table: Table, row: dict[str, str], reason: str) -> tuple[str, str]:
        errors: dict[str, list[str]] = {}
        study_code = (row.get("study_code") or "").strip()
        if not study_code:
            raise _RowError({"study_code": ["is empty"]})
        known = self.patients.get(study_code)
        if known is not None and not self._managed(known):
            # Checked first and answered alone: nothing of another site's patient is compared or shown.
            raise _RowError({"study_code": [NOT_MANAGED]})
        if table.name == "patient_identifiers" and known is not None and not self._sees_identifiers(known):
            raise _RowError({"study_code": ["your role may not import identifiers at this patient's site"]})
        values = self._parse(table, row, errors)
        if table.name == "patients":
            instance, existing = self._patient(study_code, values, errors)
        else:
            parent = self._parent(table, study_code, row, errors)
            if errors:
                raise _RowError(errors)
            key = {k: values[k] for k in table.model_keys()}
            found = table.model._default_manager.filter(**{table.parent_field: parent}, **key).first()
            instance, existing = (
                (found, True) if found else (table.model(**{table.parent_field: parent}), False)
            )
        for column, field_name in table.references:
            values[field_name] = self._reference(instance, field_name, row.get(column, ""), column, errors)
        if errors:
            raise _RowError(errors)
        changed = [name for name, value in values.items() if not existing or getattr(instance, name) != value]
        if existing and not changed:
            return "unchanged", ""
        before = {name: getattr(instance, name) for name in changed} if existing else {}
        for name, value in values.items():
            setattr(instance, name, value)
        self._check_computed(table, instance, row, errors)
        if errors:
            raise _RowError(errors)
        try:
            record_save(instance, actor=self.actor, reason=reason)
        except ValidationError as error:
            raise _RowError(error.update_error_dict({})) from error
        if table.name == "patients":
            self.patients[instance.study_code] = instance
        if not existing:
            return "created", ""
        return "changed", "; ".join(
            f"{name} {before[name]!s} → {getattr(instance, name)!s}" for name in changed
        )

    def _parse(self, table: Table, row: dict[str, str], errors: dict[str, list[str]]) -> dict[str, Any]:
        values = {}
        fields = {f.name: f for f in table.model._meta.concrete_fields}
        for name in [*table.model_keys(), *(f.name for f in table.value_fields())]:
            if name == "study_code" and table.name != "patients":
                continue
            if name not in row:
                continue  # a column the file does not have keeps the record's current value
            try:
                values[name] = from_text(fields[name], row[name])
            except ValueError as error:
                errors.setdefault(name, []).append(str(error))
        return values

    def _patient(self, study_code: str, values: dict[str, Any], errors) -> tuple[m.Patient, bool]:
        existing = self.patients.get(study_code)
        if existing is not None:
            # An import never moves a patient: that is its own audited action (patient_move_site).
            given = values.pop("site", None)
            if given is not None and given.pk != existing.site_id:
                errors.setdefault("site", []).append(
                    f"is {given.code}, but an import never moves a patient between sites; "
                    "a study administrator moves patients from the patient's page"
                )
            return m.Patient.objects.get(pk=existing.pk), True
        site = values.get("site") or self.site
        if self.site and site and site != self.site:
            errors.setdefault("site", []).append(
                f"is {site.code}, but this import is for the site {self.site.code}"
            )
        if site and self.managed_site_ids is not None and site.pk not in self.managed_site_ids:
            errors.setdefault("site", []).append(f"is {site.code}, a site you do not manage")
        values["site"] = site
        return m.Patient(study=self.study, study_code=study_code), False

    def _patient_or_error(self, study_code: str, errors) -> m.Patient | None:
        patient = self.patients.get(study_code)
        if patient is None:
            errors.setdefault("study_code", []).append(
                f"no patient {study_code!r} in this study or earlier in this file"
            )
            return None
        if not self._managed(patient):
            errors.setdefault("study_code", []).append(NOT_MANAGED)
            return None
        return patient

    def _lp(self, patient: m.Patient, text: str, column: str, errors) -> m.LumbarPuncture | None:
        try:
            performed = from_text(m.LumbarPuncture._meta.get_field("performed_at"), text)
        except ValueError as error:
            errors.setdefault(column, []).append(str(error))
            return None
        lp = m.LumbarPuncture.objects.filter(patient=patient, performed_at=performed).first()
        if lp is None:
            errors.setdefault(column, []).append(f"no lumbar puncture of this patient at {text}")
        return lp

    def _parent(self, table: Table, study_code: str, row: dict[str, str], errors) -> models.Model | None:
        patient = self._patient_or_error(study_code, errors)
        if patient is None:
            return None
        if table.parent == "patients":
            return patient
        if table.parent == "npsle_diagnoses":
            diagnosis = m.NpsleDiagnosis.objects.filter(patient=patient).first()
            if diagnosis is None:
                errors.setdefault("study_code", []).append(
                    "has no NPSLE diagnosis (import npsle_diagnoses first)"
                )
            return diagnosis
        if table.parent == "lm_diagnoses":
            diagnosis = m.LmDiagnosis.objects.filter(patient=patient).first()
            if diagnosis is None:
                errors.setdefault("study_code", []).append("has no LM diagnosis (import lm_diagnoses first)")
            return diagnosis
        if table.parent == "courses":
            return self._course(patient, row.get("course_start_date", ""), errors)
        lp = self._lp(patient, row.get("performed_at", ""), "performed_at", errors)
        if lp is None or table.parent == "lumbar_punctures":
            return lp
        if table.parent == "intrathecal_doses":
            return self._dose(lp, row, errors)
        csf = m.CsfResult.objects.filter(lumbar_puncture=lp).first()
        if csf is None:
            errors.setdefault("performed_at", []).append(
                "this lumbar puncture has no CSF result (import csf_results first)"
            )
        return csf

    def _course(self, patient: m.Patient, text: str, errors) -> Course | None:
        try:
            start = from_text(Course._meta.get_field("start_date"), text)
        except ValueError as error:
            errors.setdefault("course_start_date", []).append(str(error))
            return None
        course = Course.objects.filter(patient=patient, start_date=start).select_related("protocol").first()
        if course is None:
            errors.setdefault("course_start_date", []).append(
                f"this patient has no course starting on {text} (import courses first)"
            )
        return course

    def _dose(self, lp: m.LumbarPuncture, row: dict[str, str], errors) -> m.IntrathecalDose | None:
        key = {name: (row.get(name) or "").strip() for name in ("drug", "drug_other", "timing")}
        dose = m.IntrathecalDose.objects.filter(lumbar_puncture=lp, **key).first()
        if dose is None:
            errors.setdefault("drug", []).append(
                "this lumbar puncture has no such dose (drug, other drug, timing); import intrathecal_doses first"
            )
        return dose

    def _reference(self, instance, field_name: str, text: str, column: str, errors):
        text = text.strip()
        if instance._meta.get_field(field_name).related_model is Phase:
            phase = instance.course.protocol.phases.filter(order=text).first() if text.isdigit() else None
            if phase is None:
                errors.setdefault(column, []).append(
                    f"the course's protocol has no phase {text!r} (phases are numbered 1, 2, …)"
                )
            return phase
        if not text:
            return None
        return self._lp(m.Patient(pk=instance.owning_patient_id()), text, column, errors)

    @staticmethod
    def _check_computed(table: Table, instance, row: dict[str, str], errors) -> None:
        if not table.computed:
            return
        instance.refresh_computed_fields()
        for name in table.computed:
            given = (row.get(name) or "").strip()
            if given and given != str(getattr(instance, name)):
                errors.setdefault(name, []).append(
                    f"is computed by the registry: {getattr(instance, name)} from the items in this row, not {given}"
                )
