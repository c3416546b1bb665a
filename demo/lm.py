"""The LM demo cohort: the 41 patients of a published study of intrathecal chemotherapy (its Table 3).

Each row of ``fixtures/lm_nsclc_41.csv`` becomes a full case record: tissue and CSF driver mutations,
prior and concurrent systemic therapy, lumbar punctures with intrathecal pemetrexed (IP) or
methotrexate (IM) following the study protocol, a response assessment, and follow-up events placed
so that iPFS and OS rebuilt from the records give back the table's months and censoring.

What the table publishes is reproduced exactly. What the paper publishes only per group (per
intrathecal drug, per systemic regimen, or for the whole cohort) is met exactly by a seeded draw of
which patients carry it (``PUBLISHED_BY_DRUG``, ``PUBLISHED_MYELOSUPPRESSION``, ``AGE_MEDIAN``…):
sex, age group, injections per patient, the Ommaya reservoir, MRI and CSF cytology at diagnosis and
the adverse events. The rest is synthetic and seeded (calendar dates, CSF values, pressures), so every
load is identical. ECOG and brain metastases were published only as group counts and are used as
prognostic factors in the paper's Cox models; they stay missing rather than invented. Months are
converted with 30.4375 days (registry.timeline).
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from analytics.datasets.lm import INTRATHECAL_NOTATION, MUTATION_NOTATION, TABLE3_AGENTS, systemic_regimen
from protocols.choices import SafetyCheck, StopReason
from protocols.planning import injection_days as planned_days
from protocols.seed import seed_protocol
from protocols.selectors import next_injection
from protocols.services import course_start, course_stop, injection_record
from registry.choices import (
    Attribution,
    ClinicalResponse,
    CsfCytology,
    CtcaeTerm,
    DeathCause,
    DoseTiming,
    DriverMutation,
    EanoEsmoType,
    FollowUpEventType,
    IntrathecalDrug,
    LmMriPattern,
    LpRoute,
    MriChange,
    NeurologicalChange,
    NsclcHistology,
    PathogenTestType,
    Sex,
    Specimen,
    SystemicTherapyCategory,
    TestResult,
)
from registry.models import (
    AdverseEvent,
    CsfResult,
    FollowUpEvent,
    IntrathecalDose,
    LmDiagnosis,
    LumbarPuncture,
    MutationFinding,
    PathogenTest,
    Patient,
    ResponseAssessment,
    Study,
    SystemicTherapy,
)
from registry.services import patient_enrol, patient_record_death, record_save
from registry.timeline import months_to_days

CSV_PATH = Path(settings.BASE_DIR) / "fixtures" / "lm_nsclc_41.csv"
SEED = 41
REASON = "Demo data: LM cohort (published table)"

#: The seed protocol of each intrathecal arm (protocols/fixtures/seed_protocols.json): twice weekly
#: in month 1, weekly in month 2, then every 4 weeks; pemetrexed 10 mg + 5 mg per injection to 50 mg,
#: one step back after grade 3 myelosuppression; methotrexate 12 mg; DEX 2.5 mg before and after.
ARM_PROTOCOLS = {IntrathecalDrug.PEMETREXED: "lm-pemetrexed", IntrathecalDrug.METHOTREXATE: "lm-methotrexate"}
STEP_BACK_OVERRIDE = "Demo data: grade ≥3 myelosuppression since the last dose; counts recovering, dose as the protocol proposes"


@dataclass(frozen=True)
class GroupFacts:
    """What the paper publishes for the patients of one intrathecal drug (Table 1 and its Results)."""

    male: int
    age_60_plus: int
    mri_negative: int
    cytology_not_examined: int
    #: Injections per patient: one distribution with the published total and median (no more is published).
    injections: tuple[int, ...]


#: Table 1: male IP 14 / IM 3, age ≥ 60 IP 11 / IM 3, MRI negative IP 9 / IM 0, CSF cytology unknown in
#: one IM patient (Table 1 prints "7 positive, 1 unknown" for the 7 IM patients; its p = 0.376 is the
#: Yates χ² of 6 + 1). Treatment: 287 IP injections (median 8), 38 IM (median 5); 325 in all, per
#: patient median 7, range 2–22.
PUBLISHED_BY_DRUG = {
    IntrathecalDrug.PEMETREXED: GroupFacts(
        male=14,
        age_60_plus=11,
        mri_negative=9,
        cytology_not_examined=0,
        injections=(2, 3, 3, 4, 4, 5, 5, 5, 6, 6, 6, 7, 7, 7, 7, 7, 8, 8)
        + (8, 8, 9, 9, 10, 10, 10, 11, 11, 12, 12, 13, 14, 14, 14, 22),
    ),
    IntrathecalDrug.METHOTREXATE: GroupFacts(
        male=3, age_60_plus=3, mri_negative=0, cytology_not_examined=1, injections=(2, 3, 4, 5, 6, 8, 10)
    ),
}
#: Results: median age 56 years, range 37–73.
AGE_MEDIAN, AGE_YOUNGEST, AGE_OLDEST = 56, 37, 73
#: Methods: "only three patients received IC through an Ommaya catheter".
OMMAYA_PATIENTS = 3

#: Table 5 and the Safety section, per systemic regimen during IC: one entry per patient with
#: myelosuppression — (worst leukopenia grade, worst thrombocytopenia grade, both in one episode).
#: Leukopenia 15 and thrombocytopenia 9 patients; 6 had both, 3 of them at once, so 18 patients in
#: all; 11 had grade ≥ 3 (7 leukopenia, 4 thrombocytopenia; 6 on chemotherapy, 5 on targeted therapy).
PUBLISHED_MYELOSUPPRESSION: dict[str, tuple[tuple[int | None, int | None, bool], ...]] = {
    "chemotherapy": (
        (1, 1, True),
        (2, 2, True),
        (1, 4, False),
        (1, None, False),
        (2, None, False),
        (3, None, False),
        (3, None, False),
        (3, None, False),
        (4, None, False),
        (None, 4, False),
    ),
    "targeted": (
        (1, 1, True),
        (2, 1, False),
        (2, 3, False),
        (3, None, False),
        (3, None, False),
        (4, None, False),
        (None, 2, False),
        (None, 4, False),
    ),
}
#: Table 5 "EHA": raised hepatic aminotransferases, grade 1, in one patient on systemic chemotherapy.
LIVER_ENZYMES_RAISED = ("chemotherapy", 1)
#: A laboratory value in each CTCAE v5 grade (×10⁹/L; ALT in U/L against an upper limit of 40).
LAB_VALUE_BY_GRADE = {
    CtcaeTerm.WBC_DECREASED: {1: "3.4", 2: "2.4", 3: "1.5", 4: "0.8"},
    CtcaeTerm.PLATELET_DECREASED: {1: "98", 2: "62", 3: "38", 4: "18"},
    CtcaeTerm.ALT_INCREASED: {1: "76"},
}
LAB_LIMITS = {
    CtcaeTerm.WBC_DECREASED: {"lab_lower_limit": Decimal("4.0")},
    CtcaeTerm.PLATELET_DECREASED: {"lab_lower_limit": Decimal("125")},
    CtcaeTerm.ALT_INCREASED: {"lab_upper_limit": Decimal("40")},
}

MUTATION_CODES: dict[str, DriverMutation] = {
    text: DriverMutation(code) for code, text in MUTATION_NOTATION.items()
} | {"19Del": DriverMutation.EGFR_19DEL}

#: Agents named in the table → (category, agent as recorded): the analytics vocabulary of Table 3.
AGENTS = TABLE3_AGENTS
INTRATHECAL_CODES = {code: IntrathecalDrug(drug) for drug, code in INTRATHECAL_NOTATION.items()}

NEURO = {
    "Improved": NeurologicalChange.IMPROVED,
    "Stable": NeurologicalChange.STABLE,
    "Worse": NeurologicalChange.WORSE,
}
MRI = {"Improved": MriChange.IMPROVED, "Stable": MriChange.STABLE, "Not review": MriChange.NOT_REVIEWED}
RESPONSE = {
    "Response": ClinicalResponse.RESPONSE,
    "Stable": ClinicalResponse.STABLE,
    "PD": ClinicalResponse.PROGRESSION,
}


@dataclass(frozen=True)
class Survival:
    months: float
    censored: bool

    @classmethod
    def parse(cls, text: str) -> Survival:
        text = text.strip()
        return cls(float(text.rstrip("+")), text.endswith("+"))

    @property
    def days(self) -> int:
        return months_to_days(self.months)


@dataclass(frozen=True)
class Agent:
    category: SystemicTherapyCategory
    agent: str
    dose_description: str = ""


@dataclass(frozen=True)
class LmRow:
    """One published patient, parsed."""

    number: int
    tissue_mutations: tuple[DriverMutation, ...]
    csf_mutations: tuple[DriverMutation, ...]
    prior_lines: tuple[tuple[Agent, ...], ...]
    concurrent: tuple[Agent, ...]
    it_drug: IntrathecalDrug
    neuro: NeurologicalChange
    mri: MriChange
    response: ClinicalResponse
    ipfs: Survival
    os: Survival


def parse_mutations(text: str) -> tuple[DriverMutation, ...]:
    """'EGFR 19Del/T790M' → (19del, T790M); 'EGFR 19Del, MET amplification' → (19del, MET amp)."""
    tokens = [t.strip() for part in text.split(",") for t in part.split("/")]
    return tuple(MUTATION_CODES[t] for t in tokens if t)


def parse_agents(text: str) -> tuple[Agent, ...]:
    """'Osimertinib(160 mg/day) + IP + BEV' → the systemic agents (the intrathecal code is read apart)."""
    agents = []
    for raw in text.split("+"):
        token = raw.strip()
        dose = ""
        if "(" in token:
            token, dose = token.split("(", 1)
            token, dose = token.strip(), dose.rstrip(")").strip()
        if token in INTRATHECAL_CODES or token in ("", "No"):
            continue
        # 'PC Sintilimab' is written without its '+': split a combination the table left joined.
        names = [token] if token in AGENTS else token.split()
        for name in names:
            if name not in AGENTS:
                raise ValueError(f"unknown agent {name!r} in {text!r}")
            category, agent = AGENTS[name]
            agents.append(Agent(category, agent, dose))
    return tuple(agents)


def parse_row(row: dict[str, str]) -> LmRow:
    regimen = row["systemic_during_ic"]
    it_codes = [code for code in INTRATHECAL_CODES if code in [t.strip() for t in regimen.split("+")]]
    if len(it_codes) != 1:
        raise ValueError(f"patient {row['patient']}: expected one intrathecal drug in {regimen!r}")
    prior = row["prior_systemic"]
    return LmRow(
        number=int(row["patient"]),
        tissue_mutations=parse_mutations(row["gene_mutation"]),
        csf_mutations=parse_mutations(row["csf_gene_mutation"]),
        prior_lines=tuple(parse_agents(line) for line in prior.split(",") if line.strip() not in ("", "No")),
        concurrent=parse_agents(regimen),
        it_drug=INTRATHECAL_CODES[it_codes[0]],
        neuro=NEURO[row["neuro_assessment"]],
        mri=MRI[row["mri"]],
        response=RESPONSE[row["response"]],
        ipfs=Survival.parse(row["ipfs"]),
        os=Survival.parse(row["os"]),
    )


def read_rows(path: Path = CSV_PATH) -> list[LmRow]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [parse_row(row) for row in csv.DictReader(handle)]


def arm_protocol(drug: IntrathecalDrug, *, actor: User | None = None):
    """The active version of the seed protocol of an intrathecal arm (installed when missing)."""

    return seed_protocol(ARM_PROTOCOLS[drug], actor=actor)


def injection_days(stop_day: int, protocol=None) -> list[int]:
    """Protocol injection days strictly before ``stop_day`` (progression, death or last contact)."""

    protocol = protocol or arm_protocol(IntrathecalDrug.PEMETREXED)
    return planned_days(protocol.ordered_phases(), before_day=stop_day)


def at_clinic_time(day: dt.date, hour: int = 10) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, 0)))


def treatment_days(row: LmRow) -> int:
    """Days intrathecal therapy can run: to LM progression when it came, else to death or last contact."""
    return row.ipfs.days if not row.ipfs.censored else row.os.days


@dataclass(frozen=True)
class AdverseEventPlan:
    term: CtcaeTerm
    grade: int
    after_injection: int  # index of the injection the event followed


@dataclass(frozen=True)
class PatientPlan:
    """The published group facts one patient carries (drawn so that each group's counts are the paper's)."""

    sex: Sex
    age: int
    injections: int
    ommaya: bool
    mri_positive: bool
    cytology_examined: bool
    adverse_events: tuple[AdverseEventPlan, ...]


def draw_plans(rows: list[LmRow], rng: random.Random, capacity: dict[int, int]) -> dict[int, PatientPlan]:
    """Which patients carry each published group fact; ``capacity``: protocol injections each could get."""
    arms = {drug: [row for row in rows if row.it_drug == drug] for drug in PUBLISHED_BY_DRUG}
    counts = _injection_counts(arms, capacity, rng)
    older = {
        row.number
        for drug, arm in arms.items()
        for row in rng.sample(arm, PUBLISHED_BY_DRUG[drug].age_60_plus)
    }
    old_ages, young_ages = _ages(rng, len(older), len(rows) - len(older))
    rng.shuffle(old_ages)
    rng.shuffle(young_ages)
    ages = iter(old_ages), iter(young_ages)
    males, mri_negative, not_examined = set(), set(), set()
    for drug, arm in arms.items():
        facts = PUBLISHED_BY_DRUG[drug]
        males |= {row.number for row in rng.sample(arm, facts.male)}
        mri_negative |= {row.number for row in rng.sample(arm, facts.mri_negative)}
        not_examined |= {row.number for row in rng.sample(arm, facts.cytology_not_examined)}
    ommaya = {row.number for row in rng.sample(rows, OMMAYA_PATIENTS)}
    events = _adverse_events(rows, counts, rng)
    return {
        row.number: PatientPlan(
            sex=Sex.MALE if row.number in males else Sex.FEMALE,
            age=next(ages[0] if row.number in older else ages[1]),
            injections=counts[row.number],
            ommaya=row.number in ommaya,
            mri_positive=row.number not in mri_negative,
            cytology_examined=row.number not in not_examined,
            adverse_events=tuple(events.get(row.number, ())),
        )
        for row in rows
    }


def _injection_counts(
    arms: dict[IntrathecalDrug, list[LmRow]], capacity: dict[int, int], rng: random.Random
) -> dict[int, int]:
    """The published counts of each arm, each to a random patient whose calendar has room for it
    (the largest first). How many injections a patient had is not published, so it is not tied to
    how long they lived: the paper's number of IC is no strong predictor of OS (p = 0.202)."""
    counts = {}
    for drug, arm in arms.items():
        wanted = sorted(PUBLISHED_BY_DRUG[drug].injections, reverse=True)
        if len(wanted) != len(arm):
            raise ValueError(f"{drug}: {len(wanted)} injection counts for {len(arm)} patients")
        free = list(arm)
        for count in wanted:
            room = [row for row in free if capacity[row.number] >= count]
            if not room:
                raise ValueError(f"{drug}: no patient's calendar has room for {count} injections")
            chosen = rng.choice(room)
            free.remove(chosen)
            counts[chosen.number] = count
    return counts


def _ages(rng: random.Random, older: int, younger: int) -> tuple[list[int], list[int]]:
    """Ages with the published median and range: ``older`` aged 60 or more, ``younger`` below 60."""
    below_median = (older + younger - 1) // 2  # patients younger than the median patient
    if not older or younger <= below_median:
        raise ValueError("the published median age must fall among the patients under 60")
    old = [AGE_OLDEST] + [rng.randint(60, AGE_OLDEST) for _ in range(older - 1)]
    young = (
        [AGE_YOUNGEST]
        + [rng.randint(AGE_YOUNGEST, AGE_MEDIAN) for _ in range(below_median - 1)]
        + [AGE_MEDIAN]
        + [rng.randint(AGE_MEDIAN, 59) for _ in range(younger - below_median - 1)]
    )
    return old, young


def _adverse_events(
    rows: list[LmRow], counts: dict[int, int], rng: random.Random
) -> dict[int, list[AdverseEventPlan]]:
    """Table 5's events on patients of the right systemic regimen, each after one of their injections."""
    by_regimen: dict[str, list[LmRow]] = {}
    for row in rows:
        by_regimen.setdefault(systemic_regimen(a.category for a in row.concurrent), []).append(row)
    plans: dict[int, list[AdverseEventPlan]] = {}
    for regimen, patients in PUBLISHED_MYELOSUPPRESSION.items():
        for row, (leukopenia, thrombocytopenia, together) in zip(
            rng.sample(by_regimen[regimen], len(patients)), patients, strict=True
        ):
            first, second = rng.sample(range(counts[row.number]), 2)
            events = plans.setdefault(row.number, [])
            if leukopenia:
                events.append(AdverseEventPlan(CtcaeTerm.WBC_DECREASED, leukopenia, first))
            if thrombocytopenia:
                when = first if together or not leukopenia else second
                events.append(AdverseEventPlan(CtcaeTerm.PLATELET_DECREASED, thrombocytopenia, when))
    regimen, grade = LIVER_ENZYMES_RAISED
    row = rng.choice(by_regimen[regimen])
    plans.setdefault(row.number, []).append(
        AdverseEventPlan(CtcaeTerm.ALT_INCREASED, grade, rng.randrange(counts[row.number]))
    )
    return plans


class LmPatientBuilder:
    """Turns one parsed row into registry records through the services."""

    def __init__(
        self, row: LmRow, *, plan: PatientPlan, study: Study, rng: random.Random, actor: User
    ) -> None:
        self.row, self.plan, self.study, self.rng, self.actor = row, plan, study, rng, actor
        self.first_dose = dt.date(2019, 1, 7) + dt.timedelta(days=rng.randrange(0, 900))
        self.lm_diagnosed = self.first_dose - dt.timedelta(days=rng.randrange(3, 15))
        self.ipfs_date = self.first_dose + dt.timedelta(days=row.ipfs.days)
        self.os_date = self.first_dose + dt.timedelta(days=row.os.days)
        progression_first = not row.ipfs.censored and row.ipfs.days < row.os.days
        self.progression_date = self.ipfs_date if progression_first else None
        # Intrathecal therapy stops at progression, else runs to death or last contact.
        self.treatment_end = self.first_dose + dt.timedelta(days=treatment_days(row))

    def build(self) -> Patient:
        patient = self._enrol()
        self._diagnosis(patient)
        self._prior_therapy(patient)
        self._concurrent_therapy(patient)
        self._intrathecal_course(patient)
        self._response(patient)
        self._follow_up(patient)
        return patient

    def _enrol(self) -> Patient:
        site = self.study.sites.get()
        admitted = self.lm_diagnosed - dt.timedelta(days=self.rng.randrange(0, 3))
        return patient_enrol(
            study=self.study,
            site=site,
            study_code=f"LM{self.row.number:03d}",
            sex=self.plan.sex,
            birth_year=admitted.year - self.plan.age,  # the dataset's age from a birth year: the year apart
            index_admission_date=admitted,
            full_name=f"LM demo patient {self.row.number}",
            medical_record_number=f"CC{410000 + self.row.number}",
            actor=self.actor,
            reason=REASON,
        )

    def _diagnosis(self, patient: Patient) -> None:
        diagnosis = record_save(
            LmDiagnosis(
                patient=patient,
                histology=NsclcHistology.ADENOCARCINOMA,  # "All patients were diagnosed with lung adenocarcinoma"
                primary_diagnosis_date=self.lm_diagnosed
                - dt.timedelta(days=365 * (1 + len(self.row.prior_lines))),
                lm_diagnosis_date=self.lm_diagnosed,
                **self._diagnostic_findings(),
            ),
            actor=self.actor,
            reason=REASON,
        )
        for specimen, mutations in (
            (Specimen.TISSUE, self.row.tissue_mutations),
            (Specimen.CSF, self.row.csf_mutations),
        ):
            for mutation in mutations:
                record_save(
                    MutationFinding(diagnosis=diagnosis, specimen=specimen, mutation=mutation),
                    actor=self.actor,
                    reason=REASON,
                )

    def _diagnostic_findings(self) -> dict:
        """MRI and CSF cytology at diagnosis, and the EANO–ESMO type they make."""
        if not self.plan.cytology_examined and not self.plan.mri_positive:
            raise ValueError(
                f"LM{self.row.number:03d}: LM needs malignant cells or MRI signs to be diagnosed"
            )
        pattern = self.rng.choice([LmMriPattern.A, LmMriPattern.B, LmMriPattern.C])
        return {
            "mri_pattern": pattern if self.plan.mri_positive else LmMriPattern.D,
            "csf_cytology": CsfCytology.MALIGNANT if self.plan.cytology_examined else CsfCytology.NOT_DONE,
            "eano_esmo_type": EanoEsmoType.TYPE_I if self.plan.cytology_examined else EanoEsmoType.TYPE_II,
        }

    def _prior_therapy(self, patient: Patient) -> None:
        """Prior lines back to back, each ending before LM was diagnosed, the latest last."""
        end = self.lm_diagnosed - dt.timedelta(days=self.rng.randrange(7, 30))
        for line in reversed(self.row.prior_lines):
            start = end - dt.timedelta(days=self.rng.randrange(90, 330))
            for agent in line:
                one_day = agent.category in (SystemicTherapyCategory.SURGERY,)
                record_save(
                    SystemicTherapy(
                        patient=patient,
                        category=agent.category,
                        agent=agent.agent,
                        dose_description=agent.dose_description,
                        start_date=start,
                        end_date=start if one_day else end,
                    ),
                    actor=self.actor,
                    reason=REASON,
                )
            end = start - dt.timedelta(days=self.rng.randrange(7, 30))

    def _concurrent_therapy(self, patient: Patient) -> None:
        """The regimen given with intrathecal therapy, from the first dose to progression (or ongoing)."""
        end = self.progression_date or (None if self.row.os.censored else self.os_date)
        for agent in self.row.concurrent:
            record_save(
                SystemicTherapy(
                    patient=patient,
                    category=agent.category,
                    agent=agent.agent,
                    dose_description=agent.dose_description,
                    start_date=self.first_dose,
                    end_date=end,
                ),
                actor=self.actor,
                reason=REASON,
            )
        if self.row.it_drug == IntrathecalDrug.PEMETREXED:
            self._vitamin_supplementation(patient, end)

    def _vitamin_supplementation(self, patient: Patient, end: dt.date | None) -> None:
        start = self.first_dose - dt.timedelta(days=self.rng.randrange(7, 15))
        for category, agent, dose in (
            (SystemicTherapyCategory.FOLIC_ACID, "folic acid", "400 µg daily"),
            (SystemicTherapyCategory.VITAMIN_B12, "vitamin B12", "1,000 µg IM every 9 weeks"),
        ):
            record_save(
                SystemicTherapy(
                    patient=patient,
                    category=category,
                    agent=agent,
                    dose_description=dose,
                    start_date=start,
                    end_date=end,
                ),
                actor=self.actor,
                reason=REASON,
            )

    def _intrathecal_course(self, patient: Patient) -> None:
        """A course planned from the arm's seed protocol; each LP gives the plan's next injection.

        The patient gets the plan's number of injections, from the protocol's calendar up to
        progression (or death or last contact); the course stops after the last of them.
        """
        protocol = arm_protocol(self.row.it_drug, actor=self.actor)
        calendar = injection_days((self.treatment_end - self.first_dose).days, protocol)
        days = calendar[: self.plan.injections]
        route = LpRoute.OMMAYA if self.plan.ommaya else LpRoute.LUMBAR
        course = course_start(
            patient=patient, protocol=protocol, start_date=self.first_dose, actor=self.actor, reason=REASON
        )
        recheck, planned = False, next_injection(patient)
        for index, day in enumerate(days):
            performed = self.first_dose + dt.timedelta(days=day)
            if recheck:  # an adverse event just recorded may change the proposal (a step back)
                planned = next_injection(patient)
            if planned is None or planned.injection.planned_date != performed:
                raise ValueError(
                    f"LM{self.row.number:03d}: the plan and the protocol's days disagree on day {day}"
                )
            csf = self._csf(first=index == 0) if index % 4 == 0 else None
            outcome = injection_record(
                lp=LumbarPuncture(
                    patient=patient,
                    performed_at=at_clinic_time(performed),
                    route=route,
                    opening_pressure_mmh2o=self.rng.randrange(90, 300, 5),
                ),
                csf=CsfResult(**csf) if csf else None,
                pathogen_tests=[PathogenTest(**test) for test in self._pathogen_tests()]
                if index == 0
                else [],
                doses=[IntrathecalDose(**dose) for dose in self._doses(planned.doses)],
                overrides={
                    SafetyCheck.CYTOPENIA: STEP_BACK_OVERRIDE,
                    SafetyCheck.PLATELETS: STEP_BACK_OVERRIDE,
                }
                if recheck
                else {},
                actor=self.actor,
                reason=REASON,
            )
            planned = outcome.next
            events = [event for event in self.plan.adverse_events if event.after_injection == index]
            for event in events:
                self._adverse_event(patient, outcome.lumbar_puncture, event, performed)
            recheck = bool(events)
        self._end_course(course, stopped_early=len(days) < len(calendar), last_day=days[-1])

    def _end_course(self, course, *, stopped_early: bool, last_day: int) -> None:
        """Stopped after the last injection when the patient had fewer than the calendar allowed, else at
        progression or death; at the last contact the published follow-up ends."""

        day = min(self.treatment_end, self.os_date)
        if stopped_early:
            reason, note = StopReason.OTHER, "no further intrathecal injections wanted"
            day = self.first_dose + dt.timedelta(days=last_day + 1)
        elif self.progression_date:
            reason, day, note = StopReason.PROGRESSION, self.progression_date, ""
        elif not self.row.os.censored:
            reason, note = StopReason.DEATH, ""
        else:
            reason, note = StopReason.OTHER, "follow-up ended at the last contact"
        course_stop(
            course=course, ended_on=day, stop_reason=reason, stop_note=note, actor=self.actor, reason=REASON
        )

    def _doses(self, proposed) -> list[dict]:
        """The proposed doses in the LP's order: DEX before, the arm's drug, DEX after."""
        return [
            {
                "drug": dose.drug,
                "dose_mg": dose.dose_mg,
                "timing": dose.timing,
                **({"volume_ml": dose.volume_ml} if dose.volume_ml is not None else {}),
                **({"diluent": dose.diluent} if dose.diluent else {}),
                **({"course_number": 1} if dose.timing == DoseTiming.WITH else {}),
            }
            for dose in proposed
        ]

    def _csf(self, *, first: bool) -> dict:
        rng = self.rng
        return {
            "wbc_1e6_per_l": Decimal(rng.randrange(1, 40)),
            "protein_g_per_l": Decimal(rng.randrange(30, 160)) / 100,
            "glucose_mmol_per_l": Decimal(rng.randrange(150, 380)) / 100,
            "chloride_mmol_per_l": Decimal(rng.randrange(1150, 1290)) / 10,
            "cytology": CsfCytology.NOT_DONE
            if not self.plan.cytology_examined
            else CsfCytology.MALIGNANT
            if (first or rng.random() < 0.5)
            else CsfCytology.NORMAL,
            "protein_upper_limit_g_per_l": Decimal("0.45"),
        }

    @staticmethod
    def _pathogen_tests() -> list[dict]:
        return [
            {"test": PathogenTestType.GRAM_STAIN, "result": TestResult.NEGATIVE},
            {"test": PathogenTestType.CULTURE, "result": TestResult.NEGATIVE},
        ]

    def _adverse_event(self, patient: Patient, lp, event: AdverseEventPlan, performed: dt.date) -> None:
        """A published adverse event two days after an injection, resolved ten days later (or at death)."""
        last_day = None if self.row.os.censored else self.os_date
        onset = min(performed + dt.timedelta(days=2), last_day or dt.date.max)
        resolved = min(onset + dt.timedelta(days=10), last_day or dt.date.max)
        liver = event.term == CtcaeTerm.ALT_INCREASED
        record_save(
            AdverseEvent(
                patient=patient,
                lumbar_puncture=lp,
                ctcae_term=event.term,
                grade=event.grade,
                lab_value=Decimal(LAB_VALUE_BY_GRADE[event.term][event.grade]),
                **LAB_LIMITS[event.term],
                onset_date=onset,
                resolution_date=resolved,
                attribution=Attribution.SYSTEMIC_THERAPY if liver else Attribution.INTRATHECAL_THERAPY,
            ),
            actor=self.actor,
            reason=REASON,
        )

    def _response(self, patient: Patient) -> None:
        """Assessed after induction and consolidation (day 56), or at progression when that came first."""
        if self.row.response == ClinicalResponse.PROGRESSION:
            assessed = self.ipfs_date
        else:
            assessed = min(self.first_dose + dt.timedelta(days=56), self.treatment_end)
        record_save(
            ResponseAssessment(
                patient=patient,
                assessed_on=assessed,
                neurological=self.row.neuro,
                mri=self.row.mri,
                clinical_response=self.row.response,
            ),
            actor=self.actor,
            reason=REASON,
        )

    def _follow_up(self, patient: Patient) -> None:
        if self.progression_date:
            record_save(
                FollowUpEvent(
                    patient=patient,
                    event_type=FollowUpEventType.LM_PROGRESSION,
                    event_date=self.progression_date,
                ),
                actor=self.actor,
                reason=REASON,
            )
        if self.row.os.censored:
            record_save(
                FollowUpEvent(
                    patient=patient, event_type=FollowUpEventType.LAST_CONTACT, event_date=self.os_date
                ),
                actor=self.actor,
                reason=REASON,
            )
        else:
            patient_record_death(
                patient=patient,
                death_date=self.os_date,
                cause=DeathCause.MALIGNANCY,
                actor=self.actor,
                reason=REASON,
            )


@transaction.atomic
def load_lm_cohort(*, study: Study, actor: User, progress: Callable[[int], None] | None = None) -> int:
    """Load the 41 published patients into ``study``; returns the number created."""
    rng = random.Random(SEED)
    rows = read_rows()
    protocols = {drug: arm_protocol(drug, actor=actor) for drug in ARM_PROTOCOLS}
    capacity = {row.number: len(injection_days(treatment_days(row), protocols[row.it_drug])) for row in rows}
    plans = draw_plans(rows, rng, capacity)
    for done, row in enumerate(rows, start=1):
        LmPatientBuilder(row, plan=plans[row.number], study=study, rng=rng, actor=actor).build()
        if progress:
            progress(done)
    return len(rows)
