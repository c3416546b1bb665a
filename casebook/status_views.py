"""The record-status grid (patients × sections) and the worklists of the home page.

Each page reads one page of rows and then what those rows show, in a fixed number of queries, so
it is as fast at 100,000 patients as at one (``tests/casebook/test_record_status.py`` counts them).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import AnyUser, Capability, has_capability, scope, sites_with
from registry.models import Patient, Study
from review import selectors
from review.forms import RecordStatusForm
from review.models import DataQuery, ReviewStatus, SectionReview

from .records import SECTIONS

PAGE_SIZE = 50
WORKLIST_SIZE = 25
ORDER = {
    "patient": ["study__code", "study_code"],
    "study": ["study__code", "study_code"],
    "site": ["site__name", "study__code", "study_code"],
    "-updated": ["-updated_at", "pk"],
    "-queries": ["-open_query_count", "study__code", "study_code"],
}


def _filtered(form: RecordStatusForm, patients: QuerySet[Patient]) -> QuerySet[Patient]:
    if not form.is_valid():
        return patients.order_by(*ORDER["patient"])
    data = form.cleaned_data
    if data["study"]:
        patients = patients.filter(study=data["study"])
    if data["site"]:
        patients = patients.filter(site=data["site"])
    if data["status"]:
        patients = selectors.having_status(patients, data["status"])
    if data["open_queries"]:
        patients = selectors.having_open_queries(patients)
    sort = data["sort"] or "patient"
    if sort == "-queries":
        patients = selectors.with_open_query_count(patients)
    return patients.order_by(*ORDER[sort])


@login_required
def record_status(request: HttpRequest) -> HttpResponse:
    """Every visible patient's sections: draft, submitted, verified or locked, with open queries."""
    user = request.user
    if not has_capability(user, Capability.VIEW_RECORDS):
        raise PermissionDenied("Your role does not include case records.")
    visible = scope(Patient.objects.select_related("study", "site"), user)
    sites = sites_with(user, Capability.VIEW_RECORDS)
    studies = Study.objects.filter(sites__in=sites).distinct().order_by("code")
    form = RecordStatusForm(request.GET or None, studies=studies, sites=sites.order_by("name"))
    page = Paginator(_filtered(form, visible), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "review/record_status.html",
        {
            "form": form,
            "page": page,
            "rows": selectors.status_rows(list(page.object_list)),
            "sections": SECTIONS,
            "statuses": ReviewStatus.choices,
            "query": query.urlencode(),
        },
    )


def worklists(user: AnyUser) -> dict[str, Any]:
    """The home page's work: a reviewer's sections waiting (oldest first, counts per study), data
    entry's drafts and the queries waiting for their answer."""
    context: dict[str, Any] = {
        "reviews": has_capability(user, Capability.REVIEW),
        "enters_data": has_capability(user, Capability.EDIT_RECORDS),
    }
    if context["reviews"]:
        reviews = scope(SectionReview.objects.all(), user, Capability.REVIEW)
        context["waiting"] = selectors.waiting_for_review(reviews)[:WORKLIST_SIZE]
        context["waiting_per_study"] = selectors.waiting_per_study(reviews)
    if context["enters_data"]:
        patients = scope(Patient.objects.select_related("study", "site"), user, Capability.EDIT_RECORDS)
        queries = scope(DataQuery.objects.all(), user, Capability.EDIT_RECORDS)
        context["drafts"] = selectors.drafts_of(user, patients)[:WORKLIST_SIZE]
        context["to_answer"] = selectors.awaiting_answer(queries)[:WORKLIST_SIZE]
        context["to_answer_total"] = selectors.awaiting_answer(queries).count()
    context["sections"] = SECTIONS
    return context


__all__ = ["record_status", "worklists"]
