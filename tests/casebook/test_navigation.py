"""The navigation bar: links by what the user's roles allow, worked out once per request."""

import pytest
from django.urls import reverse

from accounts import context_processors
from accounts.models import Role
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_links_follow_the_roles_and_are_worked_out_once_per_request(client, monkeypatch):
    site = f.SiteFactory()
    study = f.StudyFactory(sites=[site])
    patient = f.PatientFactory(study=study, site=site)
    nurse = f.UserFactory()
    f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
    client.force_login(nurse)
    worked_out = []
    links = context_processors._links
    monkeypatch.setattr(
        context_processors, "_links", lambda request, user: worked_out.append(request) or links(request, user)
    )

    response = client.get(reverse("casebook:patient_detail", args=[patient.pk]))

    assert response.status_code == 200
    assert len(worked_out) == 1  # the page and its seven sections, one computation
    labels = [link["label"] for link in response.context["nav_links"]]
    assert "Patients" in labels and "Import" not in labels  # importing is a site manager's
    assert [link["label"] for link in response.context["nav_links"] if link["current"]] == ["Patients"]
