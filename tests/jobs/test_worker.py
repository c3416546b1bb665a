"""Jobs in a real Celery worker, on the real broker (Redis) and the real database (PostgreSQL).

A worker process is started for each test with ``celery -A config worker``; the test starts jobs as
a page does (the row, then the message once the transaction commits) and watches them as the page
does (the job's row and the shared cache). Killing the worker mid-job and starting another shows
the job is run again and finishes, once. Skipped on SQLite (a second process cannot see the test's
in-memory database) and, outside CI, when Redis is not running.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.urls import reverse

from jobs.models import Job, JobKind, JobStatus
from jobs.services import job_start
from tests import factories as f
from tests.jobs.processes import Worker

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="a worker process needs PostgreSQL"),
]


@pytest.fixture
def worker(broker):
    started: list[Worker] = []

    def start() -> Worker:
        started.append(Worker(broker))
        return started[-1]

    yield start
    for each in started:
        each.stop()


def wait_for(job: Job, *statuses: str, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job still {job.status} after {timeout} s (wanted {statuses})")


def test_a_worker_runs_the_job_and_the_page_sees_it_move(worker, client):
    user = f.UserFactory()
    process = worker()
    job = job_start(
        kind=JobKind.PROBE, title="Probe", requested_by=user, parameters={"steps": 5, "sleep": 0.4}
    )
    assert job.status == JobStatus.QUEUED  # the request did not wait for the job
    client.force_login(user)
    seen = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fragment = client.get(reverse("jobs:detail", args=[job.pk]), HTTP_HX_REQUEST="true").content.decode()
        seen |= {step for step in range(1, 6) if f"Step {step} of 5" in fragment}
        if 'data-status="succeeded"' in fragment:
            break
        time.sleep(0.1)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, process.stop()
    assert job.result["steps"] == 5 and job.attempts == 1
    assert len(seen) >= 2, seen  # the page showed the job moving, from the worker's cache writes


def test_a_failing_job_is_marked_failed_and_the_worker_goes_on(worker):
    worker()
    failing = job_start(
        kind=JobKind.PROBE, title="Bad", requested_by=None, parameters={"fail": "no such table"}
    )
    after = job_start(kind=JobKind.PROBE, title="Next", requested_by=None, parameters={})
    assert wait_for(failing, JobStatus.FAILED).error == "no such table"
    assert wait_for(after, JobStatus.SUCCEEDED).status == JobStatus.SUCCEEDED


def test_a_job_survives_its_worker_being_killed(worker):
    first = worker()
    job = job_start(
        kind=JobKind.PROBE, title="Long", requested_by=None, parameters={"steps": 20, "sleep": 0.25}
    )
    wait_for(job, JobStatus.RUNNING)
    time.sleep(0.5)
    first.kill()  # mid-job, as a crash or a deploy would: the message was never acknowledged
    worker()
    job = wait_for(job, JobStatus.SUCCEEDED, timeout=90)
    assert job.attempts == 2 and job.result["attempt"] == 2
