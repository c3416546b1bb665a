"""Starting a job and running it: the same path in a worker and, without a broker, in the request.

A job is started by ``job_start``: the row is written, and once the request's transaction commits
the worker is asked to run it. Without a broker (``CELERY_BROKER_URL`` unset: tests and a bare
checkout) the job runs at once, in the request, through the same ``job_run``.

``job_run`` is idempotent, which is what lets a worker be killed mid-job: the broker hands the
unacknowledged message to the next worker (acks late), which finds the job unfinished and runs it
again from the start (every runner's work is all or nothing, or repeatable). A job that has been
started ``MAX_ATTEMPTS`` times without finishing is marked failed instead of being tried forever.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import FINISHED, Job, JobKind, JobStatus
from .progress import Reporter
from .runners import runner_for

logger = logging.getLogger("registry.jobs")

MAX_ATTEMPTS = 3
RUN_JOB_TASK = "jobs.tasks.run_job"


def background_enabled() -> bool:
    """True when a broker is configured, so jobs go to a worker rather than run in the request."""
    return bool(getattr(settings, "CELERY_BROKER_URL", ""))


def job_start(*, kind: JobKind, title: str, requested_by: Any, parameters: dict[str, Any]) -> Job:
    """Record the job and hand it to a worker once the caller's transaction commits (or run it now)."""
    job = Job.objects.create(kind=kind, title=title[:200], requested_by=requested_by, parameters=parameters)
    if background_enabled():
        # Sent by name (the task lives in jobs.tasks, which the worker loads), once the row is committed.
        transaction.on_commit(lambda: current_app.send_task(RUN_JOB_TASK, args=[str(job.pk)]))
    else:
        job_run(job.pk)
        job.refresh_from_db()
    return job


def _claim(job_id: uuid.UUID | str) -> Job | None:
    """Mark the job running (one more attempt), or None when it is finished or has used its attempts."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status in FINISHED:
            return None
        if job.attempts >= MAX_ATTEMPTS:
            _finish(job, JobStatus.FAILED, error=f"The job stopped {job.attempts} times without finishing.")
            return None
        job.status, job.attempts, job.started_at = JobStatus.RUNNING, job.attempts + 1, timezone.now()
        job.save(update_fields=["status", "attempts", "started_at"])
        return job


def _finish(job: Job, status: JobStatus, *, result: dict[str, Any] | None = None, error: str = "") -> None:
    job.status, job.finished_at, job.error = status, timezone.now(), error
    job.result = result or {}
    job.save(update_fields=["status", "finished_at", "error", "result"])


def job_run(job_id: uuid.UUID | str) -> None:
    """Run a job's runner; record what it made, or its error. Safe to call again for the same job."""
    job = _claim(job_id)
    if job is None:
        return
    report = Reporter(job.pk)
    try:
        result = runner_for(job.kind)(job, report)
    except Exception as error:  # the job fails with its error; the worker and the page carry on
        logger.exception("Job %s (%s) failed", job.pk, job.kind)
        _finish(job, JobStatus.FAILED, error=str(error) or type(error).__name__)
        return
    report(100, "Finished")
    _finish(job, JobStatus.SUCCEEDED, result=result)
