"""With a worker configured, a report that is not cached is computed by a job; the page never waits."""

from __future__ import annotations

import pytest
from django.urls import reverse

from analytics.models import ReportRun
from analytics.reports.definitions import default_definition
from jobs.models import Job, JobKind, JobStatus
from jobs.services import job_run
from tests.reports.conftest import researcher

pytestmark = pytest.mark.django_db


@pytest.fixture
def with_a_worker(settings):
    # A broker is configured, so report runs go to a worker (none runs here: the test plays its part).
    settings.CELERY_BROKER_URL = "memory://"


def test_the_page_starts_one_job_shows_its_progress_and_then_the_report(client, demo, with_a_worker):
    client.force_login(researcher("jobs-researcher", "haem"))
    url = reverse("reports:detail", args=[default_definition(demo["icans"]).pk])
    first = client.get(url).content.decode()
    assert "Computing the report" in first and "Waiting for a worker" in first
    assert 'data-testid="n-records"' not in first
    client.get(url)  # a second look (or a reload) joins the same job
    job = Job.objects.get(kind=JobKind.REPORT_RUN)
    assert job.status == JobStatus.QUEUED and job.parameters["return_url"] == url
    assert not ReportRun.objects.filter(study=demo["icans"]).exists()

    job_run(job.pk)  # what the worker does with the message
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 1
    poll = client.get(reverse("jobs:detail", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert poll["HX-Redirect"] == url  # the waiting page goes to the report by itself
    page = client.get(url).content.decode()
    assert 'data-testid="n-records"' in page and "Computing the report" not in page
    assert Job.objects.count() == 1
