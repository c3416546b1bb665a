"""The demo ICANS case series: 13 patients, early IDM after ICANS onset, remission, CSF falling."""

from __future__ import annotations

import statistics

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.services import system_user
from demo.common import ensure_sites_and_studies
from demo.icans import load_icans_cohort
from registry.choices import (
    CarTTarget,
    DeathCause,
    FollowUpEventType,
    HaematologicalMalignancy,
    IntrathecalDrug,
)
from registry.models import (
    CarTInfusion,
    CrsAssessment,
    CsfResult,
    FollowUpEvent,
    IcansAssessment,
    IntrathecalDose,
    LumbarPuncture,
    PathogenTest,
    Patient,
    PatientIdentifier,
    ResponseAssessment,
    SystemicTherapy,
)

WRITTEN_MODELS = (
    Patient,
    PatientIdentifier,
    CarTInfusion,
    CrsAssessment,
    IcansAssessment,
    LumbarPuncture,
    CsfResult,
    PathogenTest,
    IntrathecalDose,
    SystemicTherapy,
    ResponseAssessment,
    FollowUpEvent,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def actor():
    return system_user()


@pytest.fixture
def study(actor):
    study = ensure_sites_and_studies(actor=actor)["icans"]
    load_icans_cohort(study=study, actor=actor)
    return study


def icans_onset(patient: Patient) -> IcansAssessment:
    """ICANS onset: the first assessment with grade ≥1."""
    return patient.icans_assessments.filter(icans_grade__gte=1).order_by("assessed_at").first()


def idm_punctures(patient: Patient) -> list[LumbarPuncture]:
    return list(patient.lumbar_punctures.filter(doses__isnull=False).distinct().order_by("performed_at"))


def test_loads_13_patients_mostly_b_all_and_b_cell_lymphoma(study):
    assert Patient.objects.filter(study=study).count() == 13
    infusions = CarTInfusion.objects.filter(patient__study=study)
    assert infusions.count() == 13
    diseases = list(infusions.values_list("underlying_malignancy", flat=True))
    b_cell = diseases.count(HaematologicalMalignancy.ALL) + diseases.count(
        HaematologicalMalignancy.B_CELL_LYMPHOMA
    )
    assert b_cell >= 8
    assert {HaematologicalMalignancy.MM, HaematologicalMalignancy.AML, HaematologicalMalignancy.BPDCN} <= set(
        diseases
    )
    assert set(infusions.values_list("target", flat=True)) == {
        CarTTarget.CD19,
        CarTTarget.CD19_CD22,
        CarTTarget.BCMA,
        CarTTarget.CD7,
        CarTTarget.CD123,
    }


def test_idm_follows_icans_onset_by_a_median_of_about_12_hours(study):
    hours = []
    for patient in Patient.objects.filter(study=study):
        onset = icans_onset(patient).assessed_at
        first_idm = idm_punctures(patient)[0].performed_at
        hours.append((first_idm - onset).total_seconds() / 3600)
    assert all(h > 0 for h in hours)
    assert statistics.median(hours) == pytest.approx(12, abs=3)


def test_icans_grade_before_idm_is_2_to_4_in_most(study):
    grades = []
    for patient in Patient.objects.filter(study=study):
        onset = icans_onset(patient).assessed_at
        first_idm = idm_punctures(patient)[0].performed_at
        before = patient.icans_assessments.filter(assessed_at__gte=onset, assessed_at__lte=first_idm)
        grades.append(max(before.values_list("icans_grade", flat=True)))
    assert all(1 <= grade <= 4 for grade in grades)
    assert sum(grade >= 2 for grade in grades) >= 10


def test_idm_is_dex_10_mg_with_mtx_10_mg_given_1_to_3_times(study):
    for patient in Patient.objects.filter(study=study):
        injections = idm_punctures(patient)
        assert 1 <= len(injections) <= 3
        for lp in injections:
            assert sorted(lp.doses.values_list("drug", "dose_mg")) == [
                (IntrathecalDrug.DEXAMETHASONE, 10),
                (IntrathecalDrug.METHOTREXATE, 10),
            ]
    counts = [len(idm_punctures(p)) for p in Patient.objects.filter(study=study)]
    assert {1, 2, 3} <= set(counts)


def test_crs_comes_before_icans_in_most(study):
    with_crs_first = 0
    for patient in Patient.objects.filter(study=study):
        onset = icans_onset(patient).assessed_at
        with_crs_first += patient.crs_assessments.filter(crs_grade__gte=1, assessed_at__lt=onset).exists()
    assert with_crs_first >= 10


def test_ice_falls_then_most_recover_to_10_with_a_remission_record_within_days(study):
    remitted = 0
    for patient in Patient.objects.filter(study=study):
        course = list(patient.icans_assessments.order_by("assessed_at"))
        assert course[0].ice_score == 10 and course[0].icans_grade == 0  # baseline at infusion
        assert min(a.ice_score for a in course) < 10
        remission = patient.response_assessments.filter(icans_remission=True).first()
        if remission is None:
            assert patient.response_assessments.filter(icans_remission=False).exists()
            continue
        remitted += 1
        assert course[-1].ice_score == 10 and course[-1].icans_grade == 0
        assert remission.assessed_on == timezone.localdate(course[-1].assessed_at)
        assert (remission.assessed_on - timezone.localdate(icans_onset(patient).assessed_at)).days <= 7
    assert remitted >= 11


def test_csf_car_t_cells_protein_and_il6_fall_after_idm(study):
    for patient in Patient.objects.filter(study=study):
        first, *_, last = CsfResult.objects.filter(lumbar_puncture__patient=patient).order_by(
            "lumbar_puncture__performed_at"
        )
        assert last.car_t_cells_per_ul < first.car_t_cells_per_ul
        assert last.protein_g_per_l < first.protein_g_per_l
        assert last.il6_pg_per_ml < first.il6_pg_per_ml
        assert not last.lumbar_puncture.doses.exists()  # the check LP after the last IDM


def test_a_couple_die_later_and_the_rest_end_with_a_last_contact(study):
    patients = Patient.objects.filter(study=study)
    dead = patients.exclude(death_date=None)
    assert dead.count() == 2
    assert set(dead.values_list("death_cause", flat=True)) == {DeathCause.MALIGNANCY, DeathCause.INFECTION}
    for patient in dead:
        assert (
            patient.follow_up_events.get(event_type=FollowUpEventType.DEATH).event_date == patient.death_date
        )
    alive = patients.filter(death_date=None)
    assert (
        FollowUpEvent.objects.filter(patient__in=alive, event_type=FollowUpEventType.LAST_CONTACT).count()
        == 11
    )


def test_records_are_valid_dated_sensibly_and_audited(study, actor):
    today = timezone.localdate()
    for model in WRITTEN_MODELS:
        objects = list(model.objects.all())
        assert objects, model.__name__
        for obj in objects:
            try:
                obj.full_clean()  # a patient's also checks every dated record against birth and death
            except ValidationError as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"{model.__name__} {obj.pk}: {exc.message_dict}")
        assert model.history.filter(history_user=actor).count() >= len(objects), model.__name__
    for patient in Patient.objects.filter(study=study):
        last_day = patient.death_date or today
        for assessment in (*patient.icans_assessments.all(), *patient.crs_assessments.all()):
            assert timezone.localdate(assessment.assessed_at) <= last_day


def test_refuses_a_study_that_already_has_patients(study, actor):
    with pytest.raises(ValueError, match="already has patients"):
        load_icans_cohort(study=study, actor=actor)
