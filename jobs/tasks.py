"""The one Celery task: run a job by its id (the runner is chosen by the job's kind)."""

from __future__ import annotations

from celery import shared_task

from .services import job_run


@shared_task(name="jobs.tasks.run_job", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: str) -> None:
    job_run(job_id)
