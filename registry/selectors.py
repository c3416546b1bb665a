"""Reads that are more than a filter: per-patient summaries shown in the admin and the pages."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import overload

from django.db.models import Count, DecimalField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from .choices import IntrathecalDrug
from .models import Patient, Study


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


class InStudyCodeOrder:
    """Patients ordered by their study's code, then by their study code, for a paginator.

    Ordering the query itself by ``study__code`` joins the study and sorts every visible patient for
    each page (a scan and top-N sort of 100,000 rows). Here the patients are counted per study once,
    and a page reads the studies it spans one at a time along the (study, study code) unique index,
    which stops after the page's rows: one query for a page within one study, two across a boundary.
    """

    def __init__(self, patients: QuerySet[Patient]) -> None:
        self.patients = patients.order_by()
        self._per_study: list[tuple[int, int]] | None = None

    def per_study(self) -> list[tuple[int, int]]:
        """(study id, number of patients) in study-code order, read once (also the paginator's count)."""
        if self._per_study is None:
            # Ordered by a subquery, not a join: the join would be made for each patient counted.
            code = Subquery(Study.objects.filter(pk=OuterRef("study_id")).order_by().values("code"))
            rows = self.patients.values_list("study_id").annotate(patients=Count("pk")).order_by(code)
            self._per_study = list(rows)
        return self._per_study

    def count(self) -> int:
        return sum(patients for _, patients in self.per_study())

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[Patient]:
        return iter(self[0 : self.count()])

    @overload
    def __getitem__(self, index: int) -> Patient: ...
    @overload
    def __getitem__(self, index: slice) -> list[Patient]: ...
    def __getitem__(self, index: int | slice) -> Patient | list[Patient]:
        if isinstance(index, int):
            return self[index : index + 1][0]
        start, stop = index.start or 0, self.count() if index.stop is None else index.stop
        found: list[Patient] = []
        before = 0  # patients of the studies before this one
        for study_id, patients in self.per_study():
            low, high = max(start - before, 0), min(stop - before, patients)
            if low < high:
                in_study = self.patients.filter(study_id=study_id).order_by("study_code")
                found.extend(in_study[low:high])
            before += patients
            if before >= stop:
                break
        return found
