"""The REST API: scoping, writes through the services, read-only fields, ETag/If-Match, nesting."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.models import Role
from registry.models import IntrathecalDose, LumbarPuncture, Sledai2kAssessment, SystemicTherapy
from review import services as review
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    own, other = f.SiteFactory(code="own"), f.SiteFactory(code="other")
    study = f.StudyFactory(code="api", sites=[own, other])
    nurse = f.UserFactory(password="a-long-password-1")
    f.MembershipFactory(user=nurse, site=own, role=Role.DATA_ENTRY)
    client = APIClient()
    client.force_authenticate(nurse)
    mine = f.PatientFactory(study=study, site=own, study_code="OWN-1")
    theirs = f.PatientFactory(study=study, site=other, study_code="OTHER-1")
    return {"client": client, "nurse": nurse, "mine": mine, "theirs": theirs, "own": own, "study": study}


def read(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.data
    return response


def test_token_and_session_authentication(world):
    client = APIClient()
    assert client.get("/api/patients/").status_code in (401, 403)
    response = client.post(
        reverse("api:token"), {"username": world["nurse"].username, "password": "a-long-password-1"}
    )
    token = response.data["token"]
    assert AuthToken.objects.get(user=world["nurse"]).token_key == token[:15]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/patients/").status_code == 200


def test_lists_and_details_are_scoped_to_my_sites(world):
    client = world["client"]
    codes = [p["study_code"] for p in read(client, "/api/patients/").data["results"]]
    assert codes == ["OWN-1"]
    assert client.get(f"/api/patients/{world['theirs'].pk}/").status_code == 404
    therapy = f.SystemicTherapyFactory(patient=world["theirs"])
    assert client.get(f"/api/patients/{world['theirs'].pk}/systemic-therapies/").status_code == 404
    assert client.get(f"/api/patients/{world['mine'].pk}/systemic-therapies/{therapy.pk}/").status_code == 404


def test_researchers_see_no_case_records(world):
    researcher = f.UserFactory()
    f.MembershipFactory(user=researcher, site=world["own"], role=Role.RESEARCHER)
    client = APIClient()
    client.force_authenticate(researcher)
    assert read(client, "/api/patients/").data["count"] == 0
    assert client.get(f"/api/patients/{world['mine'].pk}/").status_code == 404


def test_a_write_is_validated_and_audited_like_a_page(world):
    client, patient = world["client"], world["mine"]
    url = f"/api/patients/{patient.pk}/systemic-therapies/"
    response = client.post(
        url,
        {"category": "mpp", "agent": "methylprednisolone", "start_date": "2021-03-01"},
        format="json",
        HTTP_X_CHANGE_REASON="from the discharge letter",
    )
    assert response.status_code == 201, response.data
    therapy = SystemicTherapy.objects.get()
    record = therapy.history.get()
    assert (record.history_user, record.history_change_reason) == (
        world["nurse"],
        "from the discharge letter",
    )
    response = client.post(
        url, {"category": "mpp", "start_date": "2021-03-01", "end_date": "2021-02-01"}, format="json"
    )
    assert response.status_code == 400 and "cannot end before it starts" in str(response.data["end_date"])


def test_read_only_and_unknown_fields_are_refused_not_dropped(world):
    client, patient = world["client"], world["mine"]
    etag = read(client, f"/api/patients/{patient.pk}/")["ETag"]
    for body in ({"site": world["own"].pk}, {"version": 9}, {"death_date": "2022-01-01"}, {"colour": "blue"}):
        response = client.patch(f"/api/patients/{patient.pk}/", body, format="json", HTTP_IF_MATCH=etag)
        assert response.status_code == 400, body
        assert list(response.data) == list(body)
    response = client.post(
        f"/api/patients/{patient.pk}/sledai-assessments/",
        {"assessed_on": "2021-03-01", "seizure": True, "total": 99},
        format="json",
    )
    assert response.status_code == 400 and "total" in response.data
    client.post(
        f"/api/patients/{patient.pk}/sledai-assessments/",
        {"assessed_on": "2021-03-01", "seizure": True},
        format="json",
    )
    assert Sledai2kAssessment.objects.get().total == 8


def test_updates_need_the_current_etag(world):
    client, patient = world["client"], world["mine"]
    url = f"/api/patients/{patient.pk}/"
    assert client.patch(url, {"sex": "M"}, format="json").status_code == 428
    etag = read(client, url)["ETag"]
    assert client.patch(url, {"sex": "M"}, format="json", HTTP_IF_MATCH='"999"').status_code == 412
    response = client.patch(url, {"sex": "M"}, format="json", HTTP_IF_MATCH=etag)
    assert response.status_code == 200 and response["ETag"] != etag
    assert client.patch(url, {"sex": "F"}, format="json", HTTP_IF_MATCH=etag).status_code == 412
    assert client.delete(url, HTTP_IF_MATCH=etag).status_code == 412


def test_null_missing_data_codes_are_a_field_error_not_a_server_error(world):
    """``null`` missing-data codes reached the NOT NULL column as None (a 500, found by schemathesis
    once it addressed real records, then through a form-encoded body)."""
    client, patient = world["client"], world["mine"]
    url = f"/api/patients/{patient.pk}/"
    etag = read(client, url)["ETag"]
    response = client.patch(url, {"missing_codes": None}, format="json", HTTP_IF_MATCH=etag)
    assert response.status_code == 400, response.content
    assert "missing_codes" in response.data
    patient.refresh_from_db()
    assert patient.missing_codes == {} and read(client, url)["ETag"] == etag


def test_record_bodies_are_json_only_and_a_form_is_refused_with_what_to_send(world):
    client, patient = world["client"], world["mine"]
    url = f"/api/patients/{patient.pk}/"
    etag = read(client, url)["ETag"]
    other_sex = "F" if patient.sex == "M" else "M"
    for fmt in ("multipart", None):  # None: application/x-www-form-urlencoded, as curl -d sends
        body = {"sex": other_sex} if fmt else f"sex={other_sex}"
        kwargs = {"format": fmt} if fmt else {"content_type": "application/x-www-form-urlencoded"}
        response = client.patch(url, body, HTTP_IF_MATCH=etag, **kwargs)
        assert response.status_code == 415, response.content
        given = "multipart/form-data" if fmt else "application/x-www-form-urlencoded"
        assert response.data["detail"] == f'Send the body as application/json, not "{given}".'
    response = client.generic("PATCH", url, f"sex={other_sex}".encode(), content_type="", HTTP_IF_MATCH=etag)
    assert response.status_code == 415, response.content
    assert response.data["detail"] == "Send the body as application/json, naming it in Content-Type."
    patient.refresh_from_db()
    assert patient.sex != other_sex and read(client, url)["ETag"] == etag
    schema = client.get("/api/schema/?format=json").json()
    bodies = {
        path: set(operation["requestBody"]["content"])
        for path, operations in schema["paths"].items()
        for operation in operations.values()
        if isinstance(operation, dict) and "requestBody" in operation
    }
    token_body = bodies.pop("/api/auth/token/")
    assert token_body == {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}
    assert len(bodies) > 30 and set().union(*bodies.values()) == {"application/json"}


def test_the_token_endpoint_also_takes_a_form(world):
    """``curl -d username=… -d password=…`` (README) posts a form."""
    credentials = {"username": world["nurse"].username, "password": "a-long-password-1"}
    for kwargs in ({"format": "multipart"}, {"format": "json"}):
        assert APIClient().post(reverse("api:token"), credentials, **kwargs).status_code == 200
    encoded = f"username={world['nurse'].username}&password=a-long-password-1"
    response = APIClient().post(
        reverse("api:token"), encoded, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200 and response.data["token"]


def test_enrolment_only_at_my_sites(world):
    client = world["client"]
    body = {
        "study": world["study"].pk,
        "site": world["theirs"].site_id,
        "study_code": "N-2",
        "sex": "F",
        "birth_year": 1991,
        "index_admission_date": "2021-05-01",
    }
    response = client.post("/api/patients/", body, format="json")
    assert response.status_code == 400 and "site" in response.data
    response = client.post("/api/patients/", body | {"site": world["own"].pk}, format="json")
    assert response.status_code == 201


def test_an_lp_with_csf_and_doses_in_one_request(world):
    client, patient = world["client"], world["mine"]
    url = f"/api/patients/{patient.pk}/lumbar-punctures/"
    body = {
        "performed_at": "2021-03-02T09:00:00Z",
        "route": "lumbar",
        "opening_pressure_mmh2o": 210,
        "csf": {"protein_g_per_l": "0.62"},
        "doses": [{"drug": "methotrexate", "dose_mg": "120"}, {"drug": "dexamethasone", "dose_mg": "10"}],
    }
    response = client.post(url, body, format="json")
    assert response.status_code == 400
    assert "Did you mean 12 mg?" in str(response.data["doses"][0]["dose_mg"])
    assert not LumbarPuncture.objects.exists()
    body["doses"][0]["dose_mg"] = "10"
    response = client.post(url, body, format="json")
    assert response.status_code == 201, response.data
    lp = LumbarPuncture.objects.get()
    assert lp.csf.protein_g_per_l == Decimal("0.620")
    doses = read(client, f"{url}{lp.pk}/doses/").data["results"]
    assert sorted(d["drug"] for d in doses) == ["dexamethasone", "methotrexate"]
    assert IntrathecalDose.history.filter(history_type="+").count() == 2


def test_a_nested_record_must_belong_to_the_patient_in_the_url(world):
    other_lp = f.LumbarPunctureFactory(patient=f.PatientFactory(study=world["study"], site=world["own"]))
    response = world["client"].get(f"/api/patients/{world['mine'].pk}/lumbar-punctures/{other_lp.pk}/doses/")
    assert response.status_code == 404


def test_submitted_sections_need_a_reason_and_locked_ones_refuse(world):
    client, patient = world["client"], world["mine"]
    therapy = f.SystemicTherapyFactory(patient=patient)
    review.section_submit(patient=patient, section="therapy", actor=world["nurse"])
    url = f"/api/patients/{patient.pk}/systemic-therapies/{therapy.pk}/"
    etag = read(client, url)["ETag"]
    response = client.patch(url, {"agent": "MP"}, format="json", HTTP_IF_MATCH=etag)
    assert response.status_code == 400 and "change_reason" in response.data
    response = client.patch(
        url, {"agent": "MP", "change_reason": "abbreviation"}, format="json", HTTP_IF_MATCH=etag
    )
    assert response.status_code == 200
    reviewer = f.UserFactory(password="pw-for-signing-1")
    f.MembershipFactory(user=reviewer, site=world["own"], role=Role.REVIEWER)
    review.section_verify(patient=patient, section="therapy", actor=reviewer)
    review.sections_lock(patient=patient, sections=["therapy"], actor=reviewer, password="pw-for-signing-1")
    etag = read(client, url)["ETag"]
    response = client.patch(url, {"agent": "x", "change_reason": "y"}, format="json", HTTP_IF_MATCH=etag)
    assert response.status_code == 409 and response.data["code"] == "locked"


def test_death_is_recorded_with_its_event(world):
    client, patient = world["client"], world["mine"]
    response = client.post(
        f"/api/patients/{patient.pk}/death/",
        {"death_date": "2022-04-01", "death_cause": "infection", "change_reason": "certificate"},
        format="json",
    )
    assert response.status_code == 200 and response.data["death_date"] == "2022-04-01"
    assert patient.follow_up_events.get().event_date == dt.date(2022, 4, 1)


def test_identifiers_only_for_roles_that_see_them(world):
    f.PatientIdentifierFactory(patient=world["mine"], full_name="Zhao Lei")
    assert read(world["client"], f"/api/patients/{world['mine'].pk}/identifiers/").data["count"] == 1
    admin = f.UserFactory()
    f.MembershipFactory(user=admin, site=world["own"], role=Role.SITE_ADMIN)
    client = APIClient()
    client.force_authenticate(admin)
    assert client.get(f"/api/patients/{world['mine'].pk}/identifiers/").status_code == 404


def test_filtering_ordering_and_pagination(world):
    for code in ("OWN-3", "OWN-2"):
        f.PatientFactory(study=world["study"], site=world["own"], study_code=code)
    client = world["client"]
    data = read(client, "/api/patients/?ordering=-study_code&page_size=2").data
    assert [p["study_code"] for p in data["results"]] == ["OWN-3", "OWN-2"] and data["count"] == 3
    assert read(client, "/api/patients/?study_code=OWN-2").data["count"] == 1
    assert client.get("/api/patients/99999999999999999999999/").status_code == 404


def test_schema_and_docs_are_served_locally(client):
    assert client.get("/api/schema/").status_code == 200
    user = f.UserFactory()
    client.force_login(user)
    html = client.get("/api/docs/").content.decode()
    assert "swagger" in html.lower() and "https://" not in html


def test_an_updates_body_in_the_schema_leaves_out_what_only_a_creation_sets(client, world):
    """A patient's study and site, and an LP's CSF, doses and pathogen tests, are refused on update
    (read-only once the record exists); the schema's update bodies say so, the creation bodies keep them."""
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    def body(path: str, method: str) -> set[str]:
        ref = schema["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        return set(schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"])

    patient, lp = "/api/patients/{id}/", "/api/patients/{patient_pk}/lumbar-punctures/{id}/"
    assert {"study", "site"} <= body("/api/patients/", "post")
    assert {"csf", "doses", "pathogen_tests"} <= body("/api/patients/{patient_pk}/lumbar-punctures/", "post")
    for method in ("put", "patch"):
        assert not {"study", "site"} & body(patient, method)
        assert not {"csf", "doses", "pathogen_tests"} & body(lp, method)
        assert {"sex", "study_code"} <= body(patient, method) and "performed_at" in body(lp, method)
    # And the server still refuses them on update, by name.
    url = f"/api/patients/{world['mine'].pk}/"
    etag = read(world["client"], url)["ETag"]
    response = world["client"].patch(url, {"study": world["study"].pk}, format="json", HTTP_IF_MATCH=etag)
    assert response.status_code == 400 and "study" in response.data


def test_a_nested_write_reads_each_parent_once(world):
    """The route's parents (a pathogen test's CSF result and LP) are read and checked once; the object
    permission's walk to the site uses them instead of reading them again."""
    client, patient = world["client"], world["mine"]
    csf = f.CsfResultFactory(lumbar_puncture=f.LumbarPunctureFactory(patient=patient))
    test = f.PathogenTestFactory(csf_result=csf)
    url = f"/api/patients/{patient.pk}/lumbar-punctures/{csf.lumbar_puncture_id}/csf/{csf.pk}/pathogen-tests/{test.pk}/"
    with CaptureQueriesContext(connection) as queries:
        response = client.patch(url, {"result": "positive"}, format="json", HTTP_IF_MATCH=f'"{test.version}"')
    assert response.status_code == 200, response.data
    rows = [q["sql"] for q in queries.captured_queries]
    for table in ("registry_csfresult", "registry_lumbarpuncture"):
        assert sum(sql.startswith(f'SELECT "{table}"."id"') for sql in rows) == 1, table
