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

import copy
import csv
import gc
import hashlib
import io
import os
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, cast

from django.db import models, transaction
from django.utils import timezone
from openpyxl import load_workbook

from accounts.access import Capability, site_ids_with
from accounts.models import Site
from audit.services import action_event_record
from protocols.models import Phase
from registry import models as m
from registry.action_events import Action, ActionKind

from .batches import batches_mark_interrupted, this_host
from .codec import cell_reader, from_text
from .layout import BY_NAME, TABLES, Table
from .limits import ImportFileError, ImportLimitError, ImportLimits
from .models import ImportBatch, ImportStatus
from .redcap import redcap_tables
from .tableset import Candidate, RecordIndex, TableImport

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
        # typeshed types ``restval`` as text; csv fills short rows with any object, here a sentinel.
        reader = csv.DictReader(io.StringIO(text), restval=_SHORT)  # type: ignore[call-overload]
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


def read_upload(upload: bytes, name: str, dictionary: bytes | None, mapping: bytes | None):
    """An upload's tables, notes and format: a REDCap export (with its dictionary and mapping) or a
    file in the exchange layout; bounded by the page's limits."""
    limits = ImportLimits.for_page()
    if dictionary is not None:
        assert mapping is not None, "a REDCap upload comes with its mapping (ImportForm.clean)"
        tables, notes = redcap_tables(upload, dictionary, mapping, limits=limits)
        return tables, notes, "redcap"
    tables, notes = read_tables(name, upload, limits=limits)
    return tables, notes, name.rsplit(".", 1)[-1].lower()


# --- importing -----------------------------------------------------------------------------------


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """Python's cycle collector off while an import runs, and on again after (if it was on).

    An import keeps every row and record it reads and writes alive until it ends, so each pass of the
    collector walks them all and finds nothing to free: on a 44,190-row import, 1.0–1.3 s of about
    4–5 s of CPU (5 full and 77 middle passes, counted with ``gc.callbacks``); paused, the import took
    20% less CPU and the same peak memory. Reference counting still frees what the import drops; the
    few cycles it leaves wait for the collector's next pass.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


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
        for patient in self.patients.values():
            patient.study = study  # every rule that reads the patient's study finds it without a query
        self.index = RecordIndex(())
        self._decoded: dict[tuple, Any] = {}
        self._phases: dict[int, dict[str, Phase]] = {}
        self._read_performed_at = cell_reader(m.LumbarPuncture._meta.get_field("performed_at"))
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

    @cycle_collection_paused()
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
                    self._import_tables(tables, result, batch.reason)
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

    def _import_tables(self, tables: dict[str, Rows], result: ImportResult, reason: str) -> None:
        """Each table as one set, parents before children (the layout's order)."""
        codes = {(row.get("study_code") or "").strip() for rows in tables.values() for _, row in rows}
        self.index = RecordIndex(
            p.pk for code, p in self.patients.items() if code in codes and self._managed(p)
        )
        for table in TABLES:
            rows = tables.get(table.name, [])
            if rows:
                TableImport(self, table, reason).run(rows, result)
                if self.progress:
                    self.progress(len(rows))

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
            readers = [(column, self._key_reader(table, column)) for column in table.keys]
            for line, row in rows:
                key = tuple(read(row.get(column, "")) for column, read in readers)
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
    def _key_reader(table: Table, column: str) -> Callable[[str], Any]:
        """A key column's values as the rows' own checks read them (an unreadable one as its text)."""
        field = table.key_field(column)
        read = cell_reader(field) if field is not None else None

        def key_value(text: str) -> Any:
            if read is None:
                return text.strip()
            try:
                return read(text)
            except ValueError:
                return text.strip()  # the row's own check reports the unreadable value

        return key_value

    # --- what the set-based table import asks (exchange.tableset) -------------------------------

    def reader(self, model_field: models.Field) -> Callable[[str], Any]:
        """A column's ``from_text`` (``cell_reader``), with each link to reference data (a site, a
        protocol) read once per import."""
        read = cell_reader(model_field)
        if not isinstance(model_field, models.ForeignKey):
            return read

        def read_link(text: str) -> Any:
            key = (model_field.related_model, (text or "").strip())
            if key not in self._decoded:
                try:
                    self._decoded[key] = read(text)
                except ValueError as error:
                    self._decoded[key] = error
            found = self._decoded[key]
            if isinstance(found, ValueError):
                raise found
            return found

        return read_link

    def row_patient(self, table: Table, row: dict[str, str], c: Candidate) -> m.Patient | None:
        """The patient a row names, or the row's error; another site's patient is answered alone."""
        study_code = (row.get("study_code") or "").strip()
        if not study_code:
            c.add("study_code", "is empty")
            return None
        known = self.patients.get(study_code)
        if known is not None and not self._managed(known):
            # Checked first and answered alone: nothing of another site's patient is compared or shown.
            c.add("study_code", NOT_MANAGED)
        elif table.name == "patient_identifiers" and known is not None and not self._sees_identifiers(known):
            c.add("study_code", "your role may not import identifiers at this patient's site")
        elif table.name != "patients" and known is None:
            c.add("study_code", f"no patient {study_code!r} in this study or earlier in this file")
        return known

    def patient_instance(
        self, row: dict[str, str], values: dict[str, Any], c: Candidate
    ) -> tuple[m.Patient, bool]:
        study_code = (row.get("study_code") or "").strip()
        existing = self.patients.get(study_code)
        if existing is not None:
            # An import never moves a patient: that is its own audited action (patient_move_site).
            given = values.pop("site", None)
            if given is not None and given.pk != existing.site_id:
                c.add(
                    "site",
                    f"is {given.code}, but an import never moves a patient between sites; "
                    "a study administrator moves patients from the patient's page",
                )
            return copy.copy(existing), True  # the stored patient stays as it is until the write
        site = values.get("site") or self.site
        if self.site and site and site != self.site:
            c.add("site", f"is {site.code}, but this import is for the site {self.site.code}")
        if site and self.managed_site_ids is not None and site.pk not in self.managed_site_ids:
            c.add("site", f"is {site.code}, a site you do not manage")
        values["site"] = site
        return m.Patient(study=self.study, study_code=study_code), False

    def _key_of(self, table: Table, column: str, text: str, c: Candidate) -> Any:
        model_field = table.key_field(column)
        assert model_field is not None, f"{column} is a key column of {table.name} or of its parents"
        try:
            return from_text(model_field, text)
        except ValueError as error:
            c.add(column, str(error))
            return None

    def parent_of(self, table: Table, patient: m.Patient, row: dict[str, str], c: Candidate):
        """The record a row hangs from, found in memory by its natural key, or the row's error."""
        if table.parent == "patients":
            return patient
        if table.parent in ("npsle_diagnoses", "lm_diagnoses"):
            diagnosis = self.index.find(BY_NAME[table.parent], (patient.pk,))
            if diagnosis is None:
                kind = "NPSLE" if table.parent == "npsle_diagnoses" else "LM"
                c.add("study_code", f"has no {kind} diagnosis (import {table.parent} first)")
            return diagnosis
        if table.parent == "courses":
            text = row.get("course_start_date", "")
            start = self._key_of(table, "course_start_date", text, c)
            course = None if start is None else self.index.find(BY_NAME["courses"], (patient.pk, start))
            if course is None and start is not None:
                c.add(
                    "course_start_date",
                    f"this patient has no course starting on {text} (import courses first)",
                )
            return course
        lp = self.lumbar_puncture(patient.pk, row.get("performed_at", ""), "performed_at", c)
        if lp is None or table.parent == "lumbar_punctures":
            return lp
        if table.parent == "intrathecal_doses":
            key = tuple((row.get(name) or "").strip() for name in ("drug", "drug_other", "timing"))
            dose = self.index.find(BY_NAME["intrathecal_doses"], (lp.pk, *key))
            if dose is None:
                c.add(
                    "drug",
                    "this lumbar puncture has no such dose (drug, other drug, timing); import intrathecal_doses first",
                )
            return dose
        csf = self.index.find(BY_NAME["csf_results"], (lp.pk,))
        if csf is None:
            c.add("performed_at", "this lumbar puncture has no CSF result (import csf_results first)")
        return csf

    def lumbar_puncture(
        self, patient_id: int, text: str, column: str, c: Candidate
    ) -> m.LumbarPuncture | None:
        try:
            performed = self._read_performed_at(text)
        except ValueError as error:
            c.add(column, str(error))
            return None
        # The lumbar_punctures table's records are lumbar punctures.
        lp = cast(
            m.LumbarPuncture | None, self.index.find(BY_NAME["lumbar_punctures"], (patient_id, performed))
        )
        if lp is None:
            c.add(column, f"no lumbar puncture of this patient at {text}")
        return lp

    def reference(self, instance, field_name: str, text: str, column: str, c: Candidate):
        """A link written as the linked record's key: a phase by its number, an LP by its time."""
        text = text.strip()
        if instance._meta.get_field(field_name).related_model is Phase:
            protocol_id = instance.course.protocol_id
            if protocol_id not in self._phases:
                self._phases[protocol_id] = {
                    str(p.order): p for p in Phase.objects.filter(protocol_id=protocol_id)
                }
            phase = self._phases[protocol_id].get(text) if text.isdigit() else None
            if phase is None:
                c.add(column, f"the course's protocol has no phase {text!r} (phases are numbered 1, 2, …)")
            return phase
        if not text:
            return None
        return self.lumbar_puncture(instance.owning_patient_id(), text, column, c)
