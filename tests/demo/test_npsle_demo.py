"""The demo NPSLE cohort: valid, audited, reproducible, and shaped like the seed paper's Table 1.

The Table 1 checks read one cohort of the default size (386, default seed), generated once for the
module inside a transaction that is rolled back. The rest generate 120 patients per test.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts.services import system_user
from demo import npsle
from demo.common import ensure_sites_and_studies
from demo.npsle import ASSUMED, SLEDAI_DESCRIPTOR_BY_SYNDROME, generate_npsle_cohort
from registry.choices import (
    Attribution,
    CtcaeTerm,
    DischargeOutcomeCode,
    DiseaseArea,
    FollowUpEventType,
    IntrathecalDrug,
    NpsleSyndrome,
    Sex,
    SystemicTherapyCategory,
)
from registry.models import (
    AdverseEvent,
    CsfResult,
    DischargeOutcome,
    FollowUpEvent,
    IntrathecalDose,
    LumbarPuncture,
    NpsleDiagnosis,
    NpsleManifestation,
    Patient,
    PatientIdentifier,
    Sledai2kAssessment,
    SystemicTherapy,
)
from tests import factories as f

SMALL = 120
TABLE_1_COLUMNS = {
    "headache": NpsleSyndrome.HEADACHE,
    "psychosis": NpsleSyndrome.PSYCHOSIS,
    "acs": NpsleSyndrome.ACUTE_CONFUSIONAL_STATE,
    "seizure": NpsleSyndrome.SEIZURE,
}


def analysis_frame(study) -> pd.DataFrame:
    """One row per patient with the reference cohorts' columns, derived the way the analyses derive them.

    intrathecal = any intrathecal dose; CSF baseline = first LP, after = last LP when there are two or
    more; time_years = index admission to the first death or relapse, else to the last contact.
    """
    patients = Patient.objects.filter(study=study).order_by("study_code")
    rows = {
        p["pk"]: {
            "study_code": p["study_code"],
            "sex_male": int(p["sex"] == Sex.MALE),
            "age": (p["index_admission_date"] - p["birth_date"]).days / 365.25,
            "index": p["index_admission_date"],
            "died": p["death_date"] is not None,
        }
        for p in patients.values(
            "pk", "study_code", "sex", "birth_date", "index_admission_date", "death_date"
        )
    }
    treated = set(
        IntrathecalDose.objects.filter(lumbar_puncture__patient__study=study).values_list(
            "lumbar_puncture__patient_id", flat=True
        )
    )
    syndromes = defaultdict(set)
    for patient_id, syndrome in NpsleManifestation.objects.filter(
        diagnosis__patient__study=study
    ).values_list("diagnosis__patient_id", "syndrome"):
        syndromes[patient_id].add(syndrome)
    therapies = defaultdict(set)
    for patient_id, category in SystemicTherapy.objects.filter(patient__study=study).values_list(
        "patient_id", "category"
    ):
        therapies[patient_id].add(category)
    punctures = defaultdict(list)
    for lp in (
        LumbarPuncture.objects.filter(patient__study=study)
        .order_by("patient_id", "performed_at")
        .values("patient_id", "opening_pressure_mmh2o", "csf__protein_g_per_l")
    ):
        punctures[lp["patient_id"]].append(lp)
    events = defaultdict(dict)
    for patient_id, event_type, day in FollowUpEvent.objects.filter(patient__study=study).values_list(
        "patient_id", "event_type", "event_date"
    ):
        events[patient_id][event_type] = day
    sledai = dict(Sledai2kAssessment.objects.filter(patient__study=study).values_list("patient_id", "total"))
    outcome = dict(DischargeOutcome.objects.filter(patient__study=study).values_list("patient_id", "outcome"))

    for pk, row in rows.items():
        first, last = punctures[pk][0], punctures[pk][-1]
        repeated = len(punctures[pk]) > 1
        ends = [day for kind, day in events[pk].items() if kind != FollowUpEventType.LAST_CONTACT]
        end = min(ends) if ends else events[pk].get(FollowUpEventType.LAST_CONTACT)
        row.update(
            intrathecal=int(pk in treated),
            sledai=sledai[pk],
            **{column: int(code in syndromes[pk]) for column, code in TABLE_1_COLUMNS.items()},
            headache_only=syndromes[pk] == {NpsleSyndrome.HEADACHE},
            mpp=int(SystemicTherapyCategory.METHYLPREDNISOLONE_PULSE in therapies[pk]),
            cyc=int(SystemicTherapyCategory.CYCLOPHOSPHAMIDE in therapies[pk]),
            icp_baseline=first["opening_pressure_mmh2o"],
            protein_baseline=float(first["csf__protein_g_per_l"]),
            icp_after=last["opening_pressure_mmh2o"] if repeated else None,
            protein_after=float(last["csf__protein_g_per_l"]) if repeated else None,
            outcome=outcome[pk],
            time_years=(end - row["index"]).days / 365.25 if end else None,
            event=int(bool(ends)),
            relapsed=FollowUpEventType.NPSLE_RELAPSE in events[pk],
        )
    return pd.DataFrame(rows.values())


def key_figures(frame: pd.DataFrame) -> dict:
    """Figures that identify a cohort: same seed, same figures."""
    return {
        "patients": len(frame),
        "intrathecal": int(frame.intrathecal.sum()),
        "sledai_sum": int(frame.sledai.sum()),
        "protein_sum": round(frame.protein_baseline.sum(), 3),
        "person_years": round(frame.time_years.sum(), 3),
        "events": int(frame.event.sum()),
        "deaths": int(frame.died.sum()),
        "codes": tuple(frame.study_code),
    }


@pytest.fixture
def actor():
    return system_user()


@pytest.fixture
def study(actor):
    return ensure_sites_and_studies(actor=actor)["npsle"]


@pytest.fixture(scope="module")
def small_cohort(django_db_setup, django_db_blocker):
    """SMALL patients in a study of their own at the demo sites, generated once for the module (the
    tests read them), rolled back after; the demo NPSLE study stays empty for the tests that fill it."""
    with django_db_blocker.unblock(), transaction.atomic():
        actor = system_user()
        study = f.study_at_demo_sites(
            "npsle-small", area=DiseaseArea.NPSLE, title="Small cohort", actor=actor, reason="Test"
        )
        generate_npsle_cohort(study=study, actor=actor, patients=SMALL)
        yield study
        transaction.set_rollback(True)


@pytest.fixture(scope="module")
def table_1(django_db_setup, django_db_blocker) -> pd.DataFrame:
    """The default cohort (386 patients, default seed) as an analysis frame; the rows are rolled back."""
    with django_db_blocker.unblock(), transaction.atomic():
        actor = system_user()
        study = ensure_sites_and_studies(actor=actor)["npsle"]
        generate_npsle_cohort(study=study, actor=actor)
        frame = analysis_frame(study)
        transaction.set_rollback(True)
    return frame


def by_group(frame: pd.DataFrame, column: str, how: str = "mean") -> tuple[float, float]:
    """(control, intrathecal) summary of a column."""
    grouped = frame.groupby("intrathecal")[column].agg(how)
    return grouped[0], grouped[1]


# Table 1 of the default cohort.


# The paper's figures are checked in test_npsle_marginals.py; here, what the paper does not print.


def test_sledai_is_higher_with_intrathecal_therapy(table_1):
    control, intrathecal = by_group(table_1, "sledai", "median")
    assert intrathecal > control


def test_headache_only_patients_exist_for_the_sensitivity_analysis(table_1):
    assert 10 <= table_1.headache_only.sum() <= 80
    assert (table_1.headache + table_1.psychosis + table_1.acs + table_1.seizure == 0).any()


def test_csf_protein_and_pressure_fall_after_intrathecal_therapy(table_1):
    repeated = table_1.dropna(subset=["protein_after"])
    log_change = np.log(repeated.protein_after / repeated.protein_baseline)
    control, intrathecal = log_change.groupby(repeated.intrathecal).mean()
    assert intrathecal == pytest.approx(ASSUMED.protein_log_change[1], abs=0.06)
    assert control == pytest.approx(ASSUMED.protein_log_change[0], abs=0.12)
    pressure_change = (repeated.icp_after - repeated.icp_baseline).groupby(repeated.intrathecal).mean()
    assert pressure_change[1] == pytest.approx(ASSUMED.opening_pressure_change_mmh2o[1], abs=10)
    with_repeat = table_1.protein_after.notna().groupby(table_1.intrathecal).sum()
    assert with_repeat[1] == 165  # the paper's 165 of 194: all but the single-injection patients
    assert with_repeat[0] == pytest.approx(29, abs=8)  # the paper's 29 of 192


def test_discharge_outcome_is_better_with_intrathecal_therapy(table_1):
    shares = pd.crosstab(table_1.intrathecal, table_1.outcome, normalize="index")
    assert (
        shares.loc[1, DischargeOutcomeCode.COMPLETE_RECOVERY]
        > shares.loc[0, DischargeOutcomeCode.COMPLETE_RECOVERY]
    )
    assert shares.loc[1, DischargeOutcomeCode.EXACERBATION] < shares.loc[0, DischargeOutcomeCode.EXACERBATION]
    assert 100 * shares.loc[0, DischargeOutcomeCode.EXACERBATION] == pytest.approx(
        ASSUMED.discharge_outcome_percent[DischargeOutcomeCode.EXACERBATION][0], abs=1
    )


# Records of a smaller cohort.


@pytest.mark.django_db
def test_creates_coded_patients_with_identifiers_unique_per_site(small_cohort):
    patients = Patient.objects.filter(study=small_cohort)
    assert patients.count() == SMALL
    assert sorted(patients.values_list("study_code", flat=True))[:2] == ["NP0001", "NP0002"]
    assert set(patients.values_list("site__code", flat=True)) == {"north", "south"}
    identifiers = PatientIdentifier.objects.filter(patient__study=small_cohort)
    assert identifiers.count() == SMALL
    pairs = list(identifiers.values_list("patient__site_id", "medical_record_number"))
    assert len(set(pairs)) == SMALL
    assert all(identifiers.values_list("full_name", flat=True))


@pytest.mark.django_db
def test_same_seed_gives_the_same_cohort_and_another_seed_another(actor):
    figures = []
    for run, seed in enumerate((7, 7, 8)):
        into = f.study_at_demo_sites(
            f"npsle-{run}", area=DiseaseArea.NPSLE, title="Seed check", actor=actor, reason="Test"
        )
        generate_npsle_cohort(study=into, actor=actor, patients=SMALL, seed=seed)
        figures.append(key_figures(analysis_frame(into)))
    assert figures[0] == figures[1]
    assert figures[0] != figures[2]


@pytest.mark.django_db
def test_chunks_insert_every_patient_and_report_progress(study, actor, monkeypatch):
    monkeypatch.setattr(npsle, "CHUNK_PATIENTS", 50)
    done = []
    assert generate_npsle_cohort(study=study, actor=actor, patients=SMALL, progress=done.append) == SMALL
    assert done == [50, 100, SMALL]
    assert NpsleDiagnosis.objects.filter(patient__study=study).count() == SMALL
    assert not Patient.objects.filter(study=study, lumbar_punctures__isnull=True).exists()


@pytest.mark.django_db
def test_refuses_a_study_that_already_has_patients(small_cohort, actor):
    with pytest.raises(ValueError, match="already has patients"):
        generate_npsle_cohort(study=small_cohort, actor=actor, patients=5)


@pytest.mark.django_db
def test_intrathecal_courses_are_1_to_6_weekly_mtx_10_mg_with_dex_10_mg_or_dex_alone(small_cohort):
    doses = IntrathecalDose.objects.filter(lumbar_puncture__patient__study=small_cohort)
    assert set(doses.values_list("drug", "dose_mg", "volume_ml", "course_number").distinct()) == {
        (IntrathecalDrug.METHOTREXATE, 10, 10, 1),
        (IntrathecalDrug.DEXAMETHASONE, 10, 10, 1),
    }
    punctures = defaultdict(list)
    for patient_id, performed_at, dose_count in (
        LumbarPuncture.objects.filter(patient__study=small_cohort)
        .annotate(dose_count=Count("doses"))
        .order_by("patient_id", "performed_at")
        .values_list("patient_id", "performed_at", "dose_count")
    ):
        punctures[patient_id].append((performed_at.date(), dose_count))
    courses = {pk: [day for day, count in lps if count] for pk, lps in punctures.items()}
    courses = {pk: days for pk, days in courses.items() if days}
    assert len(courses) == pytest.approx(SMALL / 2, abs=SMALL * 0.15)
    for pk, injections in courses.items():
        assert 1 <= len(injections) <= 6
        assert injections[0] == punctures[pk][0][0]  # the first dose is given at the baseline LP
        # MTX with DEX at every LP of the course, or DEX alone at every one (MTX unavailable).
        assert len({count for _, count in punctures[pk]}) == 1
        assert punctures[pk][0][1] in (1, 2)
        assert all(6 <= (later - earlier).days <= 8 for earlier, later in pairwise(injections))


@pytest.mark.django_db
def test_every_patient_ends_with_a_death_or_a_last_contact(small_cohort):
    for patient in Patient.objects.filter(study=small_cohort).prefetch_related("follow_up_events"):
        events = {event.event_type: event.event_date for event in patient.follow_up_events.all()}
        endings = {FollowUpEventType.DEATH, FollowUpEventType.LAST_CONTACT}.intersection(events)
        assert len(endings) == 1, patient
        assert events.get(FollowUpEventType.DEATH) == patient.death_date
        assert bool(patient.death_cause) == bool(patient.death_date)


@pytest.mark.django_db
def test_no_record_is_dated_after_death_or_in_the_future(small_cohort):
    today = timezone.localdate()
    dated = [
        (LumbarPuncture, "patient", "performed_at"),
        (AdverseEvent, "patient", "onset_date"),
        (AdverseEvent, "patient", "resolution_date"),
        (SystemicTherapy, "patient", "start_date"),
        (SystemicTherapy, "patient", "end_date"),
        (DischargeOutcome, "patient", "discharge_date"),
        (FollowUpEvent, "patient", "event_date"),
        (Sledai2kAssessment, "patient", "assessed_on"),
        (NpsleManifestation, "diagnosis__patient", "onset_date"),
    ]
    for model, patient_path, field in dated:
        for day, death, index in model.objects.filter(**{f"{patient_path}__study": small_cohort}).values_list(
            field, f"{patient_path}__death_date", f"{patient_path}__index_admission_date"
        ):
            if day is None:
                continue
            if isinstance(day, dt.datetime):
                day = timezone.localdate(day)
            assert day <= today, (model.__name__, field, day)
            assert death is None or day <= death, (model.__name__, field, day, death)
            if model is not NpsleManifestation:
                assert day >= index, (model.__name__, field, day, index)


@pytest.mark.django_db
def test_every_saved_record_passes_full_validation_again(small_cohort):
    for model in npsle.INSERT_ORDER:
        saved = model.objects.all()
        assert saved, model.__name__
        for obj in saved:
            try:
                obj.full_clean()
            except ValidationError as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"{model.__name__} {obj.pk}: {exc.message_dict}")


@pytest.mark.django_db
def test_every_record_has_a_history_row_by_the_actor(small_cohort, actor):
    for model in npsle.INSERT_ORDER:
        created = model.history.filter(history_type="+")
        assert created.count() == model.objects.count() > 0, model.__name__
        assert not created.exclude(history_user=actor).exists(), model.__name__
        assert (
            created.filter(history_change_reason__startswith="Demo NPSLE cohort").count() == created.count()
        )


@pytest.mark.django_db
def test_sledai_descriptors_agree_with_the_syndromes(small_cohort):
    syndromes = defaultdict(set)
    for patient_id, syndrome in NpsleManifestation.objects.values_list("diagnosis__patient_id", "syndrome"):
        syndromes[patient_id].add(syndrome)
    for assessment in Sledai2kAssessment.objects.filter(patient__study=small_cohort):
        for syndrome, descriptor in SLEDAI_DESCRIPTOR_BY_SYNDROME.items():
            assert getattr(assessment, descriptor) == (syndrome in syndromes[assessment.patient_id])
        if assessment.lupus_headache:
            assert NpsleSyndrome.HEADACHE in syndromes[assessment.patient_id]
        assert assessment.total > 0


@pytest.mark.django_db
def test_lp_complications_are_recorded_as_adverse_events_of_that_lp(small_cohort):
    complicated = LumbarPuncture.objects.filter(patient__study=small_cohort, post_lp_headache=True)
    assert complicated.exists()
    for lp in complicated:
        assert lp.adverse_events.filter(
            ctcae_term=CtcaeTerm.HEADACHE, grade__in=(1, 2), attribution=Attribution.LUMBAR_PUNCTURE
        ).exists()
    assert CsfResult.objects.filter(lumbar_puncture__patient__study=small_cohort).count() >= SMALL
