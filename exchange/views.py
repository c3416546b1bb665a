"""Import (site administrators) and export pages: thin views over the importer and the exporter."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import Capability, has_capability
from analytics.deidentify import DateHandling

from .batches import batches_mark_interrupted
from .export import (
    ExportOptions,
    ExportRefused,
    export_record,
    export_tables,
    to_csv_zip,
    to_statistics_zip,
    to_xlsx,
)
from .forms import ExportForm, ImportForm
from .importer import Importer, ImportFileError, read_tables, sha256_of
from .limits import ImportLimitError, ImportLimits, check_upload_size
from .models import ImportBatch, ImportStatus
from .redcap import RedcapMappingError, redcap_tables

CONTENT_TYPES = {
    "csv": "application/zip",
    "sav": "application/zip",
    "dta": "application/zip",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
EXTENSIONS = {"csv": "csv.zip", "sav": "sav.zip", "dta": "dta.zip", "xlsx": "xlsx"}


def _require_site_admin(request: HttpRequest) -> None:
    if not has_capability(request.user, Capability.MANAGE_SITE):
        raise PermissionDenied("Imports are for site administrators.")


def _tables(upload: bytes, name: str, dictionary: bytes | None, mapping: bytes | None):
    limits = ImportLimits.for_page()
    if dictionary is not None:
        tables, notes = redcap_tables(upload, dictionary, mapping, limits=limits)
        return tables, notes, "redcap"
    tables, notes = read_tables(name, upload, limits=limits)
    return tables, notes, name.rsplit(".", 1)[-1].lower()


def _upload_page(
    request: HttpRequest, form: ImportForm, *, status: int = 200, refused: str = ""
) -> HttpResponse:
    batches_mark_interrupted()  # so "your recent imports" never shows a dead import as running
    recent = ImportBatch.objects.filter(started_by=request.user)[:10]
    context = {"form": form, "recent": recent, "refused": refused}
    return render(request, "exchange/import.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def import_upload(request: HttpRequest) -> HttpResponse:
    """Upload a file: it is checked as a dry run first; the result page offers to apply it.

    The size of the request is checked before Django reads the files, so an oversized upload is
    refused without being stored; a file that cannot be read is refused with one message (400).
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
    dictionary = form.cleaned_data["redcap_dictionary"]
    mapping = form.cleaned_data["redcap_mapping"]
    try:
        tables, notes, source = _tables(
            content,
            upload.name,
            dictionary.read() if dictionary else None,
            mapping.read() if mapping else None,
        )
    except (ImportFileError, RedcapMappingError) as error:
        form.add_error("file", str(error))
        return _upload_page(request, form, status=400)
    result = Importer(
        study=form.cleaned_data["study"], actor=request.user, site=form.cleaned_data["site"]
    ).run(
        tables,
        dry_run=True,
        file_name=upload.name,
        sha256=sha256_of(content),
        source_format=source,
        notes=notes,
    )
    result.batch.stored_file.save(upload.name, ContentFile(content), save=True)
    if dictionary:
        request.session[f"import-{result.batch.pk}"] = {
            "dictionary": dictionary.open().read().decode(),
            "mapping": mapping.open().read().decode(),
        }
    return render(request, "exchange/import_result.html", {"result": result, "batch": result.batch})


@login_required
@require_POST
def import_apply(request: HttpRequest, batch_pk: int) -> HttpResponse:
    """Apply a file that passed its dry run: the same bytes, all or nothing."""
    _require_site_admin(request)
    checked = ImportBatch.objects.filter(
        pk=batch_pk, started_by=request.user, status=ImportStatus.DRY_RUN
    ).first()
    if checked is None or checked.errors or not checked.stored_file:
        raise Http404("No dry run of yours to apply.")
    content = checked.stored_file.open("rb").read()
    redcap = request.session.get(f"import-{batch_pk}")
    tables, notes, source = _tables(
        content,
        checked.file_name,
        redcap["dictionary"].encode() if redcap else None,
        redcap["mapping"].encode() if redcap else None,
    )
    result = Importer(study=checked.study, actor=request.user, site=checked.site).run(
        tables,
        dry_run=False,
        file_name=checked.file_name,
        sha256=checked.file_sha256,
        source_format=source,
        notes=notes,
    )
    return render(request, "exchange/import_result.html", {"result": result, "batch": result.batch})


@login_required
@require_http_methods(["GET", "POST"])
def export(request: HttpRequest) -> HttpResponse:
    form = ExportForm(request.POST or None, user=request.user)
    if not form.fields["study"].queryset.exists():
        raise PermissionDenied("Your role does not include exports.")
    if request.method != "POST" or not form.is_valid():
        return render(request, "exchange/export.html", {"form": form}, status=400 if form.is_bound else 200)
    data = form.cleaned_data
    identified = bool(data.get("identified"))
    options = ExportOptions(
        identified=identified,
        free_text=data["free_text"],
        dates=DateHandling.EXACT if identified else DateHandling(data["dates"]),
        reason=data.get("reason", ""),
    )
    try:
        tables = export_tables(data["study"], user=request.user, options=options)
    except ExportRefused as refusal:
        raise PermissionDenied(str(refusal)) from refusal
    fmt = data["format"]
    content = {"csv": to_csv_zip, "xlsx": to_xlsx}.get(fmt, lambda s, t, o: to_statistics_zip(s, t, o, fmt))(
        data["study"], tables, options
    )
    export_record(data["study"], tables, options, fmt=fmt, request=request)
    kind = "identified" if identified else "deidentified"
    response = HttpResponse(content, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{data["study"].code}-{kind}.{EXTENSIONS[fmt]}"'
    return response
