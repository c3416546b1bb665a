"""Reads for the review workflow."""

from __future__ import annotations

from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from registry.models import Patient

from .models import DataQuery, QueryStatus, ReviewStatus, SectionReview


def section_status(patient: Patient, section: str) -> str:
    review = (
        SectionReview.objects.filter(patient=patient, section=section)
        .values_list("status", flat=True)
        .first()
    )
    return review or ReviewStatus.DRAFT


def section_reviews(patient: Patient) -> dict[str, SectionReview | None]:
    return {
        r.section: r
        for r in SectionReview.objects.filter(patient=patient).select_related(
            "submitted_by", "verified_by", "locked_by"
        )
    }


def section_queries(patient: Patient, section: str) -> QuerySet[DataQuery]:
    return (
        DataQuery.objects.filter(patient=patient, section=section)
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
