"""Case-record pages without a browser: flows without JavaScript, htmx fragments, search, identifiers."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import Role
from registry.choices import DiseaseArea, FollowUpEventType, NpsleSyndrome
from registry.models import (
    FollowUpEvent,
    IntrathecalDose,
    LumbarPuncture,
    NpsleManifestation,
    SystemicTherapy,
)
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    return f.SiteFactory(code="north")


@pytest.fixture
def study(site):
    return f.StudyFactory(code="npsle", disease_area=DiseaseArea.NPSLE, sites=[site])


def signed_in(client, site, role):
    user = f.UserFactory()
    f.MembershipFactory(user=user, site=site, role=role)
    client.force_login(user)
    return user


def rendered_versions(client, url) -> dict[str, str]:
    """The hidden version fields of a form page, as the browser would send them back."""
    html = client.get(url).content.decode()
    return dict(re.findall(r'<input type="hidden" name="([\w-]*version)" value="([^"]*)"', html))


def lp_post(**overrides):
    data = {
        "performed_at": "2021-03-02T09:00",
        "route": "lumbar",
        "opening_pressure_mmh2o": "210",
        "csf-cytology": "not_done",
        "csf-protein_g_per_l": "0.61",
        "doses-TOTAL_FORMS": "2",
        "doses-INITIAL_FORMS": "0",
        "doses-0-drug": "methotrexate",
        "doses-0-dose_mg": "10",
        "doses-0-timing": "with",
        "doses-1-drug": "dexamethasone",
        "doses-1-dose_mg": "10",
        "doses-1-timing": "with",
        "tests-TOTAL_FORMS": "0",
        "tests-INITIAL_FORMS": "0",
    }
    return data | overrides


def test_lp_is_recorded_without_javascript(client, site, study):
    nurse = signed_in(client, site, Role.DATA_ENTRY)
    patient = f.PatientFactory(study=study, site=site)
    response = client.post(reverse("casebook:lp_create", args=[patient.pk]), lp_post())
    assert response.status_code == 302
    assert response.url.endswith(f"/patients/{patient.pk}/#section-procedures")
    lp = LumbarPuncture.objects.get()
    assert lp.csf.protein_g_per_l == Decimal("0.61")
    assert lp.doses.count() == 2
    assert lp.history.get().history_user == nurse
    page = client.get(response.url)
    assert "Lumbar puncture recorded." in page.content.decode()


def test_rejected_lp_keeps_input_and_shows_the_message_by_the_field(client, site, study):
    signed_in(client, site, Role.DATA_ENTRY)
    patient = f.PatientFactory(study=study, site=site)
    response = client.post(
        reverse("casebook:lp_create", args=[patient.pk]),
        lp_post(**{"doses-0-dose_mg": "120"}),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    doses = response.context["doses"]
    assert "Did you mean 12 mg?" in doses.forms[0].errors["dose_mg"][0]
    html = response.content.decode()
    assert 'value="0.61"' in html and 'value="120"' in html
    assert not LumbarPuncture.objects.exists() and not IntrathecalDose.objects.exists()


def test_cross_record_error_lands_on_the_field(client, site, study):
    signed_in(client, site, Role.DATA_ENTRY)
    patient = f.PatientFactory(study=study, site=site)
    response = client.post(
        reverse("casebook:lp_create", args=[patient.pk]), lp_post(performed_at="1985-01-01T09:00")
    )
    assert "before the patient's birth" in response.context["form"].errors["performed_at"][0]


def test_editing_an_lp_updates_doses_and_removes_deleted_ones(client, site, study):
    signed_in(client, site, Role.DATA_ENTRY)
    patient = f.PatientFactory(study=study, site=site)
    lp = f.LumbarPunctureFactory(patient=patient)
    mtx = f.IntrathecalDoseFactory(lumbar_puncture=lp)
    dex = f.IntrathecalDoseFactory(lumbar_puncture=lp, drug="dexamethasone")
    data = lp_post(
        **{
            "performed_at": lp.performed_at.strftime("%Y-%m-%dT%H:%M"),
            "doses-TOTAL_FORMS": "2",
            "doses-INITIAL_FORMS": "2",
            "doses-0-id": str(mtx.pk),
            "doses-0-dose_mg": "12",
            "doses-1-id": str(dex.pk),
            "doses-1-DELETE": "on",
            "change_reason": "corrected from the ward sheet",
        }
    )
    url = reverse("casebook:lp_edit", args=[patient.pk, lp.pk])
    response = client.post(url, data | rendered_versions(client, url))
    assert response.status_code == 302
    assert list(lp.doses.values_list("drug", "dose_mg")) == [("methotrexate", Decimal("12.00"))]
    assert (
        IntrathecalDose.history.filter(history_type="-").get().history_change_reason
        == "corrected from the ward sheet"
    )


def test_htmx_save_returns_the_refreshed_section(client, site, study):
    signed_in(client, site, Role.DATA_ENTRY)
    patient = f.PatientFactory(study=study, site=site)
    response = client.post(
        reverse("casebook:record_create", args=[patient.pk, "therapy"]),
        {"category": "mpp", "agent": "methylprednisolone", "start_date": "2021-03-01"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200 and "Systemic therapy added." in html and "methylprednisolone" in html
    assert "<html" not in html, "an htmx response is the section only"
    assert SystemicTherapy.objects.get().history.get().history_change_reason == "Systemic therapy added"


def test_npsle_diagnosis_with_syndromes(client, site, study):
    signed_in(client, site, Role.DATA_ENTRY)
    patient = f.PatientFactory(study=study, site=site)
    data = {
        "syndromes-TOTAL_FORMS": str(len(NpsleSyndrome)),
        "syndromes-INITIAL_FORMS": "0",
        "anti_dsdna": "positive",
        "anti_rrnp": "not_done",
        "coombs": "not_done",
        "anti_b2gp1": "not_done",
        "anticardiolipin": "not_done",
    }
    for index, syndrome in enumerate(NpsleSyndrome):
        data[f"syndromes-{index}-syndrome"] = syndrome.value
    page = client.get(reverse("casebook:diagnosis_edit", args=[patient.pk]))
    assert len(page.context["syndromes"].forms) == 19
    data["syndromes-3-present"] = "on"  # headache
    data["syndromes-11-present"] = "on"  # psychosis
    data["syndromes-11-onset_date"] = "2021-02-20"
    response = client.post(reverse("casebook:diagnosis_edit", args=[patient.pk]), data)
    assert response.status_code == 302, response.context and response.context["form"].errors
    assert set(NpsleManifestation.objects.values_list("syndrome", flat=True)) == {"headache", "psychosis"}
    data.pop("syndromes-3-present")
    url = reverse("casebook:diagnosis_edit", args=[patient.pk])
    client.post(url, data | rendered_versions(client, url))
    assert list(NpsleManifestation.objects.values_list("syndrome", flat=True)) == ["psychosis"]


def test_death_is_recorded_and_can_be_corrected(client, site, study):
    signed_in(client, site, Role.DATA_ENTRY)
    patient = f.PatientFactory(study=study, site=site)
    url = reverse("casebook:death_record", args=[patient.pk])
    client.post(
        url, {"death_date": "2022-05-01", "death_cause": "infection"} | rendered_versions(client, url)
    )
    client.post(
        url,
        {"death_date": "2022-05-03", "death_cause": "infection", "change_reason": "certificate"}
        | rendered_versions(client, url),
    )
    patient.refresh_from_db()
    assert patient.death_date == dt.date(2022, 5, 3)
    assert FollowUpEvent.objects.get(event_type=FollowUpEventType.DEATH).event_date == dt.date(2022, 5, 3)


def test_delete_needs_a_reason_and_is_audited(client, site, study):
    signed_in(client, site, Role.DATA_ENTRY)
    therapy = f.SystemicTherapyFactory(patient=f.PatientFactory(study=study, site=site))
    url = reverse("casebook:record_delete", args=[therapy.patient_id, "therapy", therapy.pk])
    assert "reason" in client.post(url, {}).context["form"].errors
    client.post(url, {"reason": "entered for the wrong patient"})
    assert not SystemicTherapy.objects.exists()
    assert (
        SystemicTherapy.history.filter(history_type="-").get().history_change_reason
        == "entered for the wrong patient"
    )


def test_search_by_study_code_and_by_mrn_only_where_identifiers_are_allowed(client, site, study):
    patient = f.PatientIdentifierFactory(
        patient=f.PatientFactory(study=study, site=site, study_code="NP-7"), medical_record_number="MRN-55"
    ).patient
    f.PatientFactory(study=study, site=site, study_code="NP-8")
    signed_in(client, site, Role.DATA_ENTRY)
    found = client.get(reverse("casebook:patient_list"), {"q": "MRN-55"}).context["patients"]
    assert list(found) == [patient]
    assert [
        p.study_code for p in client.get(reverse("casebook:patient_list"), {"q": "np-"}).context["patients"]
    ] == ["NP-7", "NP-8"]
    client.logout()
    signed_in(client, site, Role.SITE_ADMIN)
    assert list(client.get(reverse("casebook:patient_list"), {"q": "MRN-55"}).context["patients"]) == []


def test_reviewer_reads_but_cannot_edit(client, site, study):
    signed_in(client, site, Role.REVIEWER)
    patient = f.PatientIdentifierFactory(
        patient=f.PatientFactory(study=study, site=site), full_name="Li Hua"
    ).patient
    page = client.get(reverse("casebook:patient_detail", args=[patient.pk])).content.decode()
    assert "Li Hua" in page and "Add lumbar puncture" not in page
    assert client.get(reverse("casebook:lp_create", args=[patient.pk])).status_code == 403


def test_site_admin_edits_but_never_sees_identifiers(client, site, study):
    signed_in(client, site, Role.SITE_ADMIN)
    patient = f.PatientIdentifierFactory(
        patient=f.PatientFactory(study=study, site=site), full_name="Li Hua"
    ).patient
    page = client.get(reverse("casebook:patient_detail", args=[patient.pk])).content.decode()
    assert "Li Hua" not in page and "Add lumbar puncture" in page
    form = client.get(reverse("casebook:identity_edit", args=[patient.pk])).context["id_form"]
    assert form is None


def test_enrolment_offers_only_my_sites(client, site, study):
    other = f.SiteFactory(code="south")
    study.sites.add(other)
    signed_in(client, site, Role.DATA_ENTRY)
    form = client.get(reverse("casebook:patient_create")).context["form"]
    assert list(form.fields["site"].queryset) == [site]
    response = client.post(
        reverse("casebook:patient_create"),
        {
            "study": study.pk,
            "site": other.pk,
            "study_code": "X1",
            "sex": "F",
            "birth_year": "1990",
            "index_admission_date": "2021-01-01",
        },
    )
    assert "site" in response.context["form"].errors


def test_live_score_endpoints(client, site):
    signed_in(client, site, Role.DATA_ENTRY)
    assert client.post(
        reverse("casebook:score", args=["sledai"]), {"seizure": "on", "arthritis": "on"}
    ).json() == {"total": 12}
    grade = client.post(
        reverse("casebook:score", args=["crs"]), {"fever": "on", "hypotension": "3", "hypoxia": "2"}
    ).json()
    assert grade == {"crs_grade": 3}
    assert client.get(reverse("casebook:score", args=["sledai"])).status_code == 405
    assert client.post(reverse("casebook:score", args=["nope"])).status_code == 404


def test_static_assets_are_local(client, site, study):
    signed_in(client, site, Role.DATA_ENTRY)
    patient = f.PatientFactory(study=study, site=site)
    html = client.get(reverse("casebook:patient_detail", args=[patient.pk])).content.decode()
    assert "http://" not in html.replace("http://testserver", "") and "https://" not in html
    assert "/static/vendor/htmx/htmx-2.0.11.min.js" in html


@pytest.mark.axes
def test_sign_in_is_throttled(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    f.UserFactory(username="lin", password="a-long-password-1")
    for _ in range(3):
        client.post(reverse("login"), {"username": "lin", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "lin", "password": "a-long-password-1"})
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()


def test_a_session_expires_after_idle_time_and_is_written_at_most_once_a_minute(client, monkeypatch):
    """Idle expiry (30 minutes) without a session write on every request (accounts/sessions.py)."""
    from django.contrib.sessions.models import Session
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts import sessions

    clock = {"now": 1_000_000}
    monkeypatch.setattr(sessions, "_now", lambda: clock["now"])
    user = f.UserFactory(username="lin", password="a-long-password-1")
    client.post(reverse("login"), {"username": "lin", "password": "a-long-password-1"})
    home = reverse("home")

    def visit_at(seconds: int) -> tuple[int, int]:
        """Visit the home page at login + seconds: (status, session writes)."""
        clock["now"] = 1_000_000 + seconds
        with CaptureQueriesContext(connection) as queries:
            status = client.get(home).status_code
        writes = [
            q
            for q in queries.captured_queries
            if q["sql"].startswith("UPDATE") and "django_session" in q["sql"]
        ]
        return status, len(writes)

    assert visit_at(10) == (200, 0), "a page within the minute writes nothing"
    assert visit_at(59) == (200, 0)
    assert visit_at(60) == (200, 1), "a minute after the last write, the deadline moves"
    assert visit_at(90) == (200, 0)
    session = Session.objects.get()
    assert 29 * 60 <= (session.expire_date - dt.datetime.now(dt.UTC)).total_seconds() <= 30 * 60
    assert session.get_decoded()["_auth_user_id"] == str(user.pk)

    session.expire_date = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)  # 30 idle minutes later
    session.save()
    response = client.get(home)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_a_visitor_who_has_not_signed_in_gets_no_session(client):
    from django.contrib.sessions.models import Session

    client.get(reverse("login"))
    assert not Session.objects.exists()
