"""Courses through the API: start one from a protocol, mark an injection missed, stop it — the same
services and rules as the pages; protocols are readable reference data."""

import pytest
from rest_framework.test import APIClient

from accounts.models import Role
from protocols.choices import CourseStatus, InjectionStatus
from protocols.models import Course
from tests import factories as f
from tests.protocols.conftest import START, member, patient_in

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_protocols_are_listed_with_their_rules(seeds, npsle_patient):
    researcher = member(npsle_patient.site, Role.RESEARCHER)
    answer = client_for(researcher).get("/api/protocols/?code=lm-pemetrexed").json()
    assert answer["count"] == 1
    protocol = answer["results"][0]
    assert [p["injection_count"] for p in protocol["phases"]] == [8, 4, None]
    pemetrexed = next(c for c in protocol["components"] if c["drug"] == "pemetrexed")
    assert (pemetrexed["dose_mg"], pemetrexed["step_mg"], pemetrexed["cap_mg"]) == ("10.00", "5.00", "50.00")
    assert {r["category"] for r in protocol["supportive_requirements"]} == {"folic_acid", "vitamin_b12"}


def test_a_course_is_started_missed_and_stopped_through_the_api(seeds, npsle_patient):
    nurse = member(npsle_patient.site, username="api-nurse")
    client = client_for(nurse)
    url = f"/api/patients/{npsle_patient.pk}/courses/"

    wrong = client.post(url, {"protocol": seeds["lm-pemetrexed"].pk, "start_date": START}, format="json")
    assert wrong.status_code == 400 and "is a protocol for" in wrong.json()["protocol"][0]

    created = client.post(url, {"protocol": seeds["npsle-pumch"].pk, "start_date": START}, format="json")
    assert created.status_code == 201, created.json()
    course = created.json()
    assert [i["planned_date"] for i in course["injections"][:2]] == ["2021-03-01", "2021-03-08"]
    assert course["injections"][0]["proposed_doses"][0]["drug"] == "dexamethasone"
    again = client.post(url, {"protocol": seeds["npsle-pumch"].pk, "start_date": START}, format="json")
    assert again.status_code == 400 and "already has an active course" in str(again.json())

    second, first = course["injections"][1]["id"], course["injections"][0]["id"]
    out_of_order = client.post(f"{url}{course['id']}/missed/", {"injection": second, "deviation_reason": "x"})
    assert out_of_order.status_code == 400 and "in order" in out_of_order.json()["status"][0]
    missed = client.post(f"{url}{course['id']}/missed/", {"injection": first, "deviation_reason": "Declined"})
    assert missed.status_code == 200
    assert missed.json()["injections"][0]["status"] == InjectionStatus.MISSED

    unexplained = client.post(
        f"{url}{course['id']}/stop/", {"ended_on": "2021-03-10", "stop_reason": "other"}
    )
    assert unexplained.status_code == 400
    stopped = client.post(
        f"{url}{course['id']}/stop/", {"ended_on": "2021-03-10", "stop_reason": "recovered"}
    )
    assert stopped.status_code == 200 and stopped.json()["status"] == CourseStatus.STOPPED
    stored = Course.objects.get(pk=course["id"])
    assert stored.history.latest().history_user == nurse
    assert client.put(f"{url}{course['id']}/", {}, format="json").status_code == 405


def test_courses_follow_the_site_and_role_rules(seeds, npsle_patient):
    other = patient_in("npsle", site=f.SiteFactory(code="elsewhere"))
    nurse = member(npsle_patient.site)
    assert client_for(nurse).get(f"/api/patients/{other.pk}/courses/").status_code == 404
    researcher = member(npsle_patient.site, Role.RESEARCHER)
    refused = client_for(researcher).post(
        f"/api/patients/{npsle_patient.pk}/courses/",
        {"protocol": seeds["npsle-pumch"].pk, "start_date": START},
        format="json",
    )
    assert refused.status_code == 403  # researchers read de-identified data; they do not write
    assert not Course.objects.exists()


@pytest.mark.parametrize("start_date", ["9999-12-30", "2099-01-01"])
def test_a_course_is_planned_at_most_a_year_ahead(seeds, npsle_patient, start_date):
    """Far-future starts are refused at the field (9999-12-30 used to overflow the calendar: a 500)."""
    answer = client_for(member(npsle_patient.site)).post(
        f"/api/patients/{npsle_patient.pk}/courses/",
        {"protocol": seeds["npsle-pumch"].pk, "start_date": start_date},
        format="json",
    )
    assert answer.status_code == 400
    assert answer.json()["start_date"][0].startswith("A course can be planned at most 365 days ahead")
    assert not Course.objects.exists()
