"""Jobs without a broker: run in the request through the same path a worker takes; the job page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from jobs.models import Job, JobKind, JobStatus
from jobs.progress import Reporter, progress_of
from jobs.services import MAX_ATTEMPTS, job_run, job_start
from tests import factories as f
from tests.jobs import probe  # noqa: F401  (registers the probe runner)

pytestmark = pytest.mark.django_db


def start(user, **parameters) -> Job:
    return job_start(kind=JobKind.PROBE, title="Probe", requested_by=user, parameters=parameters)


def test_without_a_broker_a_job_runs_in_the_request_and_records_what_it_made():
    user = f.UserFactory()
    job = start(user, steps=4)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"url": "/", "link_text": "Back home", "steps": 4, "attempt": 1}
    assert job.attempts == 1 and job.started_at <= job.finished_at
    assert progress_of(job.pk).percent == 100


def test_a_failing_job_is_marked_failed_with_its_error():
    job = start(f.UserFactory(), fail="the source file has no lumbar_punctures table")
    assert job.status == JobStatus.FAILED
    assert job.error == "the source file has no lumbar_punctures table"
    assert job.result == {}


def test_running_a_finished_job_again_changes_nothing():
    job = start(f.UserFactory())
    finished_at = job.finished_at
    job_run(job.pk)
    job.refresh_from_db()
    assert (job.attempts, job.finished_at, job.status) == (1, finished_at, JobStatus.SUCCEEDED)


def test_a_job_started_too_often_without_finishing_is_failed_not_retried_forever():
    job = Job.objects.create(
        kind=JobKind.PROBE, title="Probe", status=JobStatus.RUNNING, attempts=MAX_ATTEMPTS, parameters={}
    )
    job_run(job.pk)  # as a worker would, receiving the message again
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert f"stopped {MAX_ATTEMPTS} times" in job.error


def test_the_job_page_polls_while_running_and_links_the_result_when_finished(client):
    user = f.UserFactory()
    running = Job.objects.create(kind=JobKind.PROBE, title="Big import", requested_by=user, parameters={})
    running.status = JobStatus.RUNNING
    running.save()
    Reporter(running.pk)(40, "Lumbar punctures")
    client.force_login(user)
    page = client.get(reverse("jobs:detail", args=[running.pk]))
    html = page.content.decode()
    assert "Lumbar punctures (40%)" in html and 'value="40"' in html
    assert 'hx-trigger="load delay:1000ms"' in html
    done = start(user)
    fragment = client.get(reverse("jobs:detail", args=[done.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in fragment and 'href="/"' in fragment and "Back home" in fragment
    listing = client.get(reverse("jobs:list")).content.decode()
    assert "Big import" in listing and "Running" in listing


def test_nobody_else_sees_a_persons_job(client):
    job = start(f.UserFactory())
    client.force_login(f.UserFactory())
    assert client.get(reverse("jobs:detail", args=[job.pk])).status_code == 404
    assert "Probe" not in client.get(reverse("jobs:list")).content.decode()
