"""The ICANS dataset: remission by the paper's rule and the strict one, the competing-risks time from
the first IDM, grade and ICE before and after IDM for every patient, CSF around the first IDM, and OS
and PFS from the CAR-T infusion."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest
from django.utils import timezone

from analytics.datasets import build_dataset
from analytics.datasets.icans import meets_paper_rule
from registry.choices import Consciousness, DeathCause, DiseaseArea, FollowUpEventType, IntrathecalDrug
from registry.scoring import ICE_ITEM_FIELDS
from tests import factories as f

pytestmark = pytest.mark.django_db

ONSET = timezone.make_aware(dt.datetime(2021, 3, 12, 8, 0))


def ice(score: int | None) -> dict:
    """ICE items ticked for a score; None: unarousable (grade 4)."""
    if score is None:
        return {"consciousness": Consciousness.UNAROUSABLE}
    return dict.fromkeys(ICE_ITEM_FIELDS[:score], True)


def icans_patient(code: str, course: list[tuple[float, int | None]], *, idm_hours=(10.0,), csf=None, **kw):
    """A patient with a CAR-T infusion on 2021-03-02, ICANS assessments at hours from onset, IDMs."""
    study = kw.pop("study")
    patient = f.PatientFactory(study=study, study_code=code, **kw)
    f.CarTInfusionFactory(
        patient=patient,
        infusion_date=dt.date(2021, 3, 2),
        dose_1e6_cells_per_kg=Decimal("2.0"),
        prior_lines=7,
        marrow_blasts_pct=Decimal("33.23"),
        cns_involvement=True,
    )
    for hours, score in course:
        f.IcansAssessmentFactory(patient=patient, assessed_at=ONSET + dt.timedelta(hours=hours), **ice(score))
    for number, hours in enumerate(idm_hours):
        puncture = f.LumbarPunctureFactory(patient=patient, performed_at=ONSET + dt.timedelta(hours=hours))
        if csf:
            f.CsfResultFactory(
                lumbar_puncture=puncture,
                car_t_cells_per_ul=Decimal(csf[number][0]),
                protein_g_per_l=Decimal(csf[number][1]),
            )
        for drug in (IntrathecalDrug.DEXAMETHASONE, IntrathecalDrug.METHOTREXATE):
            f.IntrathecalDoseFactory(lumbar_puncture=puncture, drug=drug, dose_mg=Decimal("10"))
    return patient


@pytest.fixture
def study():
    return f.StudyFactory(code="icans-rules", disease_area=DiseaseArea.ICANS)


def rows(study) -> pd.DataFrame:
    return build_dataset(study).set_index("study_code")


def test_the_paper_rule_depends_on_the_worst_grade_so_far():
    worst = pd.Series([3, 3, 4, 2, 2, 1])
    grade = pd.Series([1, 2, 0, 1, 0, 0])
    ice_score = pd.Series([8, 5, 10, 9, 10, 10])
    assert meets_paper_rule(worst, grade, ice_score).tolist() == [True, False, True, False, True, True]


def test_remission_by_both_rules_and_every_patient_before_and_after(study):
    # Grade 3 (ICE 2) at IDM, grade 1 (ICE 8) 24 h after it, ICE 10 at 72 h: the paper's remission at
    # 24 h, the strict one at 72 h.
    icans_patient("A", [(-200, 10), (0, 2), (34, 8), (82, 10)], study=study)
    # Grade 2 (ICE 5) at IDM, ICE 9 at 34 h (not yet), ICE 10 at 58 h: both rules at 48 h.
    icans_patient("B", [(0, 5), (34, 9), (58, 10)], study=study)
    # Grade 2 that never recovers, alive: censored at its last assessment, 110 h after IDM.
    icans_patient("C", [(0, 4), (34, 6), (120, 8)], study=study)
    data = rows(study)
    assert data.loc["A", ["remission", "remission_strict"]].tolist() == [1, 1]
    assert data.loc["A", "days_idm_to_remission"] == pytest.approx(1.0)
    assert data.loc["A", "days_idm_to_remission_strict"] == pytest.approx(3.0)
    assert data.loc["B", "days_idm_to_remission"] == data.loc["B", "days_idm_to_remission_strict"] == 2.0
    assert data.loc["C", ["remission", "remission_strict"]].tolist() == [0, 0]
    assert pd.isna(data.loc["C", "days_idm_to_remission"])
    assert data.loc["C", ["remission_status", "remission_time_days"]].tolist() == [0, 110 / 24]
    assert data.loc["A", "remission_status"] == 1 and data.loc["A", "remission_time_days"] == 1.0
    # Before: the last assessment up to the IDM. After: the one at remission, else the last one.
    assert data.loc["A", ["grade_before_idm", "ice_before_idm"]].tolist() == [3, 2]
    assert data.loc["A", ["grade_after_idm", "ice_after_idm"]].tolist() == [1, 8]
    assert data.loc["B", ["grade_after_idm", "ice_after_idm"]].tolist() == [0, 10]
    assert data.loc["C", ["grade_after_idm", "ice_after_idm"]].tolist() == [1, 8]
    assert data[["grade_before_idm", "grade_after_idm"]].notna().all().all()
    assert data.loc["A", "hours_onset_to_idm"] == 10


def test_a_death_before_remission_is_the_competing_event(study):
    patient = icans_patient(
        "D",
        [(0, None), (34, 1), (58, 2)],
        study=study,
        death_date=dt.date(2021, 3, 20),
        death_cause=DeathCause.OTHER,
    )
    f.FollowUpEventFactory(
        patient=patient, event_type=FollowUpEventType.DEATH, event_date=dt.date(2021, 3, 20)
    )
    row = rows(study).loc["D"]
    assert row["remission"] == 0 and row["remission_status"] == 2
    death_start = timezone.make_aware(dt.datetime(2021, 3, 20))
    first_idm = ONSET + dt.timedelta(hours=10)
    assert row["remission_time_days"] == pytest.approx((death_start - first_idm).total_seconds() / 86400)
    assert row["os_event"] == 1 and row["os_months"] == pytest.approx(18 / 30.4375)


def test_csf_around_the_first_idm_and_os_pfs_from_the_infusion(study):
    patient = icans_patient(
        "E",
        [(0, 5), (30, 10)],
        idm_hours=(10.0, 34.0, 58.0),
        csf=[("80", "1.2"), ("30", "0.9"), ("12", "1.4")],
        study=study,
    )
    f.FollowUpEventFactory(
        patient=patient, event_type=FollowUpEventType.CART_RELAPSE, event_date=dt.date(2021, 7, 1)
    )
    f.FollowUpEventFactory(
        patient=patient, event_type=FollowUpEventType.LAST_CONTACT, event_date=dt.date(2021, 12, 1)
    )
    row = rows(study).loc["E"]
    assert (row["car_t_before_idm"], row["car_t_after_idm"]) == (80, 12)
    assert (row["protein_before_idm"], row["protein_after_idm"]) == (1.2, 1.4)
    assert pd.isna(row["il6_before_idm"])
    assert (row["car_t_dose"], row["prior_lines"], row["marrow_blasts_pct"], row["cns_involvement"]) == (
        2.0,
        7,
        33.23,
        1,
    )
    assert row["days_infusion_to_icans"] == 10
    assert row["pfs_event"] == 1 and row["pfs_months"] == pytest.approx(121 / 30.4375)
    assert row["os_event"] == 0 and row["os_months"] == pytest.approx(274 / 30.4375)
