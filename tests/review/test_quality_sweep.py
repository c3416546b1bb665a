"""The data-quality sweep: the nightly command and the job a reviewer starts, scoped to their sites."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.models import Role
from jobs.models import Job, JobKind, JobStatus
from registry.choices import DiseaseArea
from review.models import DataQuery, QueryOrigin
from tests import factories as f

pytestmark = pytest.mark.django_db


def outlier(site, study):
    """A patient whose opening pressure a rule flags at once (no submission needed)."""
    patient = f.PatientFactory(study=study, site=site)
    f.LumbarPunctureFactory(patient=patient, opening_pressure_mmh2o=450)
    return patient


@pytest.fixture
def world():
    north, south = f.SiteFactory(name="North"), f.SiteFactory(name="South")
    npsle = f.StudyFactory(code="npsle-s", sites=[north, south])
    lm = f.StudyFactory(code="lm-s", disease_area=DiseaseArea.LM, sites=[north, south])
    reviewer = f.UserFactory()
    f.MembershipFactory(user=reviewer, site=north, role=Role.REVIEWER)
    return {
        "reviewer": reviewer,
        "own_npsle": outlier(north, npsle),
        "own_lm": outlier(north, lm),
        "other": outlier(south, npsle),
        "npsle": npsle,
    }


def rule_queries(patient) -> int:
    return DataQuery.objects.filter(patient=patient, origin=QueryOrigin.RULE).count()


def test_a_reviewer_runs_the_checks_for_their_own_sites_only_as_a_job(client, world):
    client.force_login(world["reviewer"])
    page = client.get(reverse("review:query_list"))
    assert b"Run the data-quality checks" in page.content

    response = client.post(reverse("review:quality_sweep"))
    job = Job.objects.get(kind=JobKind.QUALITY_SWEEP)
    assert response.status_code == 302 and response["Location"] == reverse("jobs:detail", args=[job.pk])
    assert job.requested_by == world["reviewer"] and job.status == JobStatus.SUCCEEDED
    assert rule_queries(world["own_npsle"]) >= 1 and rule_queries(world["own_lm"]) >= 1
    assert rule_queries(world["other"]) == 0, "another site's patients are not the reviewer's to sweep"
    assert job.result["patients"] == 2
    assert job.result["opened"] == rule_queries(world["own_npsle"]) + rule_queries(world["own_lm"])
    assert job.result["url"] == reverse("review:query_list")

    page = client.get(reverse("jobs:detail", args=[job.pk]))
    assert "2 patients checked" in page.content.decode()

    client.post(reverse("review:quality_sweep"))
    again = Job.objects.filter(kind=JobKind.QUALITY_SWEEP).latest("created_at")
    assert again.result["opened"] == 0, "a second sweep opens nothing new"


def test_a_sweep_of_one_study(client, world):
    client.force_login(world["reviewer"])
    client.post(reverse("review:quality_sweep"), {"study": world["npsle"].pk})
    job = Job.objects.get(kind=JobKind.QUALITY_SWEEP)
    assert job.title == "Data-quality checks of study npsle-s"
    assert rule_queries(world["own_npsle"]) >= 1 and rule_queries(world["own_lm"]) == 0


@pytest.mark.parametrize("study", ["not-a-number", "999999"])
def test_a_study_the_reviewer_does_not_review_is_refused_and_nothing_runs(client, world, study):
    client.force_login(world["reviewer"])
    response = client.post(reverse("review:quality_sweep"), {"study": study}, follow=True)
    assert "Select a valid choice" in response.content.decode()
    assert not Job.objects.exists() and not DataQuery.objects.exists()


def test_only_reviewers_may_start_a_sweep(client, world):
    nurse = f.UserFactory()
    f.MembershipFactory(user=nurse, site=world["own_npsle"].site, role=Role.DATA_ENTRY)
    client.force_login(nurse)
    assert b"Run the data-quality checks" not in client.get(reverse("review:query_list")).content
    assert client.post(reverse("review:quality_sweep")).status_code == 403
    assert client.get(reverse("review:quality_sweep")).status_code == 405
    assert not Job.objects.exists() and not DataQuery.objects.exists()


def test_the_nightly_command_sweeps_every_site(world):
    out = StringIO()
    call_command("run_quality_checks", stdout=out)
    assert all(rule_queries(world[key]) >= 1 for key in ("own_npsle", "own_lm", "other"))
    assert "new queries opened, 0 resolved queries closed" in out.getvalue()
