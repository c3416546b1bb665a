"""Queries raised by reviewers and by data-quality rules, and the open-query list."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts.models import Role
from registry.choices import DiseaseArea, FollowUpEventType
from registry.services import record_save
from review.models import DataQuery, QueryOrigin, QueryStatus, ReviewStatus, SectionReview
from review.rules import check_patient, findings
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_rules_find_missing_values_outliers_and_date_breaks():
    patient = f.PatientFactory(area=DiseaseArea.NPSLE, index_admission_date=dt.date(2021, 3, 1))
    lp = f.LumbarPunctureFactory(patient=patient, opening_pressure_mmh2o=None, closing_pressure_mmh2o=None)
    f.CsfResultFactory(lumbar_puncture=lp, protein_g_per_l=Decimal("4.2"))
    f.DischargeOutcomeFactory(patient=patient, discharge_date=dt.date(2021, 3, 20))
    f.FollowUpEventFactory(
        patient=patient, event_type=FollowUpEventType.NPSLE_RELAPSE, event_date=dt.date(2021, 3, 10)
    )
    found = {(x.rule_code, x.field_name) for x in findings(patient)}
    assert ("missing_opening_pressure", "opening_pressure_mmh2o") in found
    assert ("outlier_protein_g_per_l", "protein_g_per_l") in found
    assert ("date_event_before_discharge", "event_date") in found
    assert ("missing_sledai", "") in found


def test_rule_queries_open_once_and_close_when_fixed():
    patient = f.PatientFactory()
    lp = f.LumbarPunctureFactory(patient=patient, opening_pressure_mmh2o=None, closing_pressure_mmh2o=None)
    assert check_patient(patient) == (0, 0), "a missing value waits until its section is submitted"
    SectionReview.objects.create(patient=patient, section="procedures", status=ReviewStatus.SUBMITTED)
    opened, _ = check_patient(patient)
    assert opened >= 1
    assert check_patient(patient) == (0, 0), "a second run raises nothing new"
    query = DataQuery.objects.get(object_id=lp.pk, field_name="opening_pressure_mmh2o")
    assert query.origin == QueryOrigin.RULE
    lp.opening_pressure_mmh2o = 190
    record_save(lp, actor=f.UserFactory(), reason="from the LP note")
    check_patient(patient)
    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED
    assert "no longer finds" in query.messages.last().text


def test_rules_run_after_a_committed_change(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        patient = f.PatientFactory()
        lp = f.LumbarPunctureFactory(patient=patient)
        lp.opening_pressure_mmh2o = 450
        record_save(lp, actor=f.UserFactory(), reason="re-measured")
    # Other apps schedule their own commit work (the reports' invalidation); the quality checks are one.
    checks = [c for c in callbacks if hasattr(c, "quality_patients")]
    assert len(checks) == 1, "one check per transaction, however many writes"
    assert DataQuery.objects.filter(
        object_id=lp.pk, field_name="opening_pressure_mmh2o", rule_code__startswith="outlier"
    ).exists()


def test_open_query_list_per_study_and_site_with_ages(client):
    site = f.SiteFactory(name="North")
    study = f.StudyFactory(code="npsle", sites=[site])
    reviewer = f.UserFactory()
    f.MembershipFactory(user=reviewer, site=site, role=Role.REVIEWER)
    patient = f.PatientFactory(study=study, site=site)
    DataQuery.objects.create(patient=patient, section="procedures", message="Pressure unit?")
    DataQuery.objects.create(
        patient=f.PatientFactory(study=study, site=f.SiteFactory()), section="safety", message="other site"
    )
    client.force_login(reviewer)
    response = client.get(reverse("review:query_list"))
    assert [
        (r["patient__study__code"], r["patient__site__name"], r["open"]) for r in response.context["overview"]
    ] == [("npsle", "North", 1)]
    assert [q.message for q, age in response.context["rows"]] == ["Pressure unit?"]
    assert response.context["rows"][0][1] == 0


def test_query_thread_through_the_pages(client):
    site = f.SiteFactory()
    nurse, reviewer = f.UserFactory(), f.UserFactory()
    f.MembershipFactory(user=nurse, site=site, role=Role.DATA_ENTRY)
    f.MembershipFactory(user=reviewer, site=site, role=Role.REVIEWER)
    therapy = f.SystemicTherapyFactory(
        patient=f.PatientFactory(study=f.StudyFactory(sites=[site]), site=site)
    )
    client.force_login(reviewer)
    client.post(
        reverse("review:query_raise", args=[therapy.patient_id, "therapy"]),
        {
            "model": "systemictherapy",
            "object": therapy.pk,
            "field_name": "dose_description",
            "message": "Per day or per course?",
        },
    )
    query = DataQuery.objects.get()
    assert (query.field_name, query.record) == ("dose_description", therapy)
    client.force_login(nurse)
    client.post(reverse("review:query_reply", args=[query.pk, "answer"]), {"text": "Per day for 3 days."})
    client.force_login(reviewer)
    client.post(reverse("review:query_reply", args=[query.pk, "close"]), {"text": "Thanks."})
    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED and query.messages.count() == 3


def test_a_query_names_only_a_case_record_not_its_history_row(client):
    """A history table is a registry model too, but no record to ask about: "not found", no query."""
    site = f.SiteFactory()
    reviewer = f.UserFactory()
    f.MembershipFactory(user=reviewer, site=site, role=Role.REVIEWER)
    therapy = f.SystemicTherapyFactory(
        patient=f.PatientFactory(study=f.StudyFactory(sites=[site]), site=site)
    )
    client.force_login(reviewer)
    response = client.get(
        reverse("review:query_raise", args=[therapy.patient_id, "therapy"]),
        {"model": "historicalsystemictherapy", "object": therapy.history.get().pk},
    )
    assert response.status_code == 404
    assert not DataQuery.objects.exists()


def test_rule_codes_fit_their_column():
    patient = f.PatientFactory(area=DiseaseArea.LM)
    f.LmDiagnosisFactory(patient=patient, ecog=None)
    codes = {x.rule_code for x in findings(patient)}
    max_length = DataQuery._meta.get_field("rule_code").max_length
    assert codes and all(len(code) <= max_length for code in codes)
