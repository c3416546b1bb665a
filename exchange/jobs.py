"""Large imports and exports as background jobs (runners registered in ExchangeConfig.ready).

An export of more than ``EXPORT_JOB_MIN_PATIENTS`` patients, and an import (its dry run or its
application) of more than ``IMPORT_JOB_MIN_ROWS`` rows, run in a worker: the page shows the job's
progress and then its result (the file to download, or what the import did). Both are repeatable:
an export writes its file again; an import is all or nothing, so a worker killed mid-way leaves
nothing and the next attempt starts from the beginning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.urls import reverse

from accounts.models import Site, User
from analytics.deidentify import DateHandling
from jobs.models import Job, JobKind
from jobs.progress import Reporter
from jobs.runners import register
from jobs.services import job_start
from registry.models import Study

from .export import ExportOptions, export_record, export_tables, stream_csv_zip, to_statistics_zip, write_xlsx
from .importer import Importer, Issue, read_upload
from .models import ImportBatch

#: Above these sizes the page hands the work to a job (settings may lower or raise them).
EXPORT_JOB_MIN_PATIENTS = getattr(settings, "EXPORT_JOB_MIN_PATIENTS", 2000)
IMPORT_JOB_MIN_ROWS = getattr(settings, "IMPORT_JOB_MIN_ROWS", 2000)
#: Where finished exports wait for their download (under MEDIA_ROOT, never served publicly).
EXPORT_FOLDER = "exports"


def export_file_name(study: Study, options: ExportOptions, fmt: str) -> str:
    kind = "identified" if options.identified else "deidentified"
    extension = {"csv": "csv.zip", "sav": "sav.zip", "dta": "dta.zip", "xlsx": "xlsx"}[fmt]
    return f"{study.code}-{kind}.{extension}"


def write_export_to(study: Study, tables, options: ExportOptions, fmt: str, out: IO[bytes]) -> None:
    """The export file, written as it is made (CSV and XLSX never whole in memory; SPSS and Stata
    one table at a time, as pyreadstat writes a whole frame)."""
    if fmt == "csv":
        for chunk in stream_csv_zip(study, tables, options):
            out.write(chunk)
    elif fmt == "xlsx":
        write_xlsx(study, tables, options, out)
    else:
        out.write(to_statistics_zip(study, tables, options, fmt))


def export_job_start(*, study: Study, user, options: ExportOptions, fmt: str) -> Job:
    return job_start(
        kind=JobKind.EXPORT,
        title=f"Export of {study.code} ({fmt})",
        requested_by=user,
        parameters={"study": study.pk, "user": user.pk, "format": fmt, **options.describe()},
    )


def export_job_path(job: Job) -> Path:
    return Path(settings.MEDIA_ROOT) / EXPORT_FOLDER / str(job.pk) / job.result["file_name"]


@register(JobKind.EXPORT)
def run_export(job: Job, report: Reporter) -> dict[str, Any]:
    """Make the export the person asked for, as that person (their sites, their rights)."""
    parameters = job.parameters
    study = Study.objects.get(pk=parameters["study"])
    user = User.objects.get(pk=parameters["user"])
    options = ExportOptions(
        identified=parameters["identified"],
        free_text=parameters["free_text"],
        dates=DateHandling(parameters["dates"]),
        reason=parameters.get("reason", ""),
    )
    report(5, "Reading the patients")
    tables = export_tables(study, user=user, options=options, stream=True)
    name = export_file_name(study, options, parameters["format"])
    report(10, "Writing the tables")
    path = Path(settings.MEDIA_ROOT) / EXPORT_FOLDER / str(job.pk) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        write_export_to(study, tables, options, parameters["format"], out)
    export_record(study, tables, options, fmt=parameters["format"], user=user)
    return {
        "url": reverse("exchange:export_download", args=[job.pk]),
        "link_text": f"Download {name}",
        "file_name": name,
    }


# --- imports ------------------------------------------------------------------------------------


@dataclass
class StoredResult:
    """What an import job found, read back from its job for the result page."""

    issues: list[Issue] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.issues

    def summary(self) -> dict[str, dict[str, int]]:
        return self.counts


def import_job_start(
    *,
    user,
    study: Study,
    site: Site | None,
    stored: str,
    file_name: str,
    sha256: str,
    dry_run: bool,
    redcap: dict | None,
    batch: int | None = None,
) -> Job:
    return job_start(
        kind=JobKind.IMPORT,
        title=f"{'Check' if dry_run else 'Import'} of {file_name} into {study.code}",
        requested_by=user,
        parameters={
            "user": user.pk,
            "study": study.pk,
            "site": site.pk if site else None,
            "stored": stored,
            "file_name": file_name,
            "sha256": sha256,
            "dry_run": dry_run,
            "redcap": redcap,
            "batch": batch,
        },
    )


@register(JobKind.IMPORT)
def run_import(job: Job, report: Reporter) -> dict[str, Any]:
    """Check or apply a stored upload (all or nothing), as the person who uploaded it."""
    parameters = job.parameters
    user = User.objects.get(pk=parameters["user"])
    study = Study.objects.get(pk=parameters["study"])
    site = Site.objects.filter(pk=parameters["site"]).first()
    stored = ImportBatch._meta.get_field("stored_file").storage
    with stored.open(parameters["stored"], "rb") as handle:
        content = handle.read()
    redcap = parameters.get("redcap")
    tables, notes, source = read_upload(
        content,
        parameters["file_name"],
        redcap["dictionary"].encode() if redcap else None,
        redcap["mapping"].encode() if redcap else None,
    )
    total, done = max(1, sum(len(rows) for rows in tables.values())), 0

    def progress(rows: int) -> None:
        nonlocal done
        done += rows
        report(90 * done / total, f"{done:,} of {total:,} rows")

    result = Importer(study=study, actor=user, site=site, progress=progress).run(
        tables,
        dry_run=parameters["dry_run"],
        file_name=parameters["file_name"],
        sha256=parameters["sha256"],
        source_format=source,
        notes=notes,
    )
    result.batch.stored_file.name = parameters["stored"]
    result.batch.save(update_fields=["stored_file"])
    return {
        "url": reverse("exchange:import_job_result", args=[job.pk]),
        "redirect": True,
        "batch": result.batch.pk,
        "issues": [[i.table, i.line, i.column, i.message] for i in result.issues[:1000]],
        "changes": result.changes[:1000],
        "notes": result.notes,
        "counts": result.summary(),
    }


def stored_result(job: Job) -> StoredResult:
    data = job.result
    return StoredResult(
        issues=[Issue(*issue) for issue in data.get("issues", [])],
        changes=data.get("changes", []),
        notes=data.get("notes", []),
        counts=data.get("counts", {}),
    )
