"""A large import runs as two jobs — the check, then the apply — whose pages lead to the result.

Kept apart from the streamed exports, whose module shares two generated studies among its tests:
this one counts every patient in the database."""

import io

import pytest
from django.urls import reverse

from accounts.models import Role
from exchange import jobs, views
from exchange.models import ImportBatch, ImportStatus
from jobs.models import Job, JobStatus
from registry.choices import DiseaseArea
from registry.models import Patient
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_a_large_import_is_checked_and_applied_by_jobs(client, monkeypatch, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    monkeypatch.setattr(views, "IMPORT_JOB_MIN_ROWS", 10)
    site = f.SiteFactory(code="north")
    study = f.StudyFactory(code="imp", disease_area=DiseaseArea.NPSLE, sites=[site])
    admin = f.UserFactory()
    f.MembershipFactory(user=admin, site=site, role=Role.SITE_ADMIN)
    client.force_login(admin)
    lines = "".join(f"P{i:03d},north,F,1990,2021-03-01\n" for i in range(50))
    upload = io.BytesIO(("study_code,site,sex,birth_year,index_admission_date\n" + lines).encode())
    upload.name = "patients.csv"
    response = client.post(reverse("exchange:import"), {"study": study.pk, "site": site.pk, "file": upload})
    check = Job.objects.get(requested_by=admin)
    assert response["Location"] == reverse("jobs:detail", args=[check.pk])
    assert check.status == JobStatus.SUCCEEDED and not Patient.objects.exists()
    result = client.get(check.result["url"])
    assert "Apply this import" in result.content.decode() and result.context["result"].summary() == {
        "patients": {"created": 50, "changed": 0, "unchanged": 0}
    }
    batch = result.context["batch"]
    response = client.post(reverse("exchange:import_apply", args=[batch.pk]))
    applied = Job.objects.filter(requested_by=admin).exclude(pk=check.pk).get()
    assert response["Location"] == reverse("jobs:detail", args=[applied.pk])
    assert Patient.objects.filter(study=study).count() == 50
    assert ImportBatch.objects.get(pk=applied.result["batch"]).status == ImportStatus.APPLIED
    assert jobs.IMPORT_JOB_MIN_ROWS > 10  # the module's default is untouched
