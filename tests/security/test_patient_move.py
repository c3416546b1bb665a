"""Moving a patient between sites is its own audited action, for study administrators of both sites.

Before, a patient's site changed through an import row (and could through the admin form). Now
neither does: the patient page and ``POST /api/patients/{id}/move/`` move a patient, with a reason,
for a study administrator who holds that role at the patient's site and at the new one.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Role
from audit.models import SecurityEvent, SecurityEventKind
from registry.models import Patient
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    north, south, east = (f.SiteFactory(code=code, name=code.title()) for code in ("north", "south", "east"))
    study = f.StudyFactory(code="npsle-m", sites=[north, south, east])
    patient = f.PatientFactory(study=study, site=south, study_code="NP0009")
    users = {}
    for name, role, sites in (
        ("study-admin", Role.STUDY_ADMIN, (north, south)),
        ("site-admin", Role.SITE_ADMIN, (north, south)),
        ("nurse", Role.DATA_ENTRY, (north, south)),
    ):
        users[name] = f.UserFactory(username=name)
        for site in sites:
            f.MembershipFactory(user=users[name], site=site, role=role)
    return {"north": north, "south": south, "east": east, "patient": patient, **users}


def test_study_admin_moves_a_patient_with_a_reason_from_the_patient_page(client, world):
    client.force_login(world["study-admin"])
    page = client.get(reverse("casebook:patient_detail", args=[world["patient"].pk])).content.decode()
    assert "Move to another site" in page
    url = reverse("casebook:patient_move", args=[world["patient"].pk])
    form = client.get(url).content.decode()
    assert "North" in form and "East" not in form  # only sites where the mover holds the role
    refused = client.post(url, {"site": world["north"].pk, "reason": ""})
    assert refused.status_code == 200 and "This field is required" in refused.content.decode()
    assert Patient.objects.get(pk=world["patient"].pk).site == world["south"]

    response = client.post(url, {"site": world["north"].pk, "reason": "Transferred for follow-up"})
    assert response.status_code == 302
    patient = Patient.objects.get(pk=world["patient"].pk)
    assert patient.site == world["north"]
    latest = patient.history.first()
    assert latest.history_user == world["study-admin"]
    assert latest.history_change_reason == "Moved from south to north: Transferred for follow-up"
    event = SecurityEvent.objects.get(kind=SecurityEventKind.PATIENT_MOVED)
    assert event.user == world["study-admin"]
    assert event.detail == {
        "study": "npsle-m",
        "patient": "NP0009",
        "from_site": "south",
        "to_site": "north",
        "reason": "Transferred for follow-up",
    }


def test_a_site_outside_the_movers_sites_is_refused(client, world):
    client.force_login(world["study-admin"])
    url = reverse("casebook:patient_move", args=[world["patient"].pk])
    response = client.post(url, {"site": world["east"].pk, "reason": "somewhere else"})
    assert "Select a valid choice" in response.content.decode()
    assert Patient.objects.get(pk=world["patient"].pk).site == world["south"]


@pytest.mark.parametrize("who", ["site-admin", "nurse"])
def test_other_roles_may_not_move_patients(client, world, who):
    client.force_login(world[who])
    assert (
        "Move to another site"
        not in client.get(reverse("casebook:patient_detail", args=[world["patient"].pk])).content.decode()
    )
    url = reverse("casebook:patient_move", args=[world["patient"].pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"site": world["north"].pk, "reason": "x"}).status_code == 403
    api = APIClient()
    api.force_authenticate(world[who])
    moved = api.post(f"/api/patients/{world['patient'].pk}/move/", {"site": world["north"].pk, "reason": "x"})
    assert moved.status_code == 403
    assert Patient.objects.get(pk=world["patient"].pk).site == world["south"]


def test_api_moves_a_patient_for_a_study_admin_of_both_sites(world):
    api = APIClient()
    api.force_authenticate(world["study-admin"])
    url = f"/api/patients/{world['patient'].pk}/move/"
    assert api.post(url, {"site": world["east"].pk, "reason": "x"}, format="json").json() == {
        "site": ["You may not move patients to this site."]
    }
    assert api.post(url, {"site": world["south"].pk, "reason": "x"}, format="json").json() == {
        "site": ["The patient is already enrolled at South."]
    }
    response = api.post(url, {"site": world["north"].pk, "reason": "Referred"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["site"] == world["north"].pk
    assert Patient.objects.get(pk=world["patient"].pk).site == world["north"]


def test_the_admin_form_no_longer_changes_a_patients_site(client, world):
    admin = f.UserFactory(username="root", is_superuser=True, is_staff=True)
    client.force_login(admin)
    page = client.get(reverse("admin:registry_patient_change", args=[world["patient"].pk])).content.decode()
    assert 'name="site"' not in page and 'name="study"' not in page
