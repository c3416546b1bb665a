"""Demo ICANS case series: 13 patients given early intrathecal dexamethasone + methotrexate (IDM).

The table ``ICANS_CASES`` follows the shape of a published series of ICANS after CAR-T cells
(diseases, targets, grades, timing); the individual rows are invented. Each patient is written
through the services, exactly as the pages would write them: enrolment, lymphodepletion and the
CAR-T infusion, CRS and then ICANS assessments (ICE items and the other ASTCT domains; the score
and grade are computed), IDM injections at lumbar punctures with CSF (CAR-T cells, protein, IL-6),
a diagnostic LP two days after the last IDM, systemic treatment of CRS and ICANS, the remission
assessment, and the end of follow-up (death or last contact).

ICANS onset is the first assessment with grade ≥1; IDM times below are hours from that onset.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

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
UNAROUSABLE = None  # in an ICE course: the patient could not be woken to take the test (grade 4)


@dataclass(frozen=True)
class IcansCase:
    """One patient of the series. Days count from the CAR-T infusion, hours from ICANS onset."""

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
    crs: tuple[int, int] | None  # (worst ASTCT grade, day of onset); None: no CRS before ICANS
    icans_onset: tuple[int, int]  # (day, hour of the clock)
    ice: tuple[tuple[int, int | None], ...]  # (hour, ICE score), twice daily or so until 10
    idm_hours: tuple[int, ...]  # each intrathecal DEX 10 mg + MTX 10 mg
    csf: tuple[str, str, str]  # at the first IDM: CAR-T cells/µL, protein g/L, IL-6 pg/mL
    opening_pressure_mmh2o: int
    seizure_hours: tuple[int, ...] = ()
    death: tuple[int, DeathCause] | None = None  # (day, cause)
    last_contact_day: int | None = None


# Positional columns: code, name, sex, age, disease, CAR-T target, infusion date, CAR-T dose (×10⁶
# cells/kg), prior lines of therapy, marrow blasts (%). Decimals are written as text so they stay exact.
# fmt: off
ICANS_CASES = (
    IcansCase(
        "IC01", "Zhao Min", Sex.FEMALE, 24, ALL, CarTTarget.CD19, dt.date(2021, 3, 8), "1.0", 3, "45",
        crs=(2, 1), icans_onset=(5, 14), ice=((0, 6), (8, 4), (24, 5), (36, 7), (48, 9), (72, 10)),
        idm_hours=(10, 50), csf=("85", "0.92", "1450"), opening_pressure_mmh2o=230, last_contact_day=540,
    ),
    IcansCase(
        "IC02", "Sun Hao", Sex.MALE, 31, ALL, CarTTarget.CD19_CD22, dt.date(2021, 6, 21), "2.0", 4, "62",
        crs=(1, 2), icans_onset=(6, 9), ice=((0, 7), (6, 5), (18, 2), (30, 4), (48, 8), (72, 10)),
        idm_hours=(12, 36), csf=("140", "1.10", "2300"), opening_pressure_mmh2o=250, last_contact_day=610,
    ),
    IcansCase(
        "IC03", "Liu Jun", Sex.MALE, 56, LYMPHOMA, CarTTarget.CD19, dt.date(2021, 9, 13), "2.0", 2, None,
        crs=(2, 2), icans_onset=(4, 20), ice=((0, 5), (6, 3), (24, 7), (48, 10)),
        idm_hours=(8,), csf=("36", "0.78", "620"), opening_pressure_mmh2o=200, last_contact_day=700,
    ),
    IcansCase(
        "IC04", "Chen Jing", Sex.FEMALE, 19, ALL, CarTTarget.CD19, dt.date(2021, 12, 6), "1.0", 5, "80",
        crs=(3, 1), icans_onset=(4, 2), ice=((0, 3), (4, 1), (20, 4), (44, 7), (68, 9), (96, 10)),
        seizure_hours=(4,), idm_hours=(6, 30, 54), csf=("210", "1.35", "4800"), opening_pressure_mmh2o=280,
        last_contact_day=480,
    ),
    IcansCase(
        "IC05", "Wang Fang", Sex.FEMALE, 58, MM, CarTTarget.BCMA, dt.date(2022, 2, 14), "3.0", 4, None,
        crs=(1, 1), icans_onset=(7, 10), ice=((0, 8), (10, 6), (24, 8), (48, 10)),
        idm_hours=(11,), csf=("22", "0.61", "310"), opening_pressure_mmh2o=170, last_contact_day=650,
    ),
    IcansCase(
        "IC06", "Huang Wei", Sex.MALE, 47, LYMPHOMA, CarTTarget.CD19_CD22, dt.date(2022, 4, 25), "2.0", 3, None,
        crs=(1, 2), icans_onset=(5, 16),
        ice=((0, 4), (12, 2), (24, UNAROUSABLE), (36, 3), (60, 7), (84, 9), (108, 10)),
        idm_hours=(14, 38, 62), csf=("120", "1.20", "3600"), opening_pressure_mmh2o=300, last_contact_day=560,
    ),
    IcansCase(
        "IC07", "Zhou Lei", Sex.MALE, 22, ALL, CarTTarget.CD7, dt.date(2022, 7, 11), "1.0", 3, "30",
        crs=(2, 2), icans_onset=(6, 8), ice=((0, 6), (8, 5), (24, 8), (40, 10)),
        idm_hours=(9,), csf=("64", "0.70", "980"), opening_pressure_mmh2o=210, last_contact_day=520,
    ),
    IcansCase(
        "IC08", "Xu Lan", Sex.FEMALE, 63, LYMPHOMA, CarTTarget.CD19, dt.date(2022, 10, 17), "2.0", 2, None,
        crs=None, icans_onset=(3, 11), ice=((0, 8), (12, 8), (24, 9), (36, 10)),
        idm_hours=(12,), csf=("18", "0.55", "240"), opening_pressure_mmh2o=160, last_contact_day=600,
    ),
    IcansCase(
        "IC09", "Ma Tao", Sex.MALE, 39, AML, CarTTarget.CD123, dt.date(2023, 1, 9), "1.0", 4, "25",
        crs=(2, 1), icans_onset=(5, 22), ice=((0, 5), (12, 2), (20, 3), (44, 6), (68, 9), (92, 10)),
        idm_hours=(16, 40), csf=("95", "1.05", "2100"), opening_pressure_mmh2o=240,
        death=(150, DeathCause.MALIGNANCY),
    ),
    IcansCase(
        "IC10", "Gao Ning", Sex.MALE, 68, BPDCN, CarTTarget.CD123, dt.date(2023, 4, 3), "1.0", 2, "12",
        crs=(1, 2), icans_onset=(4, 13), ice=((0, 7), (12, 6), (30, 7), (54, 8), (96, 8)),
        idm_hours=(20, 44), csf=("40", "0.88", "850"), opening_pressure_mmh2o=190,
        death=(30, DeathCause.INFECTION),
    ),
    IcansCase(
        "IC11", "Lin Yan", Sex.FEMALE, 52, LYMPHOMA, CarTTarget.CD19, dt.date(2023, 7, 24), "2.0", 3, None,
        crs=(2, 1), icans_onset=(6, 7), ice=((0, 6), (12, 3), (24, 0), (36, 4), (60, 8), (84, 10)),
        idm_hours=(26, 50), csf=("110", "1.15", "3100"), opening_pressure_mmh2o=260, last_contact_day=420,
    ),
    IcansCase(
        "IC12", "He Yu", Sex.MALE, 61, MM, CarTTarget.BCMA, dt.date(2023, 11, 6), "3.0", 5, None,
        crs=(1, 3), icans_onset=(8, 15), ice=((0, 8), (18, 6), (42, 9), (66, 10)),
        idm_hours=(30,), csf=("28", "0.66", "420"), opening_pressure_mmh2o=180, last_contact_day=380,
    ),
    IcansCase(
        "IC13", "Guo Xin", Sex.FEMALE, 28, ALL, CarTTarget.CD19_CD22, dt.date(2024, 2, 19), "1.0", 4, "70",
        crs=(3, 1), icans_onset=(3, 18), ice=((0, 4), (10, UNAROUSABLE), (22, 2), (46, 5), (70, 8), (94, 10)),
        seizure_hours=(10,), idm_hours=(46, 70), csf=("260", "1.60", "5200"), opening_pressure_mmh2o=290,
        last_contact_day=330,
    ),
)
# fmt: on

#: The seed protocol of the IDM injections: dexamethasone 10 mg with methotrexate 10 mg, as early as
#: possible after onset, repeated 1 to 3 times by response. Each patient's course starts on the day of
#: the first IDM; the doses are those it proposes.
IDM_PROTOCOL = "icans-idm"
#: Each later CSF holds this share of the previous one's value (the series reports falls after IDM).
CSF_SHARE_KEPT_PER_LP = {
    "car_t_cells_per_ul": Decimal("0.35"),
    "protein_g_per_l": Decimal("0.75"),
    "il6_pg_per_ml": Decimal("0.30"),
}
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
    3: (Hypotension.ONE_VASOPRESSOR, Hypoxia.LOW_FLOW),
}
LYMPHODEPLETION_DAYS = (-5, -3)
ADMISSION_DAY = -7
REASON = "Demo ICANS case series"


@transaction.atomic
def load_icans_cohort(*, study: Study, actor) -> int:
    """Write the 13 patients of ``ICANS_CASES`` into ``study`` (all or nothing); return how many."""
    if study.patients.exists():
        raise ValueError(f"The study {study.code} already has patients; load into an empty study.")
    site = study.sites.order_by("code").first()
    if site is None:
        raise ValueError(f"The study {study.code} has no sites.")
    for number, case in enumerate(ICANS_CASES, start=1):
        patient = patient_enrol(
            study=study,
            site=site,
            study_code=case.code,
            sex=case.sex,
            birth_date=case.infusion_date - dt.timedelta(days=round(case.age_years * 365.25) + 100),
            index_admission_date=_day(case, ADMISSION_DAY),
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


def _onset(case: IcansCase) -> dt.datetime:
    day, hour = case.icans_onset
    return dt.datetime.combine(_day(case, day), dt.time(hour), tzinfo=timezone.get_current_timezone())


def _after_onset(case: IcansCase, hours: int) -> dt.datetime:
    return _onset(case) + dt.timedelta(hours=hours)


def _save(instance, actor) -> None:
    record_save(instance, actor=actor, reason=REASON)


def _record_car_t(case: IcansCase, patient: Patient, actor) -> None:
    _save(
        CarTInfusion(
            patient=patient,
            underlying_malignancy=case.disease,
            product=f"{case.target.label} CAR-T (investigational)",
            target=case.target,
            infusion_date=case.infusion_date,
            dose_1e6_cells_per_kg=Decimal(case.cells_1e6_per_kg),
            prior_lines=case.prior_lines,
            marrow_blasts_pct=Decimal(case.marrow_blasts_pct) if case.marrow_blasts_pct else None,
            cns_involvement=False,
        ),
        actor,
    )


def _record_crs(case: IcansCase, patient: Patient, actor) -> None:
    """Fever at onset, the worst findings 12 h later, resolved three days after onset."""
    if case.crs is None:
        return
    grade, day = case.crs
    onset = dt.datetime.combine(_day(case, day), dt.time(10), tzinfo=timezone.get_current_timezone())
    hypotension, hypoxia = CRS_PEAK_FINDINGS[grade]
    for at, findings in (
        (onset, {"fever": True}),
        (onset + dt.timedelta(hours=12), {"fever": True, "hypotension": hypotension, "hypoxia": hypoxia}),
        (onset + dt.timedelta(days=3), {"fever_masked_by_treatment": grade >= 2}),
    ):
        _save(CrsAssessment(patient=patient, assessed_at=at, **findings), actor)


def _record_icans(case: IcansCase, patient: Patient, actor) -> list[IcansAssessment]:
    """A normal baseline on the infusion day, then the ICE course from onset; the saved assessments."""
    baseline = dt.datetime.combine(case.infusion_date, dt.time(9), tzinfo=timezone.get_current_timezone())
    assessments = [IcansAssessment(patient=patient, assessed_at=baseline, **_ice_findings(10))]
    for hours, score in case.ice:
        seizure = SeizureFinding.RAPIDLY_RESOLVING if hours in case.seizure_hours else SeizureFinding.NONE
        assessments.append(
            IcansAssessment(
                patient=patient,
                assessed_at=_after_onset(case, hours),
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


def _record_lumbar_punctures(case: IcansCase, patient: Patient, actor) -> None:
    """An LP with CSF at each IDM and a diagnostic LP after the last; CSF values fall each time.

    The IDMs fulfil the injections of a course planned from the seed protocol; a course with fewer
    than its three injections stops once ICANS has remitted (or, without remission, after the last).
    """

    car_t, protein, il6 = (Decimal(value) for value in case.csf)
    csf = {"car_t_cells_per_ul": car_t, "protein_g_per_l": protein, "il6_pg_per_ml": il6}
    pressure = case.opening_pressure_mmh2o
    hours = (*case.idm_hours, case.idm_hours[-1] + CHECK_LP_HOURS_AFTER_LAST_IDM)
    course = course_start(
        patient=patient,
        protocol=seed_protocol(IDM_PROTOCOL, actor=actor),
        start_date=_after_onset(case, case.idm_hours[0]).date(),
        actor=actor,
        reason=REASON,
    )
    upcoming = next_injection(patient)
    for position, at_hours in enumerate(hours):
        is_idm = position < len(case.idm_hours)
        outcome = injection_record(
            lp=LumbarPuncture(
                patient=patient, performed_at=_after_onset(case, at_hours), opening_pressure_mmh2o=pressure
            ),
            csf=CsfResult(**_csf(csf)),
            pathogen_tests=[PathogenTest(**test) for test in _negative_cultures()] if position == 0 else [],
            doses=[IntrathecalDose(**dose) for dose in _idm_doses(upcoming.doses)] if is_idm else [],
            actor=actor,
            reason=REASON,
        )
        upcoming = outcome.next or upcoming
        csf = {name: value * CSF_SHARE_KEPT_PER_LP[name] for name, value in csf.items()}
        pressure = max(90, round(pressure * OPENING_PRESSURE_SHARE_KEPT_PER_LP))
    _end_course(case, course, actor)


def _end_course(case: IcansCase, course, actor) -> None:
    """Stopped when ICANS remitted (ICE back to 10); without remission, after the last assessment."""

    course.refresh_from_db()
    if not course.is_active:
        return  # all three injections given: the course completed by itself
    hours, score = case.ice[-1]
    remitted = score == 10
    course_stop(
        course=course,
        ended_on=_after_onset(case, max(hours, case.idm_hours[-1])).date(),
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


def _record_systemic_therapy(case: IcansCase, patient: Patient, worst_icans_grade: int, actor) -> None:
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
    if case.crs and case.crs[0] >= 2:
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
    onset = _onset(case).date()
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


def _record_remission(case: IcansCase, patient: Patient, actor) -> None:
    """Remission on the day ICE is back to 10; otherwise 'not in remission' at the last assessment."""
    hours, score = case.ice[-1]
    remitted = score == 10
    _save(
        ResponseAssessment(
            patient=patient,
            assessed_on=_after_onset(case, hours).date(),
            neurological=NeurologicalChange.IMPROVED if remitted else NeurologicalChange.STABLE,
            icans_remission=remitted,
        ),
        actor,
    )


def _record_end_of_follow_up(case: IcansCase, patient: Patient, actor) -> None:
    if case.death:
        day, cause = case.death
        patient_record_death(
            patient=patient, death_date=_day(case, day), cause=cause, actor=actor, reason=REASON
        )
    else:
        event = FollowUpEvent(
            patient=patient,
            event_type=FollowUpEventType.LAST_CONTACT,
            event_date=_day(case, case.last_contact_day),
        )
        _save(event, actor)
