"""The data-quality sweep: every rule over many patients at once.

Rules already run after each committed change (``rules.schedule_check``); a sweep is for what a
change does not trigger — a rule added or changed, an import's patients, a nightly pass. It runs
from ``manage.py run_quality_checks`` or as a background job a reviewer starts from the query list.
Each patient is checked in its own transaction, and a check opens only what is not already open, so
a sweep stopped half-way (a worker killed) is simply run again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import QuerySet

from registry.models import Patient

from .rules import check_patient

#: ``progress(done, total)`` after each patient.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SweepResult:
    patients: int
    opened: int
    closed: int

    def summary(self) -> str:
        return (
            f"{self.patients} patient{'s' if self.patients != 1 else ''} checked: "
            f"{self.opened} new quer{'ies' if self.opened != 1 else 'y'} opened, "
            f"{self.closed} resolved quer{'ies' if self.closed != 1 else 'y'} closed."
        )


def sweep(patients: QuerySet[Patient], progress: Progress | None = None) -> SweepResult:
    """Run every data-quality rule for these patients: open new rule queries, close resolved ones."""
    total = patients.count()
    opened = closed = done = 0
    for patient in patients.select_related("study").order_by("pk").iterator(chunk_size=500):
        new, resolved = check_patient(patient)
        opened, closed, done = opened + new, closed + resolved, done + 1
        if progress is not None:
            progress(done, total)
    return SweepResult(patients=done, opened=opened, closed=closed)
