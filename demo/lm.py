"""The LM demo cohort: the 41 patients of a published study of intrathecal chemotherapy (its Table 3).

Each row of ``fixtures/lm_nsclc_41.csv`` becomes a full case record: tissue and CSF driver mutations,
prior and concurrent systemic therapy, lumbar punctures with intrathecal pemetrexed (IP) or
methotrexate (IM) following the study protocol, a response assessment, and follow-up events placed
so that iPFS and OS rebuilt from the records give back the table's months and censoring.

What the table publishes is reproduced exactly. What it does not publish per patient is synthetic
and seeded (so every load is identical): sex, birth year, calendar dates, CSF values, pressures and
the few adverse events. ECOG and brain metastases were not published per patient and stay missing.
Months are converted with 30.4375 days (registry.timeline).
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
    FollowUpEventType,
    IntrathecalDrug,
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
STEP_BACK_OVERRIDE = "Demo data: dose stepped back per protocol after grade 3 neutropenia; counts recovering"

MUTATION_CODES = {
    "EGFR L858R": DriverMutation.EGFR_L858R,
    "EGFR 19Del": DriverMutation.EGFR_19DEL,
    "19Del": DriverMutation.EGFR_19DEL,
    "T790M": DriverMutation.EGFR_T790M,
    "EGFR 20Ins": DriverMutation.EGFR_20INS,
    "EGFR G719A": DriverMutation.EGFR_G719A,
    "EGFR L861Q": DriverMutation.EGFR_L861Q,
    "MET amplification": DriverMutation.MET_AMPLIFICATION,
    "Wild-type": DriverMutation.WILD_TYPE,
    "Unknown": DriverMutation.UNKNOWN,
}

#: Agents named in the table → (category, agent as recorded).
AGENTS: dict[str, tuple[SystemicTherapyCategory, str]] = {
    "Gefitinib": (SystemicTherapyCategory.EGFR_TKI_GEN1, "gefitinib"),
    "Erlotinib": (SystemicTherapyCategory.EGFR_TKI_GEN1, "erlotinib"),
    "Icotinib": (SystemicTherapyCategory.EGFR_TKI_GEN1, "icotinib"),
    "Afatinib": (SystemicTherapyCategory.EGFR_TKI_GEN2, "afatinib"),
    "Osimertinib": (SystemicTherapyCategory.EGFR_TKI_GEN3, "osimertinib"),
    "Almonertinib": (SystemicTherapyCategory.EGFR_TKI_GEN3, "almonertinib"),
    "Savolitinib": (SystemicTherapyCategory.OTHER_TARGETED, "savolitinib (MET inhibitor)"),
    "Anlotinib": (SystemicTherapyCategory.OTHER_TARGETED, "anlotinib"),
    "BEV": (SystemicTherapyCategory.BEVACIZUMAB, "bevacizumab"),
    "Pembrolizumab": (SystemicTherapyCategory.IMMUNOTHERAPY, "pembrolizumab"),
    "Sintilimab": (SystemicTherapyCategory.IMMUNOTHERAPY, "sintilimab"),
    "TC": (SystemicTherapyCategory.CHEMOTHERAPY, "paclitaxel + carboplatin (TC)"),
    "PC": (SystemicTherapyCategory.CHEMOTHERAPY, "pemetrexed + carboplatin (PC)"),
    "DP": (SystemicTherapyCategory.CHEMOTHERAPY, "docetaxel + cisplatin (DP)"),
    "Pemetrexed": (SystemicTherapyCategory.CHEMOTHERAPY, "pemetrexed"),
    "Paclitaxel": (SystemicTherapyCategory.CHEMOTHERAPY, "paclitaxel"),
    "Surgery": (SystemicTherapyCategory.SURGERY, "lung resection"),
    "WBRT": (SystemicTherapyCategory.RADIOTHERAPY, "whole-brain radiotherapy"),
}
INTRATHECAL_CODES = {"IP": IntrathecalDrug.PEMETREXED, "IM": IntrathecalDrug.METHOTREXATE}

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


def arm_protocol(drug: IntrathecalDrug, *, actor=None):
    """The active version of the seed protocol of an intrathecal arm (installed when missing)."""

    return seed_protocol(ARM_PROTOCOLS[drug], actor=actor)


def injection_days(stop_day: int, protocol=None) -> list[int]:
    """Protocol injection days strictly before ``stop_day`` (progression, death or last contact)."""

    protocol = protocol or arm_protocol(IntrathecalDrug.PEMETREXED)
    return planned_days(protocol.ordered_phases(), before_day=stop_day)


def at_clinic_time(day: dt.date, hour: int = 10) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour, 0)))


class LmPatientBuilder:
    """Turns one parsed row into registry records through the services."""

    def __init__(self, row: LmRow, *, study: Study, rng: random.Random, actor) -> None:
        self.row, self.study, self.rng, self.actor = row, study, rng, actor
        self.first_dose = dt.date(2019, 1, 7) + dt.timedelta(days=rng.randrange(0, 900))
        self.lm_diagnosed = self.first_dose - dt.timedelta(days=rng.randrange(3, 15))
        self.ipfs_date = self.first_dose + dt.timedelta(days=row.ipfs.days)
        self.os_date = self.first_dose + dt.timedelta(days=row.os.days)
        progression_first = not row.ipfs.censored and row.ipfs.days < row.os.days
        self.progression_date = self.ipfs_date if progression_first else None
        # Intrathecal therapy stops at progression, else runs to death or last contact.
        self.treatment_end = self.ipfs_date if not row.ipfs.censored else self.os_date

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
        age = self.rng.randint(38, 72)
        return patient_enrol(
            study=self.study,
            site=site,
            study_code=f"LM{self.row.number:03d}",
            sex=self.rng.choice([Sex.FEMALE, Sex.MALE]),
            birth_year=self.lm_diagnosed.year - age,
            index_admission_date=self.lm_diagnosed - dt.timedelta(days=self.rng.randrange(0, 3)),
            full_name=f"LM demo patient {self.row.number}",
            medical_record_number=f"CC{410000 + self.row.number}",
            actor=self.actor,
            reason=REASON,
        )

    def _diagnosis(self, patient: Patient) -> None:
        diagnosis = record_save(
            LmDiagnosis(
                patient=patient,
                histology=NsclcHistology.NSCLC_NOS,
                primary_diagnosis_date=self.lm_diagnosed
                - dt.timedelta(days=365 * (1 + len(self.row.prior_lines))),
                lm_diagnosis_date=self.lm_diagnosed,
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
        """A course planned from the arm's seed protocol; each LP gives the plan's next injection."""

        protocol = arm_protocol(self.row.it_drug, actor=self.actor)
        stop_day = (self.treatment_end - self.first_dose).days
        days = injection_days(stop_day, protocol)
        route = LpRoute.OMMAYA if self.rng.random() < 0.2 else LpRoute.LUMBAR
        # About one pemetrexed patient in six has grade 3 neutropenia after an early injection.
        toxic_after = (
            self.rng.randrange(3, 8)
            if self.row.it_drug == IntrathecalDrug.PEMETREXED and self.rng.random() < 0.17 and len(days) > 8
            else None
        )
        course = course_start(
            patient=patient, protocol=protocol, start_date=self.first_dose, actor=self.actor, reason=REASON
        )
        step_back, planned = False, next_injection(patient)
        for index, day in enumerate(days):
            performed = self.first_dose + dt.timedelta(days=day)
            if step_back:  # the adverse event just recorded changes the proposal
                planned = next_injection(patient)
            if planned is None or planned.injection.planned_date != performed:
                raise ValueError(
                    f"LM{self.row.number:03d}: the plan and the protocol's days disagree on day {day}"
                )
            pressure = self.rng.randrange(90, 300, 5)  # drawn before the CSF, as the seed sequence has it
            csf = self._csf(first=index == 0) if index % 4 == 0 else None
            outcome = injection_record(
                lp=LumbarPuncture(
                    patient=patient,
                    performed_at=at_clinic_time(performed),
                    route=route,
                    opening_pressure_mmh2o=pressure,
                ),
                csf=CsfResult(**csf) if csf else None,
                pathogen_tests=[PathogenTest(**test) for test in self._pathogen_tests()]
                if index == 0
                else [],
                doses=[IntrathecalDose(**dose) for dose in self._doses(planned.doses)],
                overrides={SafetyCheck.CYTOPENIA: STEP_BACK_OVERRIDE} if step_back else {},
                actor=self.actor,
                reason=REASON,
            )
            lp, step_back, planned = outcome.lumbar_puncture, False, outcome.next
            if index == toxic_after:
                self._neutropenia(patient, lp, performed + dt.timedelta(days=2))
                step_back = True
            elif index == 1 and self.rng.random() < 0.25:
                self._post_lp_headache(patient, lp, performed)
        self._end_course(course)

    def _end_course(self, course) -> None:
        """Stopped at progression or death; at the last contact the published follow-up ends."""

        day = min(self.treatment_end, self.os_date)
        if self.progression_date:
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
            "cytology": CsfCytology.MALIGNANT if (first or rng.random() < 0.5) else CsfCytology.NORMAL,
            "protein_upper_limit_g_per_l": Decimal("0.45"),
        }

    @staticmethod
    def _pathogen_tests() -> list[dict]:
        return [
            {"test": PathogenTestType.GRAM_STAIN, "result": TestResult.NEGATIVE},
            {"test": PathogenTestType.CULTURE, "result": TestResult.NEGATIVE},
        ]

    def _neutropenia(self, patient: Patient, lp, onset: dt.date) -> None:
        record_save(
            AdverseEvent(
                patient=patient,
                lumbar_puncture=lp,
                ctcae_term=CtcaeTerm.NEUTROPHIL_DECREASED,
                grade=3,
                lab_value=Decimal("0.8"),
                lab_lower_limit=Decimal("2.0"),
                onset_date=onset,
                resolution_date=onset + dt.timedelta(days=7),
                attribution=Attribution.INTRATHECAL_THERAPY,
            ),
            actor=self.actor,
            reason=REASON,
        )

    def _post_lp_headache(self, patient: Patient, lp, day: dt.date) -> None:
        record_save(
            AdverseEvent(
                patient=patient,
                lumbar_puncture=lp,
                ctcae_term=CtcaeTerm.HEADACHE,
                grade=1,
                onset_date=day,
                resolution_date=day + dt.timedelta(days=2),
                attribution=Attribution.LUMBAR_PUNCTURE,
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
def load_lm_cohort(*, study: Study, actor, progress: Callable[[int], None] | None = None) -> int:
    """Load the 41 published patients into ``study``; returns the number created."""
    rng = random.Random(SEED)
    rows = read_rows()
    for done, row in enumerate(rows, start=1):
        LmPatientBuilder(row, study=study, rng=rng, actor=actor).build()
        if progress:
            progress(done)
    return len(rows)
