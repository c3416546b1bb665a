"""Reads for the review workflow: section states, queries, the record-status grid and the worklists.

The grid and the worklists read a page of patients and then the review rows and open-query counts
of that page only, in one query each, so a page costs the same few queries at 1 or 100,000 patients.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Exists, IntegerField, Min, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.statements import Statement
from registry.choices import Section
from registry.models import Patient

from .models import DataQuery, QueryStatus, ReviewStatus, SectionReview

OPEN = [QueryStatus.OPEN, QueryStatus.ANSWERED]


#: One section's status: asked before writes and by the case-record pages (``accounts.statements``).
_SECTION_STATUS = Statement(
    lambda patient_id, section: (
        SectionReview.objects.filter(patient_id=patient_id, section=section)
        .order_by()  # one row (unique)
        .values_list("status", flat=True)
    ),
    patient_id=int,
    section=str,
)


def section_status(patient: Patient | int, section: str) -> str:
    """The section's review status (draft when it has no review row)."""
    found = _SECTION_STATUS(patient_id=patient if isinstance(patient, int) else patient.pk, section=section)
    return found[0] if found else ReviewStatus.DRAFT


def section_reviews(patient: Patient) -> dict[str, SectionReview | None]:
    return {
        r.section: r
        for r in SectionReview.objects.filter(patient=patient)
        .select_related("submitted_by", "verified_by", "locked_by")
        .order_by()
    }


def patient_queries(patient: Patient) -> QuerySet[DataQuery]:
    """The patient's queries that are not closed, of every section, with what their panels show."""
    return (
        DataQuery.objects.filter(patient=patient)
        .exclude(status=QueryStatus.CLOSED)
        .prefetch_related("messages__author")
        .select_related("raised_by", "content_type")
    )


def open_queries_overview(queryset: QuerySet[DataQuery]) -> QuerySet:
    """Open queries per study and site, with the oldest one's age."""
    return (
        queryset.exclude(status=QueryStatus.CLOSED)
        .values("patient__study__code", "patient__site__name")
        .annotate(
            open=Count("pk", filter=Q(status=QueryStatus.OPEN)),
            answered=Count("pk", filter=Q(status=QueryStatus.ANSWERED)),
            oldest=Min("raised_at"),
        )
        .order_by("patient__study__code", "patient__site__name")
    )


def age_in_days(moment) -> int:
    return (timezone.now() - moment).days


# --- the record-status grid: patients × sections -------------------------------------------------


@dataclass(frozen=True)
class Cell:
    section: str
    status: str
    open_queries: int

    @property
    def label(self) -> str:
        return ReviewStatus(self.status).label


@dataclass(frozen=True)
class StatusRow:
    patient: Patient
    cells: list[Cell]

    @property
    def open_queries(self) -> int:
        return sum(cell.open_queries for cell in self.cells)


def _open_query_count() -> Coalesce:
    counted = (
        DataQuery.objects.filter(patient=OuterRef("pk"), status__in=OPEN)
        .values("patient")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def with_open_query_count(patients: QuerySet[Patient]) -> QuerySet[Patient]:
    return patients.annotate(open_query_count=_open_query_count())


def having_status(patients: QuerySet[Patient], status: str) -> QuerySet[Patient]:
    """Patients with at least one section in this status (a section without a review row is a draft)."""
    if status != ReviewStatus.DRAFT:
        return patients.filter(Exists(SectionReview.objects.filter(patient=OuterRef("pk"), status=status)))
    reviewed = (
        SectionReview.objects.filter(patient=OuterRef("pk"))
        .exclude(status=ReviewStatus.DRAFT)
        .values("patient")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return patients.annotate(reviewed_sections=Coalesce(Subquery(reviewed), Value(0))).filter(
        reviewed_sections__lt=len(Section.values)
    )


def having_open_queries(patients: QuerySet[Patient]) -> QuerySet[Patient]:
    return patients.filter(Exists(DataQuery.objects.filter(patient=OuterRef("pk"), status__in=OPEN)))


def status_rows(patients: list[Patient]) -> list[StatusRow]:
    """One row per patient of the page with a cell per section: two queries whatever the page's size."""
    ids = [p.pk for p in patients]
    statuses = {
        (patient_id, section): status
        for patient_id, section, status in SectionReview.objects.filter(patient_id__in=ids)
        .order_by()
        .values_list("patient_id", "section", "status")
    }
    counts: dict[tuple[int, str], int] = defaultdict(int)
    for row in (
        DataQuery.objects.filter(patient_id__in=ids, status__in=OPEN)
        .values("patient_id", "section")
        .annotate(n=Count("pk"))
    ):
        counts[(row["patient_id"], row["section"])] = row["n"]
    return [
        StatusRow(
            patient,
            [
                Cell(
                    section,
                    statuses.get((patient.pk, section), ReviewStatus.DRAFT),
                    counts[(patient.pk, section)],
                )
                for section in Section.values
            ],
        )
        for patient in patients
    ]


# --- worklists -----------------------------------------------------------------------------------


def waiting_for_review(reviews: QuerySet[SectionReview]) -> QuerySet[SectionReview]:
    """Submitted sections waiting for a reviewer, oldest submission first."""
    return (
        reviews.filter(status=ReviewStatus.SUBMITTED)
        .select_related("patient__study", "patient__site", "submitted_by")
        .order_by("submitted_at", "pk")
    )


def waiting_per_study(reviews: QuerySet[SectionReview]) -> list[dict[str, Any]]:
    rows = (
        reviews.filter(status=ReviewStatus.SUBMITTED)
        .values("patient__study__code")
        .annotate(sections=Count("pk"), oldest=Min("submitted_at"))
        .order_by("patient__study__code")
    )
    return [dict(row) for row in rows]


def drafts_of(user, patients: QuerySet[Patient]) -> QuerySet[Patient]:
    """Patients this person enrolled or edited that still have a draft section, most recent first."""
    theirs = Patient.history.filter(history_user=user).values("id")
    return having_status(patients.filter(pk__in=theirs), ReviewStatus.DRAFT).order_by("-updated_at")


def awaiting_answer(queries: QuerySet[DataQuery]) -> QuerySet[DataQuery]:
    """Open queries (not yet answered), oldest first: the ones data entry should answer."""
    return (
        queries.filter(status=QueryStatus.OPEN)
        .select_related("patient__study", "patient__site", "raised_by")
        .order_by("raised_at", "pk")
    )
