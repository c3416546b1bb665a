"""The data-quality sweep as a background job (runner registered in ``ReviewConfig.ready``).

A reviewer starts it for the sites where they review (one study or all of theirs); the job runs as
that reviewer's scope, never wider. The queries it opens are the rules' own (no person raised them);
the job records who asked for the sweep and when.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from accounts.access import Capability, scope
from accounts.models import User
from jobs.models import Job, JobKind
from jobs.progress import Reporter
from jobs.runners import register
from jobs.services import job_start
from registry.models import Patient, Study

from .sweep import sweep


def quality_sweep_start(*, user: User, study: Study | None) -> Job:
    """Queue a sweep of the patients ``user`` reviews (of ``study``, or of every study)."""
    where = f"study {study.code}" if study is not None else "all studies"
    return job_start(
        kind=JobKind.QUALITY_SWEEP,
        title=f"Data-quality checks of {where}",
        requested_by=user,
        parameters={"user": user.pk, "study": study.pk if study is not None else None},
    )


def swept_patients(user: User, study_id: int | None):
    """The patients a sweep asked for by ``user`` covers: those at the sites where they review."""
    patients = scope(Patient.objects.all(), user, Capability.REVIEW)
    return patients if study_id is None else patients.filter(study_id=study_id)


@register(JobKind.QUALITY_SWEEP)
def run_quality_sweep(job: Job, report: Reporter) -> dict[str, Any]:
    user = User.objects.get(pk=job.parameters["user"])
    patients = swept_patients(user, job.parameters["study"])

    def progress(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            report(100 * done / max(total, 1), f"{done} of {total} patients checked")

    result = sweep(patients, progress)
    return {
        "patients": result.patients,
        "opened": result.opened,
        "closed": result.closed,
        "url": reverse("review:query_list"),
        "summary": result.summary(),
        "link_text": "See the queries",
    }
