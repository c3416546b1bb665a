"""Reads that are more than a filter: per-patient summaries shown in the admin and the pages."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count, DecimalField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from .choices import IntrathecalDrug
from .models import Patient


def patients_with_dose_summary(queryset: QuerySet[Patient] | None = None) -> QuerySet[Patient]:
    """Annotate patients with their number of intrathecal injections and cumulative methotrexate (mg)."""
    queryset = Patient.objects.all() if queryset is None else queryset
    zero = Value(Decimal("0"), output_field=DecimalField(max_digits=10, decimal_places=2))
    # Aggregation drops Meta.ordering (Django ignores it in GROUP BY queries), so order explicitly.
    return queryset.order_by("study__code", "study_code").annotate(
        it_dose_count=Count("lumbar_punctures__doses", distinct=True),
        cumulative_mtx_mg=Coalesce(
            Sum(
                "lumbar_punctures__doses__dose_mg",
                filter=Q(lumbar_punctures__doses__drug=IntrathecalDrug.METHOTREXATE),
            ),
            zero,
        ),
    )
