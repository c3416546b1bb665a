"""A job's page: its state and progress, polled by htmx every second until it finishes."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from .models import Job, JobStatus
from .progress import progress_of

#: How often a watching page asks again (milliseconds): the page never waits on the job itself.
POLL_MS = 1000


def _own_job(request: HttpRequest, job_id: uuid.UUID) -> Job:
    """Only the person who started a job (or a superuser) sees it; anyone else finds nothing."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or not (request.user.is_superuser or job.requested_by_id == request.user.pk):
        raise Http404("No such job.")
    return job


@login_required
def job_detail(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    job = _own_job(request, job_id)
    context = {"job": job, "progress": progress_of(job.pk), "poll_ms": POLL_MS}
    if request.headers.get("HX-Request"):
        response = render(request, "jobs/_progress.html", context)
        if job.status == JobStatus.SUCCEEDED and job.result.get("redirect") and job.result.get("url"):
            response["HX-Redirect"] = job.result["url"]  # a page waiting for its result shows it
        return response
    return render(request, "jobs/job.html", context)


@login_required
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = Job.objects.filter(requested_by_id=request.user.pk).order_by("-created_at")[:50]
    return render(request, "jobs/job_list.html", {"jobs": jobs})
