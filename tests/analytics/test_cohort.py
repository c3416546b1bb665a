"""The analysis dataset: derivations from records, missing values kept missing, filters."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pandas as pd
import pytest
from django.utils import timezone

from analytics.datasets import build_dataset, data_dictionary
from analytics.errors import AnalysisError
from registry.choices import (
    ClinicalResponse,
    DeathCause,
    DiseaseArea,
    DoseTiming,
    FollowUpEventType,
    IntrathecalDrug,
    NpsleSyndrome,
    SystemicTherapyCategory,
)
from tests import factories as f

pytestmark = pytest.mark.django_db

INDEX = dt.date(2021, 3, 1)


def at(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(9)))


def lp(patient, day, *, pressure=None, protein=None, doses=()):
    puncture = f.LumbarPunctureFactory(
        patient=patient, performed_at=at(day), opening_pressure_mmh2o=pressure, closing_pressure_mmh2o=None
    )
    if protein is not None:
        f.CsfResultFactory(lumbar_puncture=puncture, protein_g_per_l=Decimal(protein))
    for drug, mg in doses:
        f.IntrathecalDoseFactory(lumbar_puncture=puncture, drug=drug, dose_mg=Decimal(mg))
    return puncture


@pytest.fixture
def npsle_study():
    return f.StudyFactory(code="npsle-test", disease_area=DiseaseArea.NPSLE)


def test_columns_follow_the_data_dictionary(npsle_study):
    f.PatientFactory(study=npsle_study)
    dataset = build_dataset(npsle_study)
    assert list(dataset.columns) == [v.name for v in data_dictionary(npsle_study)]
    assert dataset.attrs["screened"] == 1
    assert all(v["label"] and v["derivation"] for v in dataset.attrs["dictionary"])


def test_intrathecal_course_and_csf_first_and_last(npsle_study):
    patient = f.PatientFactory(study=npsle_study)
    mtx_dex = [(IntrathecalDrug.METHOTREXATE, "10"), (IntrathecalDrug.DEXAMETHASONE, "10")]
    lp(patient, INDEX + dt.timedelta(days=1), pressure=230, protein="0.72", doses=mtx_dex)
    lp(patient, INDEX + dt.timedelta(days=8), pressure=None, protein=None, doses=mtx_dex)
    lp(patient, INDEX + dt.timedelta(days=15), pressure=160, protein="0.41", doses=mtx_dex)
    row = build_dataset(npsle_study).iloc[0]
    assert row["intrathecal"] == 1 and row["it_dose_count"] == 3
    assert row["cum_methotrexate_mg"] == 30 and row["cum_pemetrexed_mg"] == 0
    assert (row["icp_baseline"], row["icp_after"]) == (230, 160)
    assert (row["protein_baseline"], row["protein_after"]) == (0.72, 0.41)
    assert (row["inc_icp"], row["inc_protein"]) == (1, 1)


def test_missing_values_stay_missing(npsle_study):
    patient = f.PatientFactory(study=npsle_study)
    lp(patient, INDEX + dt.timedelta(days=1), pressure=None, protein="0.30")
    row = build_dataset(npsle_study).iloc[0]
    assert row["intrathecal"] == 0
    assert math.isnan(row["icp_baseline"]) and math.isnan(row["inc_icp"])
    assert math.isnan(row["protein_after"]), "one LP has no 'after' value"
    assert math.isnan(row["sledai"]) and math.isnan(row["time_years"]) and math.isnan(row["event"])
    assert row["inc_protein"] == 0


def test_time_to_death_or_relapse(npsle_study):
    relapsed = f.PatientFactory(study=npsle_study)
    f.FollowUpEventFactory(
        patient=relapsed,
        event_type=FollowUpEventType.NPSLE_RELAPSE,
        event_date=INDEX + dt.timedelta(days=730),
    )
    alive = f.PatientFactory(study=npsle_study)
    f.FollowUpEventFactory(
        patient=alive, event_type=FollowUpEventType.LAST_CONTACT, event_date=INDEX + dt.timedelta(days=365)
    )
    dead = f.PatientFactory(
        study=npsle_study, death_date=INDEX + dt.timedelta(days=100), death_cause=DeathCause.INFECTION
    )
    f.FollowUpEventFactory(patient=dead, event_type=FollowUpEventType.DEATH, event_date=dead.death_date)
    rows = build_dataset(npsle_study).set_index("study_code")
    assert rows.loc[relapsed.study_code, ["time_years", "event", "relapse"]].tolist() == [730 / 365.25, 1, 1]
    assert rows.loc[alive.study_code, ["time_years", "event"]].tolist() == [365 / 365.25, 0]
    assert rows.loc[dead.study_code, ["time_years", "event", "death"]].tolist() == [100 / 365.25, 1, 1]


def test_syndromes_sledai_and_therapy_in_the_admission_window(npsle_study):
    patient = f.PatientFactory(study=npsle_study)
    diagnosis = f.NpsleDiagnosisFactory(patient=patient)
    f.NpsleManifestationFactory(diagnosis=diagnosis, syndrome=NpsleSyndrome.HEADACHE)
    f.SledaiFactory(patient=patient, psychosis=True, seizure=True, low_complement=False)
    f.DischargeOutcomeFactory(patient=patient, discharge_date=INDEX + dt.timedelta(days=20))
    f.SystemicTherapyFactory(patient=patient, category=SystemicTherapyCategory.METHYLPREDNISOLONE_PULSE)
    f.SystemicTherapyFactory(
        patient=patient,
        category=SystemicTherapyCategory.CYCLOPHOSPHAMIDE,
        start_date=INDEX + dt.timedelta(days=60),
        end_date=None,
    )
    row = build_dataset(npsle_study).iloc[0]
    assert (row["headache"], row["psychosis"], row["headache_only"], row["multiple_syndromes"]) == (
        1,
        0,
        1,
        0,
    )
    assert row["sledai"] == 16
    assert row["anti_dsdna"] == 1
    assert (row["mpp"], row["cyc"]) == (1, 0), "cyclophosphamide started after discharge"
    assert row["discharge_outcome"] == "partial"


def test_filters(npsle_study):
    north, south = npsle_study.sites.first(), f.SiteFactory(code="south-t")
    npsle_study.sites.add(south)
    f.PatientFactory(study=npsle_study, site=north, sex="M")
    f.PatientFactory(study=npsle_study, site=south, index_admission_date=dt.date(2020, 1, 1))
    assert len(build_dataset(npsle_study, filters={"site": "south-t"})) == 1
    assert len(build_dataset(npsle_study, filters={"sex_male": 1})) == 1
    assert len(build_dataset(npsle_study, filters={"index_from": "2021-01-01"})) == 1
    assert len(build_dataset(npsle_study, filters={"age": (">=", 25)})) == 2
    filtered = build_dataset(npsle_study, filters={"site": ["south-t"]})
    assert filtered.attrs["screened"] == 2
    with pytest.raises(AnalysisError, match="no such column"):
        build_dataset(npsle_study, filters={"ecog": 1})


def test_unknown_study_is_refused():
    with pytest.raises(AnalysisError, match="no study"):
        build_dataset("nope")


def test_query_count_does_not_grow_with_patients(npsle_study, django_assert_max_num_queries):
    for _ in range(5):
        patient = f.PatientFactory(study=npsle_study)
        lp(
            patient,
            INDEX + dt.timedelta(days=1),
            pressure=200,
            protein="0.5",
            doses=[(IntrathecalDrug.METHOTREXATE, "10")],
        )
    with django_assert_max_num_queries(20):
        assert len(build_dataset(npsle_study)) == 5


def test_lm_columns():
    diagnosis = f.LmDiagnosisFactory(ecog=2)
    patient = diagnosis.patient
    f.MutationFindingFactory(diagnosis=diagnosis)
    first = lp(patient, INDEX + dt.timedelta(days=3), doses=[(IntrathecalDrug.PEMETREXED, "10")])
    lp(patient, INDEX + dt.timedelta(days=6), doses=[(IntrathecalDrug.PEMETREXED, "15")])
    f.IntrathecalDoseFactory(
        lumbar_puncture=first,
        drug=IntrathecalDrug.DEXAMETHASONE,
        dose_mg=Decimal("2.5"),
        timing=DoseTiming.BEFORE,
    )
    f.SystemicTherapyFactory(
        patient=patient,
        category=SystemicTherapyCategory.BEVACIZUMAB,
        start_date=INDEX + dt.timedelta(days=3),
        end_date=None,
    )
    f.FollowUpEventFactory(
        patient=patient,
        event_type=FollowUpEventType.LM_PROGRESSION,
        event_date=INDEX + dt.timedelta(days=3 + 61),
    )
    f.FollowUpEventFactory(
        patient=patient,
        event_type=FollowUpEventType.LAST_CONTACT,
        event_date=INDEX + dt.timedelta(days=3 + 122),
    )
    row = build_dataset(patient.study).iloc[0]
    assert row["it_drug"] == "pemetrexed" and row["max_pemetrexed_mg"] == 15
    assert (row["ecog"], row["ecog_ge2"], row["mutation_class"], row["egfr_mutant"]) == (2, 1, "EGFR", 1)
    assert row["ipfs_months"] == pytest.approx(61 / 30.4375) and row["ipfs_event"] == 1
    assert row["os_months"] == pytest.approx(122 / 30.4375) and row["os_event"] == 0
    assert row["bevacizumab"] == 1


@pytest.mark.filterwarnings("error::FutureWarning")
def test_lm_clinical_response_left_blank_is_missing_not_a_category():
    """A response assessment whose clinical response was left blank counts as not assessed: the
    patient is neither a responder nor a non-responder (and pandas is not asked to downcast)."""
    blank = f.LmDiagnosisFactory().patient
    answered = f.LmDiagnosisFactory(patient=f.PatientFactory(study=blank.study, area=DiseaseArea.LM)).patient
    for patient in (blank, answered):
        lp(patient, INDEX + dt.timedelta(days=3), doses=[(IntrathecalDrug.PEMETREXED, "10")])
    f.ResponseAssessmentFactory(patient=blank, clinical_response="")
    only_blank = build_dataset(blank.study)
    assert only_blank["clinical_response"].isna().all() and only_blank["responder"].isna().all()

    f.ResponseAssessmentFactory(patient=answered, clinical_response=ClinicalResponse.RESPONSE)
    both = build_dataset(blank.study).set_index("patient_id")
    assert pd.isna(both.loc[blank.pk, "clinical_response"]) and pd.isna(both.loc[blank.pk, "responder"])
    assert both.loc[answered.pk, "clinical_response"] == "response"
    assert both.loc[answered.pk, "responder"] == 1


def test_icans_columns():
    patient = f.PatientFactory(area=DiseaseArea.ICANS)
    f.CarTInfusionFactory(patient=patient)
    onset = timezone.make_aware(dt.datetime(2021, 3, 6, 8, 0))
    f.IcansAssessmentFactory(
        patient=patient,
        assessed_at=onset - dt.timedelta(hours=12),
        orientation_year=True,
        orientation_month=True,
        orientation_city=True,
        orientation_hospital=True,
        naming_object_1=True,
        naming_object_2=True,
        naming_object_3=True,
        follows_commands=True,
        writes_sentence=True,
        counts_backwards=True,
    )
    f.IcansAssessmentFactory(patient=patient, assessed_at=onset, orientation_year=True)  # ICE 1 → grade 3
    f.IcansAssessmentFactory(
        patient=patient,
        assessed_at=onset + dt.timedelta(hours=60),
        orientation_year=True,
        orientation_month=True,
        orientation_city=True,
        orientation_hospital=True,
        naming_object_1=True,
        naming_object_2=True,
        naming_object_3=True,
        follows_commands=True,
    )
    puncture = f.LumbarPunctureFactory(patient=patient, performed_at=onset + dt.timedelta(hours=10))
    f.IntrathecalDoseFactory(lumbar_puncture=puncture, drug=IntrathecalDrug.DEXAMETHASONE)
    f.ResponseAssessmentFactory(patient=patient, assessed_on=dt.date(2021, 3, 9), icans_remission=True)
    row = build_dataset(patient.study).iloc[0]
    assert (row["grade_before_idm"], row["ice_before_idm"]) == (3, 1)
    assert (row["grade_after_idm"], row["ice_after_idm"]) == (1, 8)
    assert row["hours_onset_to_idm"] == 10
    # The paper's rule: worst grade 3, so grade 1 at +60 h is remission, 50 h after the first IDM.
    assert (row["remission"], row["days_idm_to_remission"]) == (1, 50 / 24)
    assert (row["remission_strict"], row["remission_recorded"]) == (0, 1)
    assert row["days_infusion_to_icans"] == 5
