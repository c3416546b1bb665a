"""The API runs the same safety checks as the page: findings come back with 400 and nothing is
written; an override with a reason saves, is listed on the LP and kept in the history. Dose
writes under an LP go through the same unit and keep the course's plan in step."""

import datetime as dt

import pytest
from rest_framework.test import APIClient

from protocols.choices import InjectionStatus
from protocols.models import PlannedInjection, SafetyOverride
from registry.models import IntrathecalDose, LumbarPuncture
from tests.protocols.conftest import START, at, member, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(npsle_patient):
    user = member(npsle_patient.site, username="entry")
    client = APIClient()
    client.force_authenticate(user)
    return client, user


def lp_payload(day: dt.date, pressure: int, **extra):
    return {
        "performed_at": at(day).isoformat(),
        "route": "lumbar",
        "opening_pressure_mmh2o": pressure,
        "doses": [
            {"drug": "dexamethasone", "dose_mg": "10", "timing": "with"},
            {"drug": "methotrexate", "dose_mg": "10", "timing": "with"},
        ],
        **extra,
    }


def test_a_finding_is_returned_and_blocks_the_save_until_overridden(seeds, npsle_patient, api):
    client, user = api
    course = start(npsle_patient, seeds["npsle-pumch"], user)
    url = f"/api/patients/{npsle_patient.pk}/lumbar-punctures/"

    refused = client.post(url, lp_payload(START, 60), format="json")
    assert refused.status_code == 400, refused.json()
    body = refused.json()
    assert [f["code"] for f in body["safety_findings"]] == ["low_icp"]
    assert body["safety_findings"][0]["overridable"] is True
    assert body["overrides"]["low_icp"][0].endswith("Override it with a reason to save anyway.")
    assert not LumbarPuncture.objects.exists()

    unknown = client.post(url, lp_payload(START, 60, overrides={"lowicp": "typo"}), format="json")
    assert unknown.status_code == 400
    assert unknown.json()["overrides"][0].startswith("Unknown safety check(s): lowicp.")

    saved = client.post(
        url, lp_payload(START, 60, overrides={"low_icp": "Slow tap; headache relief needed"}), format="json"
    )
    assert saved.status_code == 201, saved.json()
    override = saved.json()["safety_overrides"][0]
    assert (override["check"], override["reason"], override["overridden_by"]) == (
        "low_icp",
        "Slow tap; headache relief needed",
        "entry",
    )
    stored = SafetyOverride.objects.get()
    assert stored.history.get().history_user == user
    first = PlannedInjection.objects.get(course=course, sequence=1)
    assert first.status == InjectionStatus.GIVEN and first.lumbar_puncture_id == saved.json()["id"]


def test_an_absolute_cap_cannot_be_overridden_through_the_api(seeds, npsle_patient, api):
    client, _ = api
    payload = lp_payload(START, 150, overrides={"absolute_cap": "I insist"})
    payload["doses"][1]["dose_mg"] = "120"
    refused = client.post(f"/api/patients/{npsle_patient.pk}/lumbar-punctures/", payload, format="json")
    assert refused.status_code == 400
    assert "dose_mg" in refused.json()["doses"][1]
    assert not LumbarPuncture.objects.exists()


def test_dose_endpoints_check_and_keep_the_plan(seeds, npsle_patient, api):
    client, user = api
    start(npsle_patient, seeds["npsle-pumch"], user)
    created = client.post(
        f"/api/patients/{npsle_patient.pk}/lumbar-punctures/", lp_payload(START, 150), format="json"
    ).json()
    doses_url = f"/api/patients/{npsle_patient.pk}/lumbar-punctures/{created['id']}/doses/"
    mtx = IntrathecalDose.objects.get(lumbar_puncture_id=created["id"], drug="methotrexate")

    # 10× the proposed 10 mg: a unit slip, refused until overridden; the stored dose is unchanged.
    etag = client.get(f"{doses_url}{mtx.pk}/")["ETag"]
    slip = client.patch(f"{doses_url}{mtx.pk}/", {"dose_mg": "100"}, format="json", HTTP_IF_MATCH=etag)
    assert slip.status_code == 400 and "unit_slip" in {f["code"] for f in slip.json()["safety_findings"]}
    mtx.refresh_from_db()
    assert mtx.dose_mg == 10

    # Removing methotrexate leaves dexamethasone alone: the injection is now changed from the plan,
    # which needs its reason (the protocol allows DEX alone, but the plan proposed both).
    etag = client.get(f"{doses_url}{mtx.pk}/")["ETag"]
    removed = client.delete(f"{doses_url}{mtx.pk}/", HTTP_IF_MATCH=etag)
    assert removed.status_code == 400
    assert removed.json()["deviation_reason"] == [
        "This injection differs from the plan (Methotrexate 10 mg left out (optional)); give the reason."
    ]
    assert IntrathecalDose.objects.filter(pk=mtx.pk).exists()
    injection = PlannedInjection.objects.get(lumbar_puncture_id=created["id"])
    assert injection.status == InjectionStatus.GIVEN

    # A PATCH of the LP itself (its doses unchanged) is checked again with those doses.
    lp_url = f"/api/patients/{npsle_patient.pk}/lumbar-punctures/{created['id']}/"
    etag = client.get(lp_url)["ETag"]
    moved = client.patch(lp_url, {"opening_pressure_mmh2o": 70}, format="json", HTTP_IF_MATCH=etag)
    assert moved.status_code == 400 and [f["code"] for f in moved.json()["safety_findings"]] == ["low_icp"]
    assert LumbarPuncture.objects.get(pk=created["id"]).opening_pressure_mmh2o == 150


def test_the_schema_documents_the_refusal_of_an_injection():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    lp_create = paths["/api/patients/{patient_pk}/lumbar-punctures/"]["post"]["responses"]["400"]
    dose_patch = paths["/api/patients/{patient_pk}/lumbar-punctures/{lp_pk}/doses/{id}/"]["patch"][
        "responses"
    ]["400"]
    for answer in (lp_create, dose_patch):
        assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/InjectionRefusal")
    finding = schema["components"]["schemas"]["SafetyFinding"]
    assert set(finding["properties"]) == {"code", "severity", "message", "field", "overridable"}
