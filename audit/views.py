"""The patient's change history, the audit export, and the logged 403 page."""

from __future__ import annotations

import csv
import datetime as dt

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.access import Capability, get_scoped_or_404, has_capability, site_ids_with
from registry.formatting import spreadsheet_safe
from registry.models import Patient

from .export import COLUMNS, audit_rows
from .forms import AuditExportForm, TimelineFilterForm
from .models import SecurityEventKind
from .services import security_event_record
from .timeline import patient_entries


@login_required
@require_GET
def patient_history(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_scoped_or_404(Patient.objects.select_related("study", "site"), request.user, pk=pk)
    identifiers = has_capability(request.user, Capability.VIEW_IDENTIFIERS, patient.site_id)
    everything = patient_entries(patient.pk, include_identifiers=identifiers)
    users = sorted({(e.user_id, e.user) for e in everything if e.user_id}, key=lambda u: u[1])
    form = TimelineFilterForm(request.GET or None, users=users)
    entries = everything
    if form.is_valid():
        kind, section, user_id = (form.cleaned_data[k] for k in ("kind", "section", "user"))
        entries = [
            e
            for e in everything
            if e.matches(kind)
            and (not section or e.section == section)
            and (not user_id or e.user_id == user_id)
        ]
    return render(
        request,
        "audit/history.html",
        {
            "patient": patient,
            "entries": entries,
            "changes": [e.change for e in entries if e.change],
            "events": [e.event for e in entries if e.event],
            "form": form,
            "total": len(everything),
        },
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


@login_required
def audit_export(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    user = request.user
    if not (has_capability(user, Capability.REVIEW) or has_capability(user, Capability.MANAGE_SITE)):
        raise PermissionDenied("The audit export is for reviewers and site administrators.")
    form = AuditExportForm(request.GET or None, user=user)
    if not form.is_valid():
        return render(request, "audit/export.html", {"form": form})
    study = form.cleaned_data["study"]
    allowed = [site_ids_with(user, c) for c in (Capability.REVIEW, Capability.MANAGE_SITE)]
    site_ids = None if None in allowed else set[int]().union(*(ids for ids in allowed if ids is not None))
    identifiers = site_ids is None or bool(site_ids_with(user, Capability.VIEW_IDENTIFIERS))
    rows = audit_rows(
        study,
        date_from=form.cleaned_data["date_from"],
        date_to=form.cleaned_data["date_to"],
        site_ids=site_ids,
        include_identifiers=identifiers,
    )
    security_event_record(
        SecurityEventKind.EXPORT,
        request=request,
        detail={
            "what": "audit trail",
            "study": study.code,
            "from": str(form.cleaned_data["date_from"] or ""),
            "to": str(form.cleaned_data["date_to"] or ""),
        },
    )
    writer = csv.DictWriter(_Echo(), fieldnames=COLUMNS)

    def stream():
        yield writer.writeheader()
        for row in rows:
            yield writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{study.code}-{stamp}.csv"'
    return response


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The 403 page; every denial is logged as a security event."""
    security_event_record(
        SecurityEventKind.PERMISSION_DENIED, request=request, detail={"reason": str(exception)}
    )
    return render(request, "403.html", {"reason": str(exception)}, status=403)
