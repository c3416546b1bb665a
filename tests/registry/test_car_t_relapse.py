"""Relapse or progression after CAR-T (the ICANS studies' PFS event): captured through the API like
every follow-up event, audited with its reason, refused with a field error where it does not belong.
(The model, form and admin refusals are cases of test_validation_rules.)"""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Role
from registry.choices import DiseaseArea, FollowUpEventType
from registry.models import FollowUpEvent
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def nurse_client():
    site = f.SiteFactory(code="haem")
    nurse = f.UserFactory(username="nurse")
    f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
    client = APIClient()
    client.force_authenticate(nurse)
    return client, nurse, site


def test_nurse_records_a_relapse_after_car_t_and_the_history_says_who_and_why(nurse_client):
    client, nurse, site = nurse_client
    study = f.StudyFactory(code="cart", disease_area=DiseaseArea.ICANS, sites=[site])
    patient = f.PatientFactory(study=study, site=site)
    f.CarTInfusionFactory(patient=patient, infusion_date=dt.date(2021, 3, 10))
    response = client.post(
        f"/api/patients/{patient.pk}/follow-up-events/",
        {"event_type": "cart_relapse", "event_date": "2021-08-02"},
        format="json",
        HTTP_X_CHANGE_REASON="marrow aspirate 2 August",
    )
    assert response.status_code == 201, response.data
    event = FollowUpEvent.objects.get(patient=patient)
    assert (event.event_type, event.event_date) == (FollowUpEventType.CART_RELAPSE, dt.date(2021, 8, 2))
    assert event.get_event_type_display() == "Relapse or progression after CAR-T"
    history = event.history.get()
    assert (history.history_user, history.history_change_reason) == (nurse, "marrow aspirate 2 August")


def test_nurse_cannot_record_it_in_a_lupus_study_nor_before_the_infusion(nurse_client):
    client, _, site = nurse_client
    lupus = f.PatientFactory(study=f.StudyFactory(code="sle", sites=[site]), site=site)
    response = client.post(
        f"/api/patients/{lupus.pk}/follow-up-events/",
        {"event_type": "cart_relapse", "event_date": "2021-08-02"},
        format="json",
        HTTP_X_CHANGE_REASON="entered in the wrong study",
    )
    assert response.status_code == 400
    assert "event_type" in str(response.data)
    icans = f.StudyFactory(code="cart", disease_area=DiseaseArea.ICANS, sites=[site])
    patient = f.PatientFactory(study=icans, site=site)
    f.CarTInfusionFactory(patient=patient, infusion_date=dt.date(2021, 3, 10))
    response = client.post(
        f"/api/patients/{patient.pk}/follow-up-events/",
        {"event_type": "cart_relapse", "event_date": "2021-03-09"},
        format="json",
        HTTP_X_CHANGE_REASON="typo",
    )
    assert response.status_code == 400
    assert "after the first infusion (2021-03-10)" in str(response.data)
    assert not FollowUpEvent.objects.exists()


def test_nurse_records_it_on_the_case_record_page_with_a_field_error_first(client):
    site = f.SiteFactory(code="haem")
    nurse = f.UserFactory(username="ward-nurse")
    f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
    client.force_login(nurse)
    study = f.StudyFactory(code="cart", disease_area=DiseaseArea.ICANS, sites=[site])
    patient = f.PatientFactory(study=study, site=site)
    f.CarTInfusionFactory(patient=patient, infusion_date=dt.date(2021, 3, 10))
    url = reverse("casebook:record_create", args=[patient.pk, "follow-up"])
    page = client.get(url).content.decode()
    assert '<option value="cart_relapse">Relapse or progression after CAR-T</option>' in page
    refused = client.post(url, {"event_type": "cart_relapse", "event_date": "2021-03-01"})
    assert (
        "must come after the first infusion (2021-03-10)" in refused.context["form"].errors["event_date"][0]
    )
    assert not FollowUpEvent.objects.exists()
    saved = client.post(url, {"event_type": "cart_relapse", "event_date": "2021-06-01"})
    assert saved.status_code == 302
    event = FollowUpEvent.objects.get(patient=patient)
    assert event.history.get().history_user == nurse
