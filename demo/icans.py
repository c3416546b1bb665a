"""Demo ICANS case series: 13 patients given early intrathecal dexamethasone + methotrexate (IDM).

The cohort follows the published summary of the ICANS paper (Meng et al., Front. Immunol. 2025,
``../shared/papers/icans_early_idm_13.txt``): every figure the abstract gives is a row of
``PAPER_TARGETS`` below, with the demo's value and where the paper states it, and
``tests/demo/test_icans_demo.py`` checks the loaded registry against each row. What the abstract does
not give per patient (names, dates, sexes, each patient's ICE course, the CSF values) is invented.

Each patient is written through the services, exactly as the pages would write them: enrolment,
lymphodepletion and the CAR-T infusion, CRS and then ICANS assessments (ICE items and the other ASTCT
domains; the score and grade are computed), IDM injections at lumbar punctures with CSF (CAR-T cells,
protein, IL-6), a diagnostic LP two days after the last IDM, systemic treatment of CRS and ICANS, the
remission assessment, relapse after CAR-T, and the end of follow-up (death, or last contact at the
paper's data cut-off).

Times in an ICE course are hours from the first IDM (negative before it); ICANS onset is the first
assessment with grade ≥1, ``hours_to_idm`` before the first IDM.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from protocols.choices import StopReason
from protocols.seed import seed_protocol
from protocols.selectors import next_injection
from protocols.services import course_start, course_stop, injection_record
from registry.choices import (
    CarTTarget,
    Consciousness,
    DeathCause,
    FollowUpEventType,
    HaematologicalMalignancy,
    Hypotension,
    Hypoxia,
    NeurologicalChange,
    PathogenTestType,
    SeizureFinding,
    Sex,
    SystemicTherapyCategory,
    TestResult,
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
    ResponseAssessment,
    Study,
    SystemicTherapy,
)
from registry.scoring import ICE_ITEM_FIELDS
from registry.services import patient_enrol, patient_record_death, record_save

ALL = HaematologicalMalignancy.ALL
LYMPHOMA = HaematologicalMalignancy.B_CELL_LYMPHOMA
MM = HaematologicalMalignancy.MM
AML = HaematologicalMalignancy.AML
BPDCN = HaematologicalMalignancy.BPDCN
F, M = Sex.FEMALE, Sex.MALE
UNAROUSABLE = None  # in an ICE course: the patient could not be woken to take the test (grade 4)
#: The paper's data cut-off: patients alive then have their last contact on this day.
DATA_CUT_OFF = dt.date(2025, 6, 30)
IDM_INTERVAL_HOURS = 24

PAPER = "Meng et al., Front. Immunol. 2025 (ICANS paper), abstract"


@dataclass(frozen=True)
class PaperTarget:
    """One published figure the demo reproduces: the demo's value must lie in ``[low, high]``
    (counts by category must equal ``counts``)."""

    key: str
    published: str
    low: float | None = None
    high: float | None = None
    counts: tuple[tuple[str, int], ...] = ()
    source: str = f"{PAPER}, Results"


#: Every figure of the paper's summary, with the demo's target and its source. One table: the demo's
#: test measures each key on the loaded registry (and the report) and checks it against this row.
PAPER_TARGETS = (
    PaperTarget(
        "patients", "13 patients with severe or steroid-refractory ICANS", 13, 13, source=f"{PAPER}, Methods"
    ),
    PaperTarget(
        "diseases",
        "7 AML, 3 ALL, 1 MM, 1 B-cell lymphoma, 1 BPDCN",
        counts=((AML, 7), (ALL, 3), (MM, 1), (LYMPHOMA, 1), (BPDCN, 1)),
    ),
    PaperTarget("age_median", "median age 39 years", 39, 39),
    PaperTarget("age_min", "age range 11–65 years (youngest)", 11, 11),
    PaperTarget("age_max", "age range 11–65 years (oldest)", 65, 65),
    PaperTarget("prior_lines_median", "prior lines of therapy median 7", 7, 7),
    PaperTarget("prior_lines_min", "prior lines range 1–16 (fewest)", 1, 1),
    PaperTarget("prior_lines_max", "prior lines range 1–16 (most)", 16, 16),
    PaperTarget("products", "6 CAR-T products", 6, 6),
    PaperTarget("dose_median", "median infusion dose 2.0 × 10⁶ cells/kg", 2.0, 2.0),
    PaperTarget("blasts_median", "marrow blasts before lymphodepletion median 33.23%", 33.23, 33.23),
    PaperTarget("blasts_min", "marrow blasts range 5.34%–78.50% (lowest)", 5.34, 5.34),
    PaperTarget("blasts_max", "marrow blasts range 5.34%–78.50% (highest)", 78.50, 78.50),
    PaperTarget("cns_involvement", "9 patients with CNS involvement", 9, 9),
    PaperTarget("crs_grade_1_2", "all patients had grade 1–2 CRS", 13, 13),
    PaperTarget("icans_grade_3_4", "5 patients with grade 3–4 ICANS", 5, 5),
    PaperTarget("icans_grade_1_2", "8 patients with grade 1–2 ICANS", 8, 8),
    PaperTarget("onset_day_median", "ICANS onset median day 11 after CAR-T", 11, 11),
    PaperTarget("onset_day_min", "onset range day 3–20 (earliest)", 3, 3),
    PaperTarget("onset_day_max", "onset range day 3–20 (latest)", 20, 20),
    PaperTarget("hours_to_idm_median", "first IDM within a median of 12 h of ICANS", 0, 12),
    PaperTarget("idm_count_median", "IDMs per patient median 1", 1, 1),
    PaperTarget("idm_count_min", "IDMs range 1–3 (fewest)", 1, 1),
    PaperTarget("idm_count_max", "IDMs range 1–3 (most)", 3, 3),
    PaperTarget("remissions", "remission in 12 of 13 (92.3%) by the paper's rule", 12, 12),
    PaperTarget("remission_days_median", "time to remission median 1 day", 1, 1),
    PaperTarget("remission_days_min", "time to remission range 1–7 days (shortest)", 1, 1),
    PaperTarget("remission_days_max", "time to remission range 1–7 days (longest)", 7, 7),
    PaperTarget("csf_car_t_p", "IDM significantly reduced CSF CAR-T cells (paired p < 0.05)", 0, 0.05),
    PaperTarget("csf_car_t_falls", "CSF CAR-T cells fell clearly: in nearly all patients (of 13)", 11, 13),
    PaperTarget("csf_protein_p", "protein only tended to fall (paired p ≥ 0.05)", 0.05, 1),
    PaperTarget("csf_protein_falls", "protein fell in most patients, not all (of 13)", 7, 12),
    PaperTarget("csf_il6_p", "IL-6 only tended to fall (paired p ≥ 0.05)", 0.05, 1),
    PaperTarget("csf_il6_falls", "IL-6 fell in most patients, not all (of 13)", 7, 12),
    PaperTarget("os_median_months", "median OS 6 months (Kaplan–Meier, as of 30 June 2025)", 5.75, 6.25),
    PaperTarget("pfs_median_months", "median PFS 5 months (Kaplan–Meier, as of 30 June 2025)", 4.75, 5.25),
)


@dataclass(frozen=True)
class IcansCase:
    """One patient of the series. Days count from the CAR-T infusion, course hours from the first IDM."""

    code: str
    name: str
    sex: Sex
    age_years: int
    disease: HaematologicalMalignancy
    target: CarTTarget
    infusion_date: dt.date
    cells_1e6_per_kg: str
    prior_lines: int
    marrow_blasts_pct: str | None
    cns_involvement: bool
    crs: tuple[int, int]  # (worst ASTCT grade, day of onset)
    icans_onset: tuple[int, int]  # (day, hour of the clock)
    hours_to_idm: int  # ICANS onset to the first IDM
    idm_count: int  # IDMs given, IDM_INTERVAL_HOURS apart
    course: tuple[tuple[int, int | None], ...]  # (hours from the first IDM, ICE score); first is onset
    remits_at: int | None  # hours from the first IDM at which the paper's rule is met; None: never
    csf_before: tuple[str, str, str]  # at the first IDM: CAR-T cells/µL, protein g/L, IL-6 pg/mL
    csf_after: tuple[str, str, str]  # at the diagnostic LP after the last IDM
    opening_pressure_mmh2o: int
    seizure_hours: tuple[int, ...] = ()
    relapse_day: int | None = None  # relapse or progression after CAR-T
    death: tuple[int, DeathCause] | None = None  # (day, cause); else alive at the cut-off


# Positional columns: code, name, sex, age, disease, CAR-T target, infusion date, CAR-T dose (×10⁶
# cells/kg), prior lines of therapy, marrow blasts (%), CNS involvement. Decimals are written as text
# so they stay exact.
# fmt: off
ICANS_CASES = (
    IcansCase(
        "IC01", "Zhao Min", F, 65, AML, CarTTarget.CLL1, dt.date(2023, 4, 10), "1.0", 16, "78.50", True,
        crs=(2, 2), icans_onset=(12, 14), hours_to_idm=6, idm_count=3,
        course=((-6, 3), (-1, UNAROUSABLE), (12, UNAROUSABLE), (24, 1), (36, 2), (48, 1), (72, 3), (96, 2),
                (120, 4), (144, 3), (168, 3)),
        remits_at=None, csf_before=("260", "1.35", "5200"), csf_after=("140", "1.52", "6100"),
        opening_pressure_mmh2o=300, death=(21, DeathCause.OTHER),
    ),
    IcansCase(
        "IC02", "Sun Hao", M, 56, AML, CarTTarget.CD123, dt.date(2023, 6, 5), "2.0", 14, "55.10", True,
        crs=(2, 1), icans_onset=(9, 8), hours_to_idm=4, idm_count=2,
        course=((-4, 4), (-1, 2), (12, 1), (24, 3), (48, 6), (72, 8), (96, 10)),
        remits_at=72, csf_before=("140", "1.10", "2300"), csf_after=("22", "0.82", "900"),
        opening_pressure_mmh2o=250, relapse_day=37, death=(64, DeathCause.MALIGNANCY),
    ),
    IcansCase(
        "IC03", "Liu Jun", M, 19, ALL, CarTTarget.CD19, dt.date(2023, 7, 17), "1.0", 5, "66.80", True,
        crs=(2, 2), icans_onset=(7, 20), hours_to_idm=12, idm_count=1,
        course=((-12, 5), (-1, 4), (12, 8), (24, 10), (48, 10), (72, 10)),
        remits_at=24, csf_before=("85", "0.78", "1450"), csf_after=("9", "0.60", "380"),
        opening_pressure_mmh2o=220, relapse_day=61, death=(91, DeathCause.MALIGNANCY),
    ),
    IcansCase(
        "IC04", "Chen Jing", F, 51, AML, CarTTarget.CLL1, dt.date(2023, 9, 4), "1.5", 12, "33.23", True,
        crs=(2, 3), icans_onset=(14, 2), hours_to_idm=18, idm_count=2,
        course=((-18, 6), (-1, 3), (12, 5), (24, 7), (36, 9), (48, 10), (72, 10)),
        remits_at=48, csf_before=("95", "0.92", "980"), csf_after=("30", "1.01", "1150"),
        opening_pressure_mmh2o=210, relapse_day=79, death=(128, DeathCause.MALIGNANCY),
    ),
    IcansCase(
        "IC05", "Wang Fang", F, 60, BPDCN, CarTTarget.CD123, dt.date(2023, 10, 23), "0.5", 1, "12.50", True,
        crs=(2, 2), icans_onset=(5, 10), hours_to_idm=2, idm_count=1,
        course=((-2, 2), (12, 5), (24, 7), (48, 9), (72, 9)),
        remits_at=24, csf_before=("40", "0.66", "620"), csf_after=("6", "0.48", "210"),
        opening_pressure_mmh2o=190, relapse_day=107, death=(155, DeathCause.MALIGNANCY),
    ),
    IcansCase(
        "IC06", "Huang Wei", M, 42, AML, CarTTarget.CD7, dt.date(2023, 12, 11), "2.0", 10, "26.70", False,
        crs=(1, 3), icans_onset=(16, 16), hours_to_idm=30, idm_count=1,
        course=((-30, 8), (-1, 7), (12, 9), (24, 10), (48, 10), (72, 10)),
        remits_at=24, csf_before=("18", "0.55", "240"), csf_after=("4", "0.58", "260"),
        opening_pressure_mmh2o=170, relapse_day=134, death=(170, DeathCause.INFECTION),
    ),
    IcansCase(
        "IC07", "Zhou Lei", M, 47, MM, CarTTarget.BCMA, dt.date(2024, 1, 22), "5.0", 9, None, False,
        crs=(1, 2), icans_onset=(10, 8), hours_to_idm=10, idm_count=1,
        course=((-10, 6), (-1, 5), (12, 8), (24, 10), (48, 10), (72, 10)),
        remits_at=24, csf_before=("22", "0.61", "310"), csf_after=("3", "0.47", "150"),
        opening_pressure_mmh2o=180, relapse_day=152, death=(183, DeathCause.MALIGNANCY),
    ),
    IcansCase(
        "IC08", "Xu Lan", F, 39, AML, CarTTarget.CLL1, dt.date(2024, 3, 4), "2.0", 8, "47.60", True,
        crs=(2, 2), icans_onset=(11, 11), hours_to_idm=8, idm_count=3,
        course=((-8, 2), (-1, 1), (12, UNAROUSABLE), (24, UNAROUSABLE), (36, 0), (48, 1), (72, 2), (96, 3),
                (120, 4), (144, 5), (168, 7), (192, 9), (216, 10)),
        remits_at=168, csf_before=("210", "1.60", "4800"), csf_after=("45", "1.22", "2600"),
        opening_pressure_mmh2o=290, relapse_day=177, death=(228, DeathCause.MALIGNANCY),
    ),
    IcansCase(
        "IC09", "Ma Tao", M, 24, ALL, CarTTarget.CD19_CD22, dt.date(2024, 4, 15), "1.0", 4, "41.00", True,
        crs=(2, 1), icans_onset=(8, 22), hours_to_idm=14, idm_count=2, seizure_hours=(-14,),
        course=((-14, 3), (-1, 2), (12, 2), (24, 3), (48, 5), (72, 6), (96, 8), (120, 10)),
        remits_at=96, csf_before=("120", "1.20", "3600"), csf_after=("35", "1.31", "4100"),
        opening_pressure_mmh2o=270, relapse_day=213, death=(298, DeathCause.MALIGNANCY),
    ),
    IcansCase(
        "IC10", "Gao Ning", F, 33, AML, CarTTarget.CD123, dt.date(2024, 6, 30), "2.5", 7, "18.20", False,
        crs=(1, 4), icans_onset=(18, 13), hours_to_idm=40, idm_count=1,
        course=((-40, 9), (-12, 8), (-1, 7), (12, 9), (24, 10), (48, 10), (72, 10)),
        remits_at=24, csf_before=("28", "0.48", "180"), csf_after=("8", "0.45", "95"),
        opening_pressure_mmh2o=160, relapse_day=274,
    ),
    IcansCase(
        "IC11", "Lin Yan", F, 36, LYMPHOMA, CarTTarget.CD19, dt.date(2024, 10, 14), "4.0", 2, None, True,
        crs=(2, 1), icans_onset=(3, 7), hours_to_idm=11, idm_count=1,
        course=((-11, 5), (-1, 4), (12, 6), (24, 8), (36, 9), (48, 10), (72, 10)),
        remits_at=48, csf_before=("64", "0.88", "850"), csf_after=("12", "0.70", "400"),
        opening_pressure_mmh2o=230,
    ),
    IcansCase(
        "IC12", "He Yu", M, 11, ALL, CarTTarget.CD19, dt.date(2024, 3, 1), "3.0", 3, "8.90", True,
        crs=(2, 2), icans_onset=(13, 15), hours_to_idm=20, idm_count=1,
        course=((-20, 6), (-1, 4), (12, 7), (24, 10), (48, 10), (72, 10)),
        remits_at=24, csf_before=("110", "0.70", "2100"), csf_after=("15", "0.74", "1300"),
        opening_pressure_mmh2o=240,
    ),
    IcansCase(
        "IC13", "Guo Xin", F, 28, AML, CarTTarget.CLL1, dt.date(2023, 7, 31), "3.0", 6, "5.34", False,
        crs=(1, 3), icans_onset=(20, 18), hours_to_idm=24, idm_count=1,
        course=((-24, 8), (-1, 7), (12, 8), (24, 10), (48, 10), (72, 10)),
        remits_at=24, csf_before=("36", "0.52", "420"), csf_after=("5", "0.41", "310"),
        opening_pressure_mmh2o=175,
    ),
)
# fmt: on

#: The seed protocol of the IDM injections: dexamethasone 10 mg with methotrexate 10 mg, as early as
#: possible after onset, repeated 1 to 3 times by response. Each patient's course starts on the day of
#: the first IDM; the doses are those it proposes.
IDM_PROTOCOL = "icans-idm"
CHECK_LP_HOURS_AFTER_LAST_IDM = 48
OPENING_PRESSURE_SHARE_KEPT_PER_LP = 0.85
#: ICE items in the order patients keep them: writing and attention go first, simple commands last.
ICE_ITEMS_KEPT_LONGEST_FIRST = (
    "follows_commands",
    "naming_object_1",
    "naming_object_2",
    "naming_object_3",
    "orientation_city",
    "orientation_hospital",
    "orientation_year",
    "orientation_month",
    "counts_backwards",
    "writes_sentence",
)

#: The CRS findings at the worst point of each grade.
CRS_PEAK_FINDINGS = {
    1: (Hypotension.NONE, Hypoxia.NONE),
    2: (Hypotension.NO_VASOPRESSOR, Hypoxia.LOW_FLOW),
}
LYMPHODEPLETION_DAYS = (-5, -3)
ADMISSION_DAY = -7
REASON = "Demo ICANS case series"


@transaction.atomic
def load_icans_cohort(*, study: Study, actor: User) -> int:
    """Write the 13 patients of ``ICANS_CASES`` into ``study`` (all or nothing); return how many."""
    if study.patients.exists():
        raise ValueError(f"The study {study.code} already has patients; load into an empty study.")
    site = study.sites.order_by("code").first()
    if site is None:
        raise ValueError(f"The study {study.code} has no sites.")
    for number, case in enumerate(ICANS_CASES, start=1):
        admission = _day(case, ADMISSION_DAY)
        patient = patient_enrol(
            study=study,
            site=site,
            study_code=case.code,
            sex=case.sex,
            birth_date=admission - dt.timedelta(days=math.ceil(case.age_years * 365.25)),  # whole years
            index_admission_date=admission,
            full_name=case.name,
            medical_record_number=f"H{2_000_000 + number * 7_919}",
            actor=actor,
            reason=REASON,
        )
        _record_car_t(case, patient, actor)
        _record_crs(case, patient, actor)
        worst_icans_grade = max(assessment.icans_grade for assessment in _record_icans(case, patient, actor))
        _record_lumbar_punctures(case, patient, actor)
        _record_systemic_therapy(case, patient, worst_icans_grade, actor)
        _record_remission(case, patient, actor)
        _record_end_of_follow_up(case, patient, actor)
    return len(ICANS_CASES)


def _day(case: IcansCase, day: int) -> dt.date:
    return case.infusion_date + dt.timedelta(days=day)


def _first_idm(case: IcansCase) -> dt.datetime:
    day, hour = case.icans_onset
    onset = dt.datetime.combine(_day(case, day), dt.time(hour), tzinfo=timezone.get_current_timezone())
    return onset + dt.timedelta(hours=case.hours_to_idm)


def _after_idm(case: IcansCase, hours: int) -> dt.datetime:
    return _first_idm(case) + dt.timedelta(hours=hours)


def _idm_hours(case: IcansCase) -> tuple[int, ...]:
    return tuple(number * IDM_INTERVAL_HOURS for number in range(case.idm_count))


def _last_assessment_hours(case: IcansCase) -> int:
    return case.course[-1][0]


def _save(instance, actor: User) -> None:
    record_save(instance, actor=actor, reason=REASON)


def _record_car_t(case: IcansCase, patient: Patient, actor: User) -> None:
    _save(
        CarTInfusion(
            patient=patient,
            underlying_malignancy=case.disease,
            product=f"{case.target.label.split(' (')[0]} CAR-T (investigational)",
            target=case.target,
            infusion_date=case.infusion_date,
            dose_1e6_cells_per_kg=Decimal(case.cells_1e6_per_kg),
            prior_lines=case.prior_lines,
            marrow_blasts_pct=Decimal(case.marrow_blasts_pct) if case.marrow_blasts_pct else None,
            cns_involvement=case.cns_involvement,
        ),
        actor,
    )


def _record_crs(case: IcansCase, patient: Patient, actor: User) -> None:
    """Fever at onset, the worst findings 12 h later, resolved three days after onset."""
    grade, day = case.crs
    onset = dt.datetime.combine(_day(case, day), dt.time(10), tzinfo=timezone.get_current_timezone())
    hypotension, hypoxia = CRS_PEAK_FINDINGS[grade]
    for at, findings in (
        (onset, {"fever": True}),
        (onset + dt.timedelta(hours=12), {"fever": True, "hypotension": hypotension, "hypoxia": hypoxia}),
        (onset + dt.timedelta(days=3), {"fever_masked_by_treatment": grade >= 2}),
    ):
        _save(CrsAssessment(patient=patient, assessed_at=at, **findings), actor)


def _record_icans(case: IcansCase, patient: Patient, actor: User) -> list[IcansAssessment]:
    """A normal baseline on the infusion day, then the ICE course; the saved assessments."""
    baseline = dt.datetime.combine(case.infusion_date, dt.time(9), tzinfo=timezone.get_current_timezone())
    assessments = [IcansAssessment(patient=patient, assessed_at=baseline, **_ice_findings(10))]
    for hours, score in case.course:
        seizure = SeizureFinding.RAPIDLY_RESOLVING if hours in case.seizure_hours else SeizureFinding.NONE
        assessments.append(
            IcansAssessment(
                patient=patient,
                assessed_at=_after_idm(case, hours),
                seizure=seizure,
                **_ice_findings(score),
            )
        )
    for assessment in assessments:
        _save(assessment, actor)  # grades are computed on save
    return assessments


def _ice_findings(score: int | None) -> dict:
    """ICE items for a score (the ones patients keep longest ticked), and the level of consciousness."""
    if score is UNAROUSABLE:
        return {"consciousness": Consciousness.UNAROUSABLE, **dict.fromkeys(ICE_ITEM_FIELDS, False)}
    kept = set(ICE_ITEMS_KEPT_LONGEST_FIRST[:score])
    consciousness = Consciousness.AWAKENS_TO_VOICE if score <= 2 else Consciousness.NORMAL
    return {"consciousness": consciousness, **{item: item in kept for item in ICE_ITEM_FIELDS}}


def _csf_between(before: Decimal, after: Decimal, step: int, steps: int) -> Decimal:
    """The value at LP ``step`` of ``steps`` on a geometric path from the first to the last."""
    return before * (after / before) ** (Decimal(step) / Decimal(steps))


def _record_lumbar_punctures(case: IcansCase, patient: Patient, actor: User) -> None:
    """An LP with CSF at each IDM and a diagnostic LP after the last; the CSF moves from the values
    before IDM to those after it.

    The IDMs fulfil the injections of a course planned from the seed protocol; a course with fewer
    than its three injections stops once ICANS has remitted (or, without remission, after the last).
    """
    names = ("car_t_cells_per_ul", "protein_g_per_l", "il6_pg_per_ml")
    before = dict(zip(names, (Decimal(v) for v in case.csf_before), strict=True))
    after = dict(zip(names, (Decimal(v) for v in case.csf_after), strict=True))
    pressure = case.opening_pressure_mmh2o
    hours = (*_idm_hours(case), _idm_hours(case)[-1] + CHECK_LP_HOURS_AFTER_LAST_IDM)
    course = course_start(
        patient=patient,
        protocol=seed_protocol(IDM_PROTOCOL, actor=actor),
        start_date=timezone.localdate(_first_idm(case)),
        actor=actor,
        reason=REASON,
    )
    upcoming = next_injection(patient)
    assert upcoming is not None  # the course just started has its injections planned
    for position, at_hours in enumerate(hours):
        is_idm = position < case.idm_count
        csf = {name: _csf_between(before[name], after[name], position, len(hours) - 1) for name in names}
        outcome = injection_record(
            lp=LumbarPuncture(
                patient=patient, performed_at=_after_idm(case, at_hours), opening_pressure_mmh2o=pressure
            ),
            csf=CsfResult(**_csf(csf)),
            pathogen_tests=[PathogenTest(**test) for test in _negative_cultures()] if position == 0 else [],
            doses=[IntrathecalDose(**dose) for dose in _idm_doses(upcoming.doses)] if is_idm else [],
            actor=actor,
            reason=REASON,
        )
        upcoming = outcome.next or upcoming
        pressure = max(90, round(pressure * OPENING_PRESSURE_SHARE_KEPT_PER_LP))
    _end_course(case, course, actor)


def _end_course(case: IcansCase, course, actor: User) -> None:
    """Stopped when ICANS remitted; without remission, after the last assessment."""

    course.refresh_from_db()
    if not course.is_active:
        return  # all three injections given: the course completed by itself
    hours = case.remits_at if case.remits_at is not None else _last_assessment_hours(case)
    remitted = case.remits_at is not None
    course_stop(
        course=course,
        ended_on=timezone.localdate(_after_idm(case, max(hours, _idm_hours(case)[-1]))),
        stop_reason=StopReason.RECOVERED if remitted else StopReason.OTHER,
        stop_note="" if remitted else "ICANS did not remit; no further IDM",
        actor=actor,
        reason=REASON,
    )


def _csf(values: dict[str, Decimal]) -> dict:
    """A CSF result: white cells rise with the CAR-T cells; glucose and chloride stay normal."""
    return {
        "car_t_cells_per_ul": values["car_t_cells_per_ul"].quantize(Decimal("0.01")),
        "protein_g_per_l": values["protein_g_per_l"].quantize(Decimal("0.001")),
        "il6_pg_per_ml": values["il6_pg_per_ml"].quantize(Decimal("0.01")),
        "wbc_1e6_per_l": (values["car_t_cells_per_ul"] * Decimal("1.5") + 2).quantize(Decimal("1")),
        "glucose_mmol_per_l": Decimal("3.10"),
        "chloride_mmol_per_l": Decimal("121.0"),
    }


def _negative_cultures() -> list[dict]:
    return [
        {"test": test, "result": TestResult.NEGATIVE}
        for test in (PathogenTestType.CULTURE, PathogenTestType.GRAM_STAIN)
    ]


def _idm_doses(proposed) -> list[dict]:
    """The doses the protocol proposes (DEX, then MTX), as this series records them."""
    return [
        {
            "drug": dose.drug,
            "dose_mg": dose.dose_mg,
            "timing": dose.timing,
            "diluent": dose.diluent,
            "course_number": 1,
        }
        for dose in proposed
    ]


def _record_systemic_therapy(case: IcansCase, patient: Patient, worst_icans_grade: int, actor: User) -> None:
    """Lymphodepletion; tocilizumab for CRS ≥2; dexamethasone for ICANS ≥2, pulses for grade 4."""
    first, last = LYMPHODEPLETION_DAYS
    therapies = [
        SystemicTherapy(
            patient=patient,
            category=SystemicTherapyCategory.CHEMOTHERAPY,
            agent="fludarabine + cyclophosphamide",
            dose_description="lymphodepletion",
            start_date=_day(case, first),
            end_date=_day(case, last),
        )
    ]
    if case.crs[0] >= 2:
        day = _day(case, case.crs[1])
        therapies.append(
            SystemicTherapy(
                patient=patient,
                category=SystemicTherapyCategory.TOCILIZUMAB,
                agent="tocilizumab",
                dose_description="8 mg/kg IV",
                start_date=day,
                end_date=day,
            )
        )
    onset = timezone.localdate(_after_idm(case, -case.hours_to_idm))
    if worst_icans_grade >= 2:
        therapies.append(
            SystemicTherapy(
                patient=patient,
                category=SystemicTherapyCategory.SYSTEMIC_DEXAMETHASONE,
                agent="dexamethasone",
                dose_description="10 mg IV every 6 h",
                start_date=onset,
                end_date=onset + dt.timedelta(days=3),
            )
        )
    if worst_icans_grade == 4:
        therapies.append(
            SystemicTherapy(
                patient=patient,
                category=SystemicTherapyCategory.METHYLPREDNISOLONE_PULSE,
                agent="methylprednisolone",
                dose_description="1000 mg/day ×3 days",
                start_date=onset + dt.timedelta(days=1),
                end_date=onset + dt.timedelta(days=3),
            )
        )
    for therapy in therapies:
        _save(therapy, actor)


def _record_remission(case: IcansCase, patient: Patient, actor: User) -> None:
    """Remission on the day the paper's rule is met; otherwise 'not in remission' at the last assessment."""
    remitted = case.remits_at is not None
    hours = case.remits_at if case.remits_at is not None else _last_assessment_hours(case)
    _save(
        ResponseAssessment(
            patient=patient,
            assessed_on=timezone.localdate(_after_idm(case, hours)),
            neurological=NeurologicalChange.IMPROVED if remitted else NeurologicalChange.STABLE,
            icans_remission=remitted,
        ),
        actor,
    )


def _record_end_of_follow_up(case: IcansCase, patient: Patient, actor: User) -> None:
    """Relapse or progression after CAR-T, then death, or the last contact at the data cut-off."""
    if case.relapse_day is not None:
        _save(
            FollowUpEvent(
                patient=patient,
                event_type=FollowUpEventType.CART_RELAPSE,
                event_date=_day(case, case.relapse_day),
            ),
            actor,
        )
    if case.death:
        day, cause = case.death
        patient_record_death(
            patient=patient, death_date=_day(case, day), cause=cause, actor=actor, reason=REASON
        )
    else:
        _save(
            FollowUpEvent(
                patient=patient, event_type=FollowUpEventType.LAST_CONTACT, event_date=DATA_CUT_OFF
            ),
            actor,
        )
