"""Demo NPSLE cohort: seeded NPSLE admissions, about half treated with intrathecal MTX + DEX.

Every patient gets what the analyses derive their columns from: demographics; ACR-1999 syndromes
with a SLEDAI-2K whose ticked descriptors agree with them; a baseline lumbar puncture with CSF;
either an intrathecal course (1–6 weekly injections of methotrexate 10 mg + dexamethasone 10 mg, the
first at the baseline LP, CSF again at the last), planned from the seed protocol ``npsle-pumch`` with
each LP linked to its planned injection, or standard care; systemic therapy; the discharge
outcome; and follow-up to a relapse, a death or a last contact. The rates come from one table,
``NPSLE_MARGINALS``, right below.

Writes go through the audited bulk path (``bulk_record_create``): every object passes the same
validation as a form entry and gets a history row naming the actor. Patients are drawn and inserted
in chunks, so memory stays flat however many are asked for (the benchmark runs 100,000).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from django.db import models, transaction
from django.utils import timezone

from accounts.models import Site
from protocols.choices import CourseStatus, InjectionStatus, SafetyCheck, StopReason
from protocols.models import Course, PlannedInjection, Protocol, SafetyOverride
from protocols.planning import GivenDose, deviations, plan_slots, propose_doses
from protocols.safety import ComponentFact, DoseEntry, InjectionContext, evaluate
from protocols.seed import seed_protocol
from protocols.selectors import protocol_parts
from registry.choices import (
    Attribution,
    CsfCytology,
    CtcaeTerm,
    DeathCause,
    DischargeOutcomeCode,
    FollowUpEventType,
    IntrathecalDrug,
    NpsleSyndrome,
    PathogenTestType,
    Sex,
    SystemicTherapyCategory,
    TestResult,
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
    PathogenTest,
    Patient,
    PatientIdentifier,
    Sledai2kAssessment,
    Study,
    SystemicTherapy,
)
from registry.services.bulk import bulk_record_create


@dataclass(frozen=True)
class ByGroup:
    """One figure for the standard-care (control) group and one for the intrathecal group."""

    control: float
    intrathecal: float

    def of(self, intrathecal: bool) -> float:
        return self.intrathecal if intrathecal else self.control

    def per_patient(self, intrathecal: np.ndarray) -> np.ndarray:
        return np.where(intrathecal, self.intrathecal, self.control)


@dataclass(frozen=True)
class NpsleMarginals:
    """The rates and distributions the generator draws from (see ``NPSLE_MARGINALS``)."""

    intrathecal_fraction: float
    male_fraction: ByGroup
    age_median_years: float
    age_log_sd: float
    age_limits_years: tuple[float, float]
    syndrome_fraction: Mapping[NpsleSyndrome, ByGroup]
    lupus_headache_given_headache: float
    sledai_median: ByGroup
    sledai_other_points_mean: ByGroup
    opening_pressure_mean_mmh2o: ByGroup
    opening_pressure_sd_mmh2o: float
    protein_median_g_per_l: ByGroup
    protein_log_sd: float
    protein_log_change: ByGroup
    protein_log_change_sd: float
    opening_pressure_change_mmh2o: ByGroup
    opening_pressure_change_sd_mmh2o: float
    control_repeat_lp_fraction: float
    injections_per_course: Mapping[int, float]
    post_lp_headache_per_injection: float
    low_icp_per_injection: float
    methylprednisolone_pulse_fraction: ByGroup
    cyclophosphamide_fraction: ByGroup
    mycophenolate_fraction_without_cyclophosphamide: float
    oral_glucocorticoid_fraction: float
    ivig_fraction: float
    rituximab_fraction: float
    discharge_outcome_fraction: Mapping[DischargeOutcomeCode, ByGroup]
    event_rate_per_year: float
    event_weibull_shape: float
    event_hazard_ratio: Mapping[str, float]
    loss_to_follow_up_mean_years: float
    death_share_of_first_events: float
    death_after_relapse_fraction: float
    sle_related_share_of_deaths: float
    onset_with_npsle_fraction: float


# Sources. "C1 a/b, C2 a/b" = control/intrathecal value in ../shared/reference/cohort_1.csv and
# cohort_2.csv (synthetic cohorts of 386 with the seed paper's Table 1 shape); where both are given
# the value used is their mean. "Assumed" = no column in those cohorts: a plausible figure for a
# tertiary-centre series of NPSLE admissions, to be replaced when the paper's figure is known.
NPSLE_MARGINALS = NpsleMarginals(
    intrathecal_fraction=0.49,  # C1 0.503, C2 0.477 of all patients
    male_fraction=ByGroup(0.117, 0.100),  # C1 0.094/0.098, C2 0.139/0.103
    age_median_years=30.6,  # C1 30.5, C2 30.7 (alike in both groups)
    age_log_sd=0.29,  # log-normal spread that gives C1/C2's interquartile range of about 25–37 years
    age_limits_years=(14.0, 80.0),  # C1/C2 range 14–80
    syndrome_fraction={
        NpsleSyndrome.HEADACHE: ByGroup(0.334, 0.198),  # C1 0.302/0.206, C2 0.366/0.190
        NpsleSyndrome.PSYCHOSIS: ByGroup(0.175, 0.329),  # C1 0.156/0.309, C2 0.193/0.348
        NpsleSyndrome.ACUTE_CONFUSIONAL_STATE: ByGroup(0.209, 0.162),  # C1 0.219/0.165, C2 0.198/0.158
        NpsleSyndrome.SEIZURE: ByGroup(0.216, 0.258),  # C1 0.208/0.232, C2 0.223/0.283
        # Assumed, both groups alike. A patient left with no syndrome at all gets one of these,
        # in proportion to these rates, so their realised rates are somewhat higher.
        NpsleSyndrome.CEREBROVASCULAR: ByGroup(0.12, 0.12),
        NpsleSyndrome.MOOD_DISORDER: ByGroup(0.10, 0.10),
        NpsleSyndrome.COGNITIVE_DYSFUNCTION: ByGroup(0.08, 0.08),
        NpsleSyndrome.MYELOPATHY: ByGroup(0.05, 0.05),
        NpsleSyndrome.CRANIAL_NEUROPATHY: ByGroup(0.05, 0.05),
        NpsleSyndrome.ANXIETY: ByGroup(0.04, 0.04),
        NpsleSyndrome.POLYNEUROPATHY: ByGroup(0.04, 0.04),
        NpsleSyndrome.ASEPTIC_MENINGITIS: ByGroup(0.03, 0.03),
        NpsleSyndrome.DEMYELINATING: ByGroup(0.02, 0.02),
        NpsleSyndrome.MOVEMENT_DISORDER: ByGroup(0.015, 0.015),
        NpsleSyndrome.MONONEUROPATHY: ByGroup(0.015, 0.015),
        NpsleSyndrome.AIDP_GBS: ByGroup(0.005, 0.005),
        NpsleSyndrome.AUTONOMIC: ByGroup(0.005, 0.005),
        NpsleSyndrome.MYASTHENIA_GRAVIS: ByGroup(0.005, 0.005),
        NpsleSyndrome.PLEXOPATHY: ByGroup(0.003, 0.003),
    },
    lupus_headache_given_headache=0.4,  # assumed: SLEDAI's lupus headache is the severe, refractory kind
    sledai_median=ByGroup(13, 16.5),  # C1 13/17, C2 13/16
    sledai_other_points_mean=ByGroup(6.0, 8.5),  # calibrated: non-neurological points for those medians
    opening_pressure_mean_mmh2o=ByGroup(179, 174),  # C1 180/173, C2 179/175 (medians about 170)
    opening_pressure_sd_mmh2o=55,  # C1 56, C2 54
    protein_median_g_per_l=ByGroup(0.36, 0.38),  # C1 0.355/0.370, C2 0.370/0.385
    protein_log_sd=0.45,  # log-normal spread that gives C1/C2's interquartile range of about 0.27–0.50 g/L
    protein_log_change=ByGroup(-0.05, -0.31),  # mean log(after/before): C1 -0.079/-0.331, C2 -0.014/-0.285
    protein_log_change_sd=0.20,  # C1/C2 0.19–0.21
    opening_pressure_change_mmh2o=ByGroup(-2.5, -44.0),  # mean after − before: C1 -5/-44, C2 0/-44
    opening_pressure_change_sd_mmh2o=25,  # C1/C2 24–26
    control_repeat_lp_fraction=0.145,  # controls with a repeat CSF: C1 27/192, C2 30/202
    # A single injection leaves no repeat CSF: C1 20/194, C2 32/184 intrathecal patients; 2–6 assumed.
    injections_per_course={1: 0.14, 2: 0.16, 3: 0.20, 4: 0.22, 5: 0.16, 6: 0.12},
    post_lp_headache_per_injection=0.05,  # assumed
    low_icp_per_injection=0.02,  # assumed
    methylprednisolone_pulse_fraction=ByGroup(0.389, 0.622),  # C1 0.427/0.629, C2 0.351/0.614
    cyclophosphamide_fraction=ByGroup(0.572, 0.672),  # C1 0.594/0.670, C2 0.550/0.674
    mycophenolate_fraction_without_cyclophosphamide=0.45,  # assumed
    oral_glucocorticoid_fraction=0.97,  # assumed
    ivig_fraction=0.08,  # assumed
    rituximab_fraction=0.05,  # assumed
    discharge_outcome_fraction={
        DischargeOutcomeCode.COMPLETE_RECOVERY: ByGroup(0.261, 0.368),  # C1 0.250/0.366, C2 0.272/0.370
        DischargeOutcomeCode.PARTIAL_IMPROVEMENT: ByGroup(0.335, 0.461),  # C1 0.328/0.448, C2 0.342/0.473
        DischargeOutcomeCode.EXACERBATION: ByGroup(0.379, 0.161),  # C1 0.422/0.186, C2 0.386/0.158 − deaths
        DischargeOutcomeCode.DEATH: ByGroup(0.025, 0.010),  # assumed (none in C1/C2): taken from exacerbation
    },
    # Time from discharge to the first relapse or death: Weibull, proportional hazards. Calibrated on
    # C2, the cohort with about 1,000 person-years for 386 patients: controls' survival free of
    # relapse or death 0.71 at 1 year and 0.44 at 3 years; 48% with an event.
    event_rate_per_year=0.20,
    event_weibull_shape=0.9,
    event_hazard_ratio={
        "intrathecal": 0.50,  # C2 Cox 0.50
        "acute_confusional_state": 3.3,  # C2 3.2–3.4
        "protein_above_0_5_g_per_l": 1.55,  # C2 1.56
        "seizure": 1.4,  # C2 1.44
    },
    loss_to_follow_up_mean_years=6.0,  # calibrated with the above to C2's 1,010 person-years
    death_share_of_first_events=0.15,  # assumed
    death_after_relapse_fraction=0.1,  # assumed
    sle_related_share_of_deaths=0.6,  # assumed; the other deaths are from infection
    onset_with_npsle_fraction=0.3,  # assumed
)

#: The syndromes that Table 1 reports (columns of the reference cohorts); the rest are assumed.
TABLE_1_SYNDROMES = frozenset(
    {
        NpsleSyndrome.HEADACHE,
        NpsleSyndrome.PSYCHOSIS,
        NpsleSyndrome.ACUTE_CONFUSIONAL_STATE,
        NpsleSyndrome.SEIZURE,
    }
)

#: The seed protocol of the intrathecal group (protocols/fixtures/seed_protocols.json): DEX 10 mg with
#: MTX 10 mg in one 10 mL syringe of preservative-free saline, weekly, 1 to 6 injections. Each dose row
#: carries that syringe's volume; the doses are those the protocol proposes.
NPSLE_PROTOCOL = "npsle-pumch"
LOW_ICP_OVERRIDE = "Demo data: low opening pressure noted; the treating physician went ahead"

#: SLEDAI-2K descriptors each ACR syndrome implies when active at the index admission.
SLEDAI_DESCRIPTOR_BY_SYNDROME = {
    NpsleSyndrome.SEIZURE: "seizure",
    NpsleSyndrome.PSYCHOSIS: "psychosis",
    NpsleSyndrome.ACUTE_CONFUSIONAL_STATE: "organic_brain_syndrome",
    NpsleSyndrome.CEREBROVASCULAR: "cva",
    NpsleSyndrome.CRANIAL_NEUROPATHY: "cranial_nerve_disorder",
}

#: Non-neurological SLEDAI-2K descriptors: (how readily each is ticked, assumed; its SLEDAI-2K weight).
#: They fill each patient's non-neurological points in a random order weighted by the first number.
SLEDAI_OTHER_DESCRIPTORS = {
    "low_complement": (0.75, 2),
    "increased_dna_binding": (0.70, 2),
    "proteinuria": (0.35, 4),
    "leukopenia": (0.30, 1),
    "fever": (0.30, 1),
    "rash": (0.30, 2),
    "alopecia": (0.25, 2),
    "arthritis": (0.25, 4),
    "thrombocytopenia": (0.25, 1),
    "haematuria": (0.20, 4),
    "mucosal_ulcers": (0.20, 2),
    "pyuria": (0.15, 4),
    "urinary_casts": (0.10, 4),
    "pleurisy": (0.10, 2),
    "pericarditis": (0.08, 2),
    "vasculitis": (0.05, 8),
    "myositis": (0.03, 4),
}

#: Organ involvement recorded on the diagnosis, and the SLEDAI-2K descriptors that show it active.
ORGAN_DESCRIPTORS = {
    "fever": ("fever",),
    "mucocutaneous": ("rash", "alopecia", "mucosal_ulcers"),
    "musculoskeletal": ("arthritis", "myositis"),
    "lupus_nephritis": ("proteinuria", "haematuria", "urinary_casts"),
    "serositis": ("pleurisy", "pericarditis"),
    "haematological": ("thrombocytopenia", "leukopenia"),
    "cardiovascular": (),
    "pulmonary": (),
}
ORGAN_PREVIOUSLY_INVOLVED_FRACTION = 0.1  # assumed: involved before, inactive at the index admission

#: The demo laboratory's CSF reference limits (clinical_reference §6b).
CSF_PROTEIN_UPPER_G_PER_L = Decimal("0.45")
CSF_GLUCOSE_LOWER_MMOL_PER_L = Decimal("2.50")
CSF_CHLORIDE_LOWER_MMOL_PER_L = Decimal("120.0")
CSF_WBC_UPPER_1E6_PER_L = Decimal("8.0")
#: Infection is excluded on every baseline CSF with these tests.
BASELINE_PATHOGEN_TESTS = (PathogenTestType.CULTURE, PathogenTestType.INDIA_INK)

INDEX_ADMISSIONS_FROM = dt.date(2012, 1, 1)
INDEX_ADMISSIONS_TO = dt.date(2022, 12, 31)
#: Follow-up closes here (or today, if earlier), so a seed gives the same cohort whatever the run date.
FOLLOW_UP_CLOSED_ON = dt.date(2026, 6, 30)
DAYS_PER_YEAR = 365.25
#: Patients drawn and inserted together: bounds memory (about 100 MiB of unsaved records and history).
CHUNK_PATIENTS = 2000

SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Xu", "Sun")
GIVEN_NAME_SYLLABLES = ("hui", "min", "jing", "li", "xiu", "ying", "mei", "lan", "fang", "qing", "wei", "jun")

Records = dict[type[models.Model], list[models.Model]]

#: Parents before children, so each child can take its parent's new key.
INSERT_ORDER: tuple[type[models.Model], ...] = (  # then each course's safety overrides, if any
    Patient,
    PatientIdentifier,
    NpsleDiagnosis,
    NpsleManifestation,
    Sledai2kAssessment,
    LumbarPuncture,
    CsfResult,
    PathogenTest,
    IntrathecalDose,
    AdverseEvent,
    SystemicTherapy,
    DischargeOutcome,
    FollowUpEvent,
    Course,
    PlannedInjection,
)


@dataclass(frozen=True)
class CoursePlan:
    """The seed protocol, read once, that every intrathecal course of the cohort is planned from."""

    protocol: Protocol
    components: list
    slots: list
    actor: object

    @classmethod
    def of(cls, protocol: Protocol, actor) -> CoursePlan:

        phases, components = protocol_parts(protocol)
        return cls(protocol, components, plan_slots(phases, open_injections=0), actor)

    def proposed(self):

        return propose_doses([self.components], [], toxicity_since_last=False)[0]


@dataclass(frozen=True)
class PatientDraw:
    """The baseline characteristics drawn for one patient."""

    number: int
    site: Site
    medical_record_number: str
    intrathecal: bool
    male: bool
    age_years: float
    index_admission_date: dt.date
    syndromes: tuple[NpsleSyndrome, ...]
    opening_pressure_mmh2o: int
    protein_g_per_l: float
    methylprednisolone_pulse: bool
    cyclophosphamide: bool


@dataclass(frozen=True)
class Admission:
    """The index admission: lumbar puncture days and discharge, in days from admission."""

    lp_days: tuple[int, ...]
    discharge_day: int
    outcome: DischargeOutcomeCode


@dataclass(frozen=True)
class FollowUp:
    """What happened after the index admission; every patient ends dead or last seen alive."""

    relapse_date: dt.date | None
    death_date: dt.date | None
    death_cause: DeathCause | None
    last_contact_date: dt.date | None


@transaction.atomic
def generate_npsle_cohort(
    *,
    study: Study,
    actor,
    patients: int = 386,
    seed: int = 20240901,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Create a seeded demo NPSLE cohort in ``study`` (all or nothing); return the patients created.

    The study must have no patients yet, so study codes and medical record numbers stay unique.
    """
    if study.patients.exists():
        raise ValueError(f"The study {study.code} already has patients; generate into an empty study.")
    sites = list(study.sites.order_by("code"))
    if not sites:
        raise ValueError(f"The study {study.code} has no sites.")
    rng = np.random.default_rng(seed)
    plan = CoursePlan.of(seed_protocol(NPSLE_PROTOCOL, actor=actor), actor)
    follow_up_closed = min(FOLLOW_UP_CLOSED_ON, timezone.localdate())
    code_width = max(4, len(str(patients)))
    medical_record_numbers = rng.choice(90_000_000, size=patients, replace=False) + 10_000_000
    reason = f"Demo NPSLE cohort (seed {seed})"
    for start in range(0, patients, CHUNK_PATIENTS):
        numbers = range(start + 1, min(start + CHUNK_PATIENTS, patients) + 1)
        records: Records = defaultdict(list)
        for draw in _draw_patients(rng, numbers, sites, medical_record_numbers[start:]):
            _add_patient_records(
                records, draw, rng, study=study, code_width=code_width, closed=follow_up_closed, plan=plan
            )
        for model in (*INSERT_ORDER, SafetyOverride):
            bulk_record_create(records[model], actor=actor, reason=reason)
        if progress:
            progress(numbers[-1])
    return patients


def _draw_patients(
    rng: np.random.Generator, numbers: range, sites: list[Site], mrns: np.ndarray
) -> list[PatientDraw]:
    """Baseline characteristics for a chunk of patients, drawn together (vectorised)."""
    m = NPSLE_MARGINALS
    n = len(numbers)
    intrathecal = rng.random(n) < m.intrathecal_fraction
    male = rng.random(n) < m.male_fraction.per_patient(intrathecal)
    age = np.clip(m.age_median_years * np.exp(m.age_log_sd * rng.standard_normal(n)), *m.age_limits_years)
    admission_span = (INDEX_ADMISSIONS_TO - INDEX_ADMISSIONS_FROM).days
    admission_offsets = rng.integers(0, admission_span + 1, size=n)
    site_index = rng.integers(0, len(sites), size=n)
    syndromes = _draw_syndromes(rng, intrathecal)
    pressure_mean = m.opening_pressure_mean_mmh2o.per_patient(intrathecal)
    pressure = np.rint(pressure_mean + m.opening_pressure_sd_mmh2o * rng.standard_normal(n))
    pressure = np.clip(pressure, 60, 450).astype(int)
    protein_median = m.protein_median_g_per_l.per_patient(intrathecal)
    protein = np.clip(protein_median * np.exp(m.protein_log_sd * rng.standard_normal(n)), 0.08, 3.0)
    mpp = rng.random(n) < m.methylprednisolone_pulse_fraction.per_patient(intrathecal)
    cyc = rng.random(n) < m.cyclophosphamide_fraction.per_patient(intrathecal)
    return [
        PatientDraw(
            number=number,
            site=sites[site_index[i]],
            medical_record_number=str(mrns[i]),
            intrathecal=bool(intrathecal[i]),
            male=bool(male[i]),
            age_years=float(age[i]),
            index_admission_date=INDEX_ADMISSIONS_FROM + dt.timedelta(days=int(admission_offsets[i])),
            syndromes=syndromes[i],
            opening_pressure_mmh2o=int(pressure[i]),
            protein_g_per_l=float(protein[i]),
            methylprednisolone_pulse=bool(mpp[i]),
            cyclophosphamide=bool(cyc[i]),
        )
        for i, number in enumerate(numbers)
    ]


def _draw_syndromes(rng: np.random.Generator, intrathecal: np.ndarray) -> list[tuple[NpsleSyndrome, ...]]:
    """Each syndrome independently at its group's rate; a patient left with none gets an assumed one."""
    rates = NPSLE_MARGINALS.syndrome_fraction
    names = list(rates)
    present = np.column_stack(
        [rng.random(len(intrathecal)) < rates[s].per_patient(intrathecal) for s in names]
    )
    fallback = [s for s in names if s not in TABLE_1_SYNDROMES]
    fallback_p = np.array([rates[s].control for s in fallback])
    fallback_p /= fallback_p.sum()
    drawn = []
    for row in present:
        chosen = tuple(s for s, is_present in zip(names, row, strict=True) if is_present)
        drawn.append(chosen or (fallback[rng.choice(len(fallback), p=fallback_p)],))
    return drawn


def _add_patient_records(
    records: Records,
    draw: PatientDraw,
    rng: np.random.Generator,
    *,
    study: Study,
    code_width: int,
    closed: dt.date,
    plan: CoursePlan,
) -> None:
    """Build (unsaved) every record of one patient into ``records``."""
    admission = _draw_admission(draw, rng)
    follow_up = _draw_follow_up(draw, admission, rng, closed=closed)
    patient = _patient(draw, follow_up, study=study, code_width=code_width)
    records[Patient].append(patient)
    records[PatientIdentifier].append(
        PatientIdentifier(
            patient=patient, full_name=_full_name(rng), medical_record_number=draw.medical_record_number
        )
    )
    _add_diagnosis(records, draw, patient, rng)
    _add_lumbar_punctures(records, draw, patient, admission, rng, plan)
    _add_systemic_therapies(records, draw, patient, admission, follow_up, rng)
    _add_outcomes(records, patient, admission, follow_up)


def _draw_admission(draw: PatientDraw, rng: np.random.Generator) -> Admission:
    """LP days of the index admission: an intrathecal course is weekly from the baseline LP."""
    m = NPSLE_MARGINALS
    baseline_day = int(rng.integers(1, 5))
    if draw.intrathecal:
        counts = list(m.injections_per_course)
        injections = counts[rng.choice(len(counts), p=list(m.injections_per_course.values()))]
        lp_days = [baseline_day]
        for _ in range(injections - 1):
            lp_days.append(lp_days[-1] + int(rng.integers(6, 9)))  # weekly, give or take a day
        discharge_day = lp_days[-1] + int(rng.integers(2, 11))
    else:
        lp_days = [baseline_day]
        if rng.random() < m.control_repeat_lp_fraction:
            lp_days.append(baseline_day + int(rng.integers(7, 22)))
        discharge_day = max(lp_days[-1] + 2, int(rng.integers(10, 29)))
    outcomes = list(m.discharge_outcome_fraction)
    p = np.array([m.discharge_outcome_fraction[o].of(draw.intrathecal) for o in outcomes])
    outcome = outcomes[rng.choice(len(outcomes), p=p / p.sum())]
    return Admission(tuple(lp_days), discharge_day, outcome)


def _draw_follow_up(
    draw: PatientDraw, admission: Admission, rng: np.random.Generator, *, closed: dt.date
) -> FollowUp:
    """Relapse or death by proportional hazards; censored by loss to follow-up or the close date."""
    m = NPSLE_MARGINALS
    discharge = draw.index_admission_date + dt.timedelta(days=admission.discharge_day)
    if admission.outcome == DischargeOutcomeCode.DEATH:
        return FollowUp(None, discharge, _death_cause(rng), None)
    hazard = m.event_rate_per_year * math.prod(m.event_hazard_ratio[name] for name in _risk_factors(draw))
    event_years = (-np.log(rng.random()) / hazard) ** (1 / m.event_weibull_shape)
    event = discharge + dt.timedelta(days=max(1, round(event_years * DAYS_PER_YEAR)))
    lost = discharge + dt.timedelta(
        days=30 + round(rng.exponential(m.loss_to_follow_up_mean_years) * DAYS_PER_YEAR)
    )
    censored = min(lost, closed)
    if event > censored:
        return FollowUp(None, None, None, censored)
    if rng.random() < m.death_share_of_first_events:
        return FollowUp(None, event, _death_cause(rng), None)
    if censored > event and rng.random() < m.death_after_relapse_fraction:
        death = event + dt.timedelta(days=int(rng.integers(1, (censored - event).days + 1)))
        return FollowUp(event, death, _death_cause(rng), None)
    return FollowUp(event, None, None, censored)


def _risk_factors(draw: PatientDraw) -> list[str]:
    """The names in ``event_hazard_ratio`` that apply to this patient."""
    present = {
        "intrathecal": draw.intrathecal,
        "acute_confusional_state": NpsleSyndrome.ACUTE_CONFUSIONAL_STATE in draw.syndromes,
        "protein_above_0_5_g_per_l": draw.protein_g_per_l > 0.5,
        "seizure": NpsleSyndrome.SEIZURE in draw.syndromes,
    }
    return [name for name, applies in present.items() if applies]


def _death_cause(rng: np.random.Generator) -> DeathCause:
    sle_related = rng.random() < NPSLE_MARGINALS.sle_related_share_of_deaths
    return DeathCause.SLE_RELATED if sle_related else DeathCause.INFECTION


def _patient(draw: PatientDraw, follow_up: FollowUp, *, study: Study, code_width: int) -> Patient:
    """The patient, with any death already on it (the bulk path has no patient_record_death step)."""
    birth_date = draw.index_admission_date - dt.timedelta(days=round(draw.age_years * DAYS_PER_YEAR))
    return Patient(
        study=study,
        site=draw.site,
        study_code=f"NP{draw.number:0{code_width}d}",
        sex=Sex.MALE if draw.male else Sex.FEMALE,
        birth_date=birth_date,
        birth_year=birth_date.year,
        index_admission_date=draw.index_admission_date,
        death_date=follow_up.death_date,
        death_cause=follow_up.death_cause or "",
    )


def _full_name(rng: np.random.Generator) -> str:
    given = "".join(GIVEN_NAME_SYLLABLES[i] for i in rng.integers(0, len(GIVEN_NAME_SYLLABLES), size=2))
    return f"{SURNAMES[rng.integers(0, len(SURNAMES))]} {given.capitalize()}"


def _add_diagnosis(records: Records, draw: PatientDraw, patient: Patient, rng: np.random.Generator) -> None:
    """Diagnosis, syndromes and an index SLEDAI-2K that agree with each other."""
    m = NPSLE_MARGINALS
    ticked = {SLEDAI_DESCRIPTOR_BY_SYNDROME[s] for s in draw.syndromes if s in SLEDAI_DESCRIPTOR_BY_SYNDROME}
    if NpsleSyndrome.HEADACHE in draw.syndromes and rng.random() < m.lupus_headache_given_headache:
        ticked.add("lupus_headache")
    mean_points = m.sledai_other_points_mean.of(draw.intrathecal)
    ticked |= _other_sledai_descriptors(rng, round(rng.gamma(4.0, mean_points / 4.0)))
    diagnosis = _diagnosis(draw, patient, ticked, rng)
    records[NpsleDiagnosis].append(diagnosis)
    for syndrome in draw.syndromes:
        onset = draw.index_admission_date - dt.timedelta(days=int(rng.integers(0, 31)))
        records[NpsleManifestation].append(
            NpsleManifestation(diagnosis=diagnosis, syndrome=syndrome, onset_date=onset)
        )
    records[Sledai2kAssessment].append(
        Sledai2kAssessment(
            patient=patient, assessed_on=draw.index_admission_date, **dict.fromkeys(ticked, True)
        )
    )


def _other_sledai_descriptors(rng: np.random.Generator, points: int) -> set[str]:
    """Non-neurological descriptors adding up to about ``points``, commoner ones more likely first."""
    names = list(SLEDAI_OTHER_DESCRIPTORS)
    prevalence = np.array([SLEDAI_OTHER_DESCRIPTORS[name][0] for name in names])
    order = np.argsort(-(rng.random(len(names)) ** (1 / prevalence)))  # weighted order without replacement
    chosen = set()
    for index in order:
        if points <= 0:
            break
        weight = SLEDAI_OTHER_DESCRIPTORS[names[index]][1]
        if weight <= points:
            chosen.add(names[index])
            points -= weight
    return chosen


def _diagnosis(
    draw: PatientDraw, patient: Patient, ticked: set[str], rng: np.random.Generator
) -> NpsleDiagnosis:
    """Organ involvement and serology consistent with the ticked SLEDAI-2K descriptors.

    The antibody and antiphospholipid rates here are assumed, higher with the feature they go with.
    """
    organs = {
        organ: bool(ticked.intersection(descriptors)) or rng.random() < ORGAN_PREVIOUSLY_INVOLVED_FRACTION
        for organ, descriptors in ORGAN_DESCRIPTORS.items()
    }
    aps = rng.random() < (0.25 if NpsleSyndrome.CEREBROVASCULAR in draw.syndromes else 0.06)
    low_complement = "low_complement" in ticked
    onset_with_npsle = rng.random() < NPSLE_MARGINALS.onset_with_npsle_fraction
    max_duration_months = int((draw.age_years - 10) * 12)
    duration = 0 if onset_with_npsle else min(max_duration_months, 1 + round(rng.lognormal(np.log(36), 0.9)))
    return NpsleDiagnosis(
        patient=patient,
        onset_with_npsle=onset_with_npsle,
        sle_duration_months=duration,
        antiphospholipid_syndrome=aps,
        **organs,
        anti_dsdna=_positive_if("increased_dna_binding" in ticked),
        anti_rrnp=_positive_if(rng.random() < (0.45 if NpsleSyndrome.PSYCHOSIS in draw.syndromes else 0.2)),
        c3_g_per_l=_decimal(rng.uniform(0.25, 0.85) if low_complement else rng.uniform(0.9, 1.5), 3),
        c4_g_per_l=_decimal(rng.uniform(0.02, 0.10) if low_complement else rng.uniform(0.12, 0.35), 3),
        lupus_anticoagulant_ratio=_decimal(rng.uniform(1.3, 2.5) if aps else rng.uniform(0.85, 1.2), 2),
        coombs=_positive_if(rng.random() < (0.2 if organs["haematological"] else 0.05)),
        anti_b2gp1=_positive_if(aps or rng.random() < 0.05),
        anticardiolipin=_positive_if(aps or rng.random() < 0.08),
    )


def _positive_if(condition: bool) -> TestResult:
    return TestResult.POSITIVE if condition else TestResult.NEGATIVE


def _add_lumbar_punctures(
    records: Records,
    draw: PatientDraw,
    patient: Patient,
    admission: Admission,
    rng: np.random.Generator,
    plan: CoursePlan,
) -> None:
    """Baseline LP with full CSF; an intrathecal dose at each course LP; CSF again at the last LP.

    The doses are those the seed protocol proposes, and the course planned from it links each LP.
    """
    injected_lps = []
    m = NPSLE_MARGINALS
    first_pressure = draw.opening_pressure_mmh2o
    last_pressure = (
        first_pressure
        + m.opening_pressure_change_mmh2o.of(draw.intrathecal)
        + (m.opening_pressure_change_sd_mmh2o * rng.standard_normal())
    )
    last_protein = draw.protein_g_per_l * np.exp(
        m.protein_log_change.of(draw.intrathecal) + m.protein_log_change_sd * rng.standard_normal()
    )
    count = len(admission.lp_days)
    for position, day in enumerate(admission.lp_days):
        share = position / (count - 1) if count > 1 else 0.0
        pressure = round(_clamp(first_pressure + share * (last_pressure - first_pressure), 50, 450))
        injected = draw.intrathecal
        headache = injected and rng.random() < m.post_lp_headache_per_injection
        low_icp = injected and rng.random() < m.low_icp_per_injection
        lp = LumbarPuncture(
            patient=patient,
            performed_at=_clinic_time(draw.index_admission_date + dt.timedelta(days=day), rng),
            opening_pressure_mmh2o=pressure,
            closing_pressure_mmh2o=max(40, pressure - int(rng.integers(20, 61))) if pressure >= 80 else None,
            post_lp_headache=headache,
            low_icp=low_icp,
        )
        records[LumbarPuncture].append(lp)
        if position == 0:
            csf = _csf_result(lp, draw.protein_g_per_l, draw.syndromes, rng)
            records[CsfResult].append(csf)
            for test in BASELINE_PATHOGEN_TESTS:
                records[PathogenTest].append(
                    PathogenTest(csf_result=csf, test=test, result=TestResult.NEGATIVE)
                )
        elif position == count - 1:
            records[CsfResult].append(_csf_result(lp, last_protein, (), rng))
        if injected:
            records[IntrathecalDose].extend(
                IntrathecalDose(
                    lumbar_puncture=lp,
                    drug=dose.drug,
                    dose_mg=dose.dose_mg,
                    timing=dose.timing,
                    volume_ml=dose.volume_ml,
                    diluent=dose.diluent,
                    course_number=1,
                )
                for dose in _methotrexate_first(plan.proposed())
            )
            injected_lps.append(lp)
        records[AdverseEvent].extend(_lp_adverse_events(lp, patient, headache, low_icp, rng))
    if injected_lps:
        _add_course(records, patient, admission, injected_lps, plan)


def _methotrexate_first(doses):
    """The doses in the order the generator has always written them (MTX, then DEX): same ids."""
    return sorted(doses, key=lambda dose: dose.drug != IntrathecalDrug.METHOTREXATE)


def _add_course(
    records: Records, patient: Patient, admission: Admission, lps: list[LumbarPuncture], plan: CoursePlan
) -> None:
    """The course planned from the seed protocol, each LP fulfilling its injection; a course shorter
    than the protocol's six injections stopped at discharge (recovered, low ICP, death or other)."""

    protocol, slots = plan.protocol, plan.slots
    start = timezone.localdate(lps[0].performed_at)
    discharged = patient.index_admission_date + dt.timedelta(days=admission.discharge_day)
    course = Course(patient=patient, protocol=protocol, start_date=start)
    if len(lps) == len(slots):
        course.status, course.ended_on = CourseStatus.COMPLETED, timezone.localdate(lps[-1].performed_at)
    else:
        course.status, course.ended_on = CourseStatus.STOPPED, discharged
        if admission.outcome == DischargeOutcomeCode.DEATH:
            course.stop_reason = StopReason.DEATH
        elif lps[-1].low_icp:
            course.stop_reason = StopReason.LOW_ICP
        elif admission.outcome == DischargeOutcomeCode.EXACERBATION:
            course.stop_reason, course.stop_note = (
                StopReason.OTHER,
                "no improvement; discharged without more injections",
            )
        else:
            course.stop_reason = StopReason.RECOVERED
    records[Course].append(course)
    proposed = plan.proposed()
    components = [ComponentFact(c.drug, c.timing, c.cap_mg) for c in plan.components]
    previous_day, previous_at = None, None
    for sequence, slot in enumerate(slots, start=1):
        planned_date = start if previous_day is None else previous_day + dt.timedelta(days=slot.gap_days)
        injection = PlannedInjection(
            course=course,
            sequence=sequence,
            phase=slot.phase,
            planned_date=planned_date,
            proposed_doses=[dose.to_json() for dose in proposed],
        )
        if sequence <= len(lps):
            lp = lps[sequence - 1]
            day = timezone.localdate(lp.performed_at)
            found = deviations(
                proposed,
                [GivenDose(d.drug, d.dose_mg, d.timing) for d in proposed],
                planned_date=planned_date,
                given_date=day,
                window_days=slot.phase.window_days,
            )
            injection.lumbar_puncture = lp
            injection.status = InjectionStatus.CHANGED if found else InjectionStatus.GIVEN
            injection.deviation = "; ".join(found)
            injection.deviation_reason = "Demo data: scheduling" if found else ""
            context = InjectionContext(
                performed_at=lp.performed_at,
                doses=[DoseEntry(d.drug, d.dose_mg, d.timing) for d in proposed],
                opening_pressure_mmh2o=lp.opening_pressure_mmh2o,
                protocol_label=str(protocol),
                components=components,
                phase_label=slot.phase.name.lower(),
                min_interval_hours=slot.phase.min_interval_hours,
                proposed=proposed,
                previous_injection_at=previous_at,
            )
            for finding in evaluate(context):
                if finding.code != SafetyCheck.LOW_ICP:
                    raise ValueError(f"{patient}: the demo course breaks its protocol: {finding.message}")
                records[SafetyOverride].append(
                    SafetyOverride(
                        lumbar_puncture=lp,
                        check_code=finding.code,
                        finding=finding.message,
                        reason=LOW_ICP_OVERRIDE,
                        overridden_by=plan.actor,
                        overridden_at=lp.performed_at,
                    )
                )
            previous_day, previous_at = day, lp.performed_at
        else:
            injection.status = InjectionStatus.CANCELLED
            injection.deviation_reason = f"Course stopped: {StopReason(course.stop_reason).label}"
            previous_day = planned_date
        records[PlannedInjection].append(injection)


def _clinic_time(day: dt.date, rng: np.random.Generator) -> dt.datetime:
    """A time in clinic hours (08:00–17:00) on ``day``, in the clinic's time zone."""
    minute = int(rng.integers(8 * 60, 17 * 60))
    return dt.datetime.combine(
        day, dt.time(minute // 60, minute % 60), tzinfo=timezone.get_current_timezone()
    )


def _csf_result(
    lp: LumbarPuncture, protein_g_per_l: float, syndromes: tuple[NpsleSyndrome, ...], rng: np.random.Generator
) -> CsfResult:
    """Routine CSF: mostly normal cells, glucose and chloride; pleocytosis with aseptic meningitis."""
    meningitis = NpsleSyndrome.ASEPTIC_MENINGITIS in syndromes
    wbc = rng.lognormal(np.log(40 if meningitis else 2), 0.8)
    traumatic_tap = rng.random() < 0.1
    return CsfResult(
        lumbar_puncture=lp,
        wbc_1e6_per_l=_decimal(round(wbc), 1),
        rbc_1e6_per_l=_decimal(round(rng.lognormal(np.log(60), 1.0)) if traumatic_tap else 0, 1),
        protein_g_per_l=_decimal(_clamp(protein_g_per_l, 0.05, 5.0), 3),
        glucose_mmol_per_l=_decimal(_clamp(rng.normal(3.3, 0.5), 1.8, 6.0), 2),
        chloride_mmol_per_l=_decimal(_clamp(rng.normal(123, 3), 110, 135), 1),
        cytology=CsfCytology.NORMAL,
        protein_upper_limit_g_per_l=CSF_PROTEIN_UPPER_G_PER_L,
        glucose_lower_limit_mmol_per_l=CSF_GLUCOSE_LOWER_MMOL_PER_L,
        chloride_lower_limit_mmol_per_l=CSF_CHLORIDE_LOWER_MMOL_PER_L,
        wbc_upper_limit_1e6_per_l=CSF_WBC_UPPER_1E6_PER_L,
    )


def _lp_adverse_events(
    lp: LumbarPuncture, patient: Patient, headache: bool, low_icp: bool, rng: np.random.Generator
) -> list[AdverseEvent]:
    """CTCAE events for the LP's complications, attributed to the procedure."""
    day = lp.performed_at.date()
    events = []
    for present, term, grade in (
        (headache, CtcaeTerm.HEADACHE, 1 if rng.random() < 0.7 else 2),
        (low_icp, CtcaeTerm.INTRACRANIAL_HYPOTENSION, 2 if rng.random() < 0.6 else 1),
    ):
        if present:
            onset = day + dt.timedelta(days=int(rng.integers(0, 2)))
            resolved = onset + dt.timedelta(days=int(rng.integers(2, 8)))
            if patient.death_date:
                resolved = min(resolved, patient.death_date)
            events.append(
                AdverseEvent(
                    patient=patient,
                    lumbar_puncture=lp,
                    ctcae_term=term,
                    grade=grade,
                    onset_date=onset,
                    resolution_date=resolved,
                    attribution=Attribution.LUMBAR_PUNCTURE,
                )
            )
    return events


def _add_systemic_therapies(
    records: Records,
    draw: PatientDraw,
    patient: Patient,
    admission: Admission,
    follow_up: FollowUp,
    rng: np.random.Generator,
) -> None:
    """Induction during the index admission; maintenance from discharge runs on to death or last contact."""
    m = NPSLE_MARGINALS
    admitted = draw.index_admission_date
    discharged = admitted + dt.timedelta(days=admission.discharge_day)
    last_known = follow_up.death_date or follow_up.last_contact_date
    alive_at_discharge = admission.outcome != DischargeOutcomeCode.DEATH

    def therapy(
        category: SystemicTherapyCategory, agent: str, dose: str, start_day: int, days: int | None = None
    ) -> SystemicTherapy:
        start = min(admitted + dt.timedelta(days=start_day), discharged)
        end = None if days is None else min(start + dt.timedelta(days=days), last_known)
        if end is None and follow_up.death_date:
            end = follow_up.death_date
        return SystemicTherapy(
            patient=patient,
            category=category,
            agent=agent,
            dose_description=dose,
            start_date=start,
            end_date=end,
        )

    therapies = []
    pulse_day = int(rng.integers(0, 4))
    if draw.methylprednisolone_pulse:
        dose = "1000 mg/day ×3 days" if rng.random() < 0.7 else "500 mg/day ×3 days"
        therapies.append(
            therapy(
                SystemicTherapyCategory.METHYLPREDNISOLONE_PULSE,
                "methylprednisolone",
                dose,
                pulse_day,
                days=2,
            )
        )
    if rng.random() < m.oral_glucocorticoid_fraction:
        start_day = pulse_day + 3 if draw.methylprednisolone_pulse else 0
        therapies.append(
            therapy(
                SystemicTherapyCategory.ORAL_GLUCOCORTICOID,
                "prednisone",
                "1 mg/kg/day, then tapered",
                start_day,
            )
        )
    if draw.cyclophosphamide:
        therapies.append(
            therapy(
                SystemicTherapyCategory.CYCLOPHOSPHAMIDE,
                "cyclophosphamide",
                "0.4 g IV every 2 weeks",
                int(rng.integers(3, 15)),
                days=182,
            )
        )
    elif alive_at_discharge and rng.random() < m.mycophenolate_fraction_without_cyclophosphamide:
        therapies.append(
            therapy(
                SystemicTherapyCategory.MYCOPHENOLATE,
                "mycophenolate mofetil",
                "1 g twice daily",
                admission.discharge_day,
            )
        )
    if rng.random() < m.ivig_fraction:
        therapies.append(
            therapy(
                SystemicTherapyCategory.IVIG,
                "human normal immunoglobulin",
                "0.4 g/kg/day ×5 days",
                int(rng.integers(1, 11)),
                days=4,
            )
        )
    if rng.random() < m.rituximab_fraction:
        therapies.append(
            therapy(
                SystemicTherapyCategory.RITUXIMAB,
                "rituximab",
                "375 mg/m² weekly ×4",
                int(rng.integers(5, 21)),
                days=21,
            )
        )
    records[SystemicTherapy].extend(therapies)


def _add_outcomes(records: Records, patient: Patient, admission: Admission, follow_up: FollowUp) -> None:
    """Discharge outcome and the follow-up events the survival analysis reads."""
    discharged = patient.index_admission_date + dt.timedelta(days=admission.discharge_day)
    records[DischargeOutcome].append(
        DischargeOutcome(patient=patient, outcome=admission.outcome, discharge_date=discharged)
    )
    for event_type, day in (
        (FollowUpEventType.NPSLE_RELAPSE, follow_up.relapse_date),
        (FollowUpEventType.DEATH, follow_up.death_date),
        (FollowUpEventType.LAST_CONTACT, follow_up.last_contact_date),
    ):
        if day is not None:
            records[FollowUpEvent].append(
                FollowUpEvent(patient=patient, event_type=event_type, event_date=day)
            )


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(float(value), low), high)


def _decimal(value: float, places: int) -> Decimal:
    """A float as a Decimal with the field's number of places (full_clean refuses more)."""
    return Decimal(f"{value:.{places}f}")
