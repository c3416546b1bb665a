"""Data-quality rules fire when they are relevant, close themselves at once, and flag the implausible.

- Completeness ("… is missing") waits until the section is submitted: nothing on enrolment.
- A rule query closes in the same request as the save that resolves it, with a system event.
- Plausibility rules raise a query (never refuse the entry): an LP before the index admission beyond a
  configurable window, a CAR-T dose outside the product's labelled range, toxicity before infusion,
  responses and relapses before the index admission.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from audit.models import ActionEvent
from registry.action_events import ActionKind
from registry.choices import DiseaseArea, FollowUpEventType
from registry.services import record_save
from review import services
from review.models import DataQuery, QueryOrigin, QueryStatus
from review.rules import car_t_dose_range, check_patient, findings
from tests import factories as f
from tests.casebook.test_pages import lp_post, rendered_versions

pytestmark = pytest.mark.django_db

INDEX = dt.date(2021, 3, 1)


def open_rule_codes(patient) -> set[str]:
    return set(
        DataQuery.objects.filter(patient=patient, origin=QueryOrigin.RULE)
        .exclude(status=QueryStatus.CLOSED)
        .values_list("rule_code", flat=True)
    )


@pytest.fixture
def nurse_at():
    def make(patient):
        nurse = f.UserFactory()
        f.MembershipFactory(user=nurse, site=patient.site, role=Role.DATA_ENTRY)
        return nurse

    return make


def test_no_missing_value_query_the_second_a_patient_is_enrolled(nurse_at):
    patient = f.PatientFactory(area=DiseaseArea.NPSLE, index_admission_date=INDEX)
    assert "missing_sledai" in {x.rule_code for x in findings(patient)}
    check_patient(patient)
    assert not open_rule_codes(patient), "data entry is still typing: nothing is raised yet"
    services.section_submit(patient=patient, section="diagnosis", actor=nurse_at(patient))
    check_patient(patient)
    assert open_rule_codes(patient) == {"missing_sledai"}, "raised once the section is handed over"


def test_the_lm_ecog_flood_is_one_query_per_patient_on_submission(nurse_at):
    study = f.StudyFactory(code="lm", disease_area=DiseaseArea.LM)
    patients = [f.PatientFactory(study=study, index_admission_date=INDEX) for _ in range(3)]
    for patient in patients:
        f.LmDiagnosisFactory(patient=patient, ecog=None)
        check_patient(patient)
    assert not DataQuery.objects.filter(rule_code="missing_ecog").exists()
    services.section_submit(patient=patients[0], section="diagnosis", actor=nurse_at(patients[0]))
    for patient in patients:
        check_patient(patient)
        check_patient(patient)
    assert list(DataQuery.objects.filter(rule_code="missing_ecog").values_list("patient", flat=True)) == [
        patients[0].pk
    ]


def test_a_rule_query_closes_in_the_response_to_the_save_that_fixes_it(client):
    site = f.SiteFactory()
    study = f.StudyFactory(sites=[site], disease_area=DiseaseArea.NPSLE)
    nurse = f.UserFactory()
    f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
    patient = f.PatientFactory(study=study, site=site, index_admission_date=INDEX)
    lp = f.LumbarPunctureFactory(
        patient=patient,
        performed_at=timezone.make_aware(dt.datetime(2021, 3, 2, 9)),
        opening_pressure_mmh2o=450,
    )
    check_patient(patient)
    query = DataQuery.objects.get(rule_code="outlier_opening_pressure_mmh2o")
    client.force_login(nurse)
    url = reverse("casebook:lp_edit", args=[patient.pk, lp.pk])
    data = lp_post(opening_pressure_mmh2o="250", **{"doses-TOTAL_FORMS": "0"}) | rendered_versions(
        client, url
    )
    response = client.post(url, data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Lumbar puncture saved" in response.content.decode()
    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED, "closed before the page answering the save was drawn"
    assert "unusually high" not in response.content.decode(), "the answered page no longer shows it"
    closed = ActionEvent.objects.get(kind=ActionKind.QUERY_CLOSED, object_id=str(query.pk))
    assert closed.actor is None and "no longer finds" in closed.reason


def test_an_lp_before_the_index_admission_beyond_the_window_raises_a_query(settings):
    settings.QUALITY_DAYS_BEFORE_ADMISSION = 3
    patient = f.PatientFactory(index_admission_date=INDEX)
    near = f.LumbarPunctureFactory(
        patient=patient, performed_at=timezone.make_aware(dt.datetime(2021, 2, 26, 10))
    )  # 3 days before: within the window
    far = f.LumbarPunctureFactory(
        patient=patient, performed_at=timezone.make_aware(dt.datetime(2021, 2, 19, 10))
    )
    found = {(x.rule_code, x.record.pk): x.message for x in findings(patient)}
    assert ("date_lp_before_admission", near.pk) not in found
    assert "10 days before the index admission (2021-02-19" not in found[("date_lp_before_admission", far.pk)]
    assert (
        "10 days before the index admission (2021-03-01; up to 3 allowed)"
        in found[("date_lp_before_admission", far.pk)]
    )
    settings.QUALITY_DAYS_BEFORE_ADMISSION = 14
    assert "date_lp_before_admission" not in {x.rule_code for x in findings(patient)}, (
        "the window is a setting"
    )


def test_responses_and_relapses_before_the_index_admission_raise_queries():
    patient = f.PatientFactory(index_admission_date=INDEX)
    f.ResponseAssessmentFactory(patient=patient, assessed_on=INDEX - dt.timedelta(days=20))
    f.FollowUpEventFactory(
        patient=patient, event_type=FollowUpEventType.NPSLE_RELAPSE, event_date=INDEX - dt.timedelta(days=40)
    )
    codes = {x.rule_code for x in findings(patient)}
    assert {"date_response_before_admission", "date_event_before_admission"} <= codes


@pytest.mark.parametrize(
    ("product", "dose", "flagged"),
    [
        ("Kymriah (tisagenlecleucel)", "3.1", False),
        ("tisagenlecleucel", "6", True),
        ("axicabtagene ciloleucel", "2.0", False),
        ("axicabtagene ciloleucel", "200", True),
        ("CD19 CAR-T (investigational)", "1.5", False),
        ("CD19 CAR-T (investigational)", "200", True),
        ("CD19 CAR-T (investigational)", "0.05", True),
    ],
)
def test_a_car_t_dose_outside_the_labelled_range_raises_a_query_not_an_error(product, dose, flagged):
    patient = f.PatientFactory(area=DiseaseArea.ICANS, index_admission_date=INDEX)
    infusion = f.CarTInfusionFactory(patient=patient, product=product, dose_1e6_cells_per_kg=Decimal(dose))
    infusion.full_clean()  # accepted on entry: plausibility is a query, not a refusal
    messages = [x.message for x in findings(patient) if x.rule_code == "plausibility_car_t_dose"]
    assert bool(messages) == flagged
    if flagged:
        low, high, source = car_t_dose_range(product)
        assert f"outside {source}" in messages[0] and "×10⁶ cells/kg" in messages[0]


def test_crs_assessed_before_the_infusion_raises_a_query():
    patient = f.PatientFactory(area=DiseaseArea.ICANS, index_admission_date=INDEX)
    infusion = f.CarTInfusionFactory(patient=patient, infusion_date=INDEX + dt.timedelta(days=2))
    crs = f.CrsAssessmentFactory(
        patient=patient, assessed_at=timezone.make_aware(dt.datetime.combine(INDEX, dt.time(9)))
    )
    found = {(x.rule_code, x.record.pk) for x in findings(patient)}
    assert ("date_crs_before_infusion", crs.pk) in found
    crs.assessed_at = timezone.make_aware(dt.datetime.combine(infusion.infusion_date, dt.time(18)))
    record_save(crs, actor=f.UserFactory(), reason="time corrected")
    assert ("date_crs_before_infusion", crs.pk) not in {(x.rule_code, x.record.pk) for x in findings(patient)}
