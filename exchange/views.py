"""Import (site administrators) and export pages: thin views over the importer and the exporter."""

from __future__ import annotations

import tempfile
import uuid
from typing import cast

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import Capability, has_capability
from accounts.models import User
from analytics.deidentify import DateHandling
from jobs.models import Job, JobKind, JobStatus

from .batches import batches_mark_interrupted
from .export import (
    ExportOptions,
    ExportRefused,
    export_patients,
    export_record,
    export_tables,
    stream_csv_zip,
)
from .forms import ExportForm, ImportForm
from .importer import Importer, ImportFileError, read_upload, sha256_of
from .jobs import (
    EXPORT_JOB_MIN_PATIENTS,
    IMPORT_JOB_MIN_ROWS,
    export_file_name,
    export_job_path,
    export_job_start,
    import_job_start,
    stored_result,
    write_export_to,
)
from .limits import ImportLimitError, check_upload_size
from .models import ImportBatch, ImportStatus
from .redcap import RedcapMappingError

CONTENT_TYPES = {
    "csv": "application/zip",
    "sav": "application/zip",
    "dta": "application/zip",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _signed_in(request: HttpRequest) -> User:
    """The user of a page behind ``login_required``: a signed-in account."""
    return cast(User, request.user)


def _require_site_admin(request: HttpRequest) -> None:
    if not has_capability(request.user, Capability.MANAGE_SITE):
        raise PermissionDenied("Imports are for site administrators.")


def _upload_page(
    request: HttpRequest, form: ImportForm, *, status: int = 200, refused: str = ""
) -> HttpResponse:
    batches_mark_interrupted()  # so "your recent imports" never shows a dead import as running
    recent = ImportBatch.objects.filter(started_by=_signed_in(request))[:10]
    context = {"form": form, "recent": recent, "refused": refused}
    return render(request, "exchange/import.html", context, status=status)


def _rows_in(tables) -> int:
    return sum(len(rows) for rows in tables.values())


@login_required
@require_http_methods(["GET", "POST"])
def import_upload(request: HttpRequest) -> HttpResponse:
    """Upload a file: it is checked as a dry run first; the result page offers to apply it.

    The size of the request is checked before Django reads the files, so an oversized upload is
    refused without being stored; a file that cannot be read is refused with one message (400).
    A file of more than ``IMPORT_JOB_MIN_ROWS`` rows is checked by a background job, whose page
    shows its progress and then the same result.
    """
    _require_site_admin(request)
    if request.method == "POST":
        try:
            check_upload_size(int(request.META.get("CONTENT_LENGTH") or 0))
        except ImportLimitError as error:
            return _upload_page(request, ImportForm(user=request.user), status=413, refused=str(error))
    form = ImportForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method != "POST":
        return _upload_page(request, form)
    if not form.is_valid():
        return _upload_page(request, form, status=400)
    upload = form.cleaned_data["file"]
    content = upload.read()
    dictionary, mapping = form.cleaned_data["redcap_dictionary"], form.cleaned_data["redcap_mapping"]
    redcap = (
        {"dictionary": dictionary.read().decode(), "mapping": mapping.read().decode()} if dictionary else None
    )
    try:
        tables, notes, source = read_upload(
            content,
            upload.name,
            redcap["dictionary"].encode() if redcap else None,
            redcap["mapping"].encode() if redcap else None,
        )
    except (ImportFileError, RedcapMappingError) as error:
        form.add_error("file", str(error))
        return _upload_page(request, form, status=400)
    study, site = form.cleaned_data["study"], form.cleaned_data["site"]
    if _rows_in(tables) > IMPORT_JOB_MIN_ROWS:
        stored = default_storage.save(f"imports/pending/{upload.name}", ContentFile(content))
        job = import_job_start(
            user=request.user,
            study=study,
            site=site,
            stored=stored,
            file_name=upload.name,
            sha256=sha256_of(content),
            dry_run=True,
            redcap=redcap,
        )
        return redirect("jobs:detail", job_id=job.pk)
    result = Importer(study=study, actor=request.user, site=site).run(
        tables,
        dry_run=True,
        file_name=upload.name,
        sha256=sha256_of(content),
        source_format=source,
        notes=notes,
    )
    result.batch.stored_file.save(upload.name, ContentFile(content), save=True)
    if redcap:
        request.session[f"import-{result.batch.pk}"] = redcap
    return render(request, "exchange/import_result.html", {"result": result, "batch": result.batch})


@login_required
@require_POST
def import_apply(request: HttpRequest, batch_pk: int) -> HttpResponse:
    """Apply a file that passed its dry run: the same bytes, all or nothing (a large one as a job)."""
    _require_site_admin(request)
    checked = ImportBatch.objects.filter(
        pk=batch_pk, started_by=_signed_in(request), status=ImportStatus.DRY_RUN
    ).first()
    if checked is None or checked.errors or not checked.stored_file.name:  # a file has a name
        raise Http404("No dry run of yours to apply.")
    content = checked.stored_file.open("rb").read()
    redcap = request.session.get(f"import-{batch_pk}")
    tables, notes, source = read_upload(
        content,
        checked.file_name,
        redcap["dictionary"].encode() if redcap else None,
        redcap["mapping"].encode() if redcap else None,
    )
    if _rows_in(tables) > IMPORT_JOB_MIN_ROWS:
        job = import_job_start(
            user=request.user,
            study=checked.study,
            site=checked.site,
            stored=checked.stored_file.name,
            file_name=checked.file_name,
            sha256=checked.file_sha256,
            dry_run=False,
            redcap=redcap,
        )
        return redirect("jobs:detail", job_id=job.pk)
    result = Importer(study=checked.study, actor=request.user, site=checked.site).run(
        tables,
        dry_run=False,
        file_name=checked.file_name,
        sha256=checked.file_sha256,
        source_format=source,
        notes=notes,
    )
    return render(request, "exchange/import_result.html", {"result": result, "batch": result.batch})


def _own_finished_job(request: HttpRequest, job_id: uuid.UUID, kind: JobKind) -> Job:
    """A finished job of this kind started by this person (anyone else finds nothing)."""
    job = Job.objects.filter(
        pk=job_id, kind=kind, requested_by=_signed_in(request), status=JobStatus.SUCCEEDED
    ).first()
    if job is None:
        raise Http404("No such job of yours.")
    return job


@login_required
def import_job_result(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """What an import job did (or would do): the result page of a small import, read from the job."""
    _require_site_admin(request)
    job = _own_finished_job(request, job_id, JobKind.IMPORT)
    batch = ImportBatch.objects.get(pk=job.result["batch"])
    if job.parameters.get("redcap"):
        request.session[f"import-{batch.pk}"] = job.parameters["redcap"]
    return render(request, "exchange/import_result.html", {"result": stored_result(job), "batch": batch})


@login_required
@require_http_methods(["GET", "POST"])
def export(request: HttpRequest) -> HttpResponseBase:
    """The export, streamed as it is made; above ``EXPORT_JOB_MIN_PATIENTS`` patients, a job whose
    page links to the file when it is ready."""
    form = ExportForm(request.POST or None, user=request.user)
    if not form.studies.exists():
        raise PermissionDenied("Your role does not include exports.")
    if request.method != "POST" or not form.is_valid():
        return render(request, "exchange/export.html", {"form": form}, status=400 if form.is_bound else 200)
    data = form.cleaned_data
    study, fmt, identified = data["study"], data["format"], bool(data.get("identified"))
    options = ExportOptions(
        identified=identified,
        free_text=data["free_text"],
        dates=DateHandling.EXACT if identified else DateHandling(data["dates"]),
        reason=data.get("reason", ""),
    )
    try:
        patients = export_patients(study, request.user, options)
    except ExportRefused as refusal:
        raise PermissionDenied(str(refusal)) from refusal
    if len(patients) > EXPORT_JOB_MIN_PATIENTS:
        job = export_job_start(study=study, user=request.user, options=options, fmt=fmt)
        return redirect("jobs:detail", job_id=job.pk)
    tables = export_tables(study, user=request.user, options=options, stream=True)
    export_record(study, tables, options, fmt=fmt, request=request)
    return _download(study, tables, options, fmt)


def _download(study, tables, options: ExportOptions, fmt: str) -> HttpResponseBase:
    """CSV streamed row by row as the zip is made; XLSX (write-only) and SPSS/Stata through a file."""
    name = export_file_name(study, options, fmt)
    if fmt == "csv":
        response: HttpResponseBase = StreamingHttpResponse(
            stream_csv_zip(study, tables, options), content_type=CONTENT_TYPES[fmt]
        )
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    spool = tempfile.TemporaryFile()  # noqa: SIM115  (FileResponse closes it once sent)
    write_export_to(study, tables, options, fmt, spool)
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename=name, content_type=CONTENT_TYPES[fmt])


@login_required
def export_download(request: HttpRequest, job_id: uuid.UUID) -> HttpResponseBase:
    """The file an export job made, for the person who asked for it (recorded when it was made)."""
    job = _own_finished_job(request, job_id, JobKind.EXPORT)
    path = export_job_path(job)
    if not path.exists():
        raise Http404("The export file is no longer kept; export again.")
    fmt = job.parameters["format"]
    return FileResponse(
        path.open("rb"), as_attachment=True, filename=path.name, content_type=CONTENT_TYPES[fmt]
    )
