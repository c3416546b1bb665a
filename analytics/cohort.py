"""Analysis datasets: one row per patient, built from the registry's records.

``build_dataset(study)`` reads each kind of record once (``values()`` queries, no per-patient
queries, so it scales to 100,000 patients) and derives the analysis variables with pandas. Every
column is described in the data dictionary (name, label, unit, derivation) that the README and the
reports show. Missing values stay missing: a patient without a baseline CSF protein has NaN there,
and each analysis states how many rows it excluded.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analytics.errors import AnalysisError
from protocols.choices import DUE, FULFILLED, CourseStatus, InjectionStatus
from protocols.models import Course, PlannedInjection
from registry.choices import (
    EGFR_MUTATIONS,
    BilagGrade,
    ClinicalResponse,
    DiseaseArea,
    DoseTiming,
    DriverMutation,
    FollowUpEventType,
    IntrathecalDrug,
    NpsleSyndrome,
    Specimen,
    SystemicTherapyCategory,
    TestResult,
)
from registry.models import (
    AdverseEvent,
    CarTInfusion,
    CrsAssessment,
    DischargeOutcome,
    FollowUpEvent,
    IcansAssessment,
    IntrathecalDose,
    LmDiagnosis,
    LumbarPuncture,
    MutationFinding,
    NpsleDiagnosis,
    NpsleManifestation,
    Patient,
    ResponseAssessment,
    Sledai2kAssessment,
    Study,
    SystemicTherapy,
)
from registry.timeline import DAYS_PER_MONTH, DAYS_PER_YEAR

#: Prior systemic therapy classes the LM analyses describe (before the LM diagnosis).
PRIOR_LM_THERAPIES = (
    SystemicTherapyCategory.EGFR_TKI_GEN1,
    SystemicTherapyCategory.EGFR_TKI_GEN2,
    SystemicTherapyCategory.EGFR_TKI_GEN3,
    SystemicTherapyCategory.CHEMOTHERAPY,
    SystemicTherapyCategory.BEVACIZUMAB,
    SystemicTherapyCategory.IMMUNOTHERAPY,
)
RAISED_ICP_MMH2O = 180
RAISED_PROTEIN_G_PER_L = 0.5
#: Without a discharge date, therapy "during the index admission" means within this many days.
ADMISSION_WINDOW_DAYS = 30


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    unit: str
    derivation: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "label": self.label, "unit": self.unit, "derivation": self.derivation}


def _v(name: str, label: str, unit: str, derivation: str) -> Variable:
    return Variable(name, label, unit, derivation)


COMMON_VARIABLES = [
    _v("patient_id", "Patient (registry id)", "", "Patient primary key"),
    _v("study_code", "Study code", "", "Pseudonymous code within the study"),
    _v("site", "Site", "", "Code of the enrolling site"),
    _v("sex_male", "Male sex", "0/1", "1 if sex is male"),
    _v(
        "age",
        "Age at index",
        "years",
        "(index admission − birth date) / 365.25; from the birth year when no date",
    ),
    _v("index_date", "Index admission", "date", "Date of the index admission"),
    _v("intrathecal", "Intrathecal therapy", "0/1", "1 if any intrathecal dose is recorded"),
    _v(
        "it_dose_count",
        "Intrathecal injections",
        "count",
        "Lumbar punctures / Ommaya taps with ≥1 intrathecal dose",
    ),
    *(
        _v(
            f"cum_{drug.value}_mg",
            f"Cumulative intrathecal {drug.label.lower()}",
            "mg",
            f"Sum of all intrathecal {drug.label.lower()} doses (0 if never given)",
        )
        for drug in IntrathecalDrug
        if drug != IntrathecalDrug.OTHER
    ),
    # The protocol schedule (protocols app): courses planned from a protocol, and what was given.
    _v("it_protocol", "Intrathecal protocol", "category", "Code and version of the first course's protocol"),
    _v(
        "planned_injections",
        "Planned injections due",
        "count",
        "Injections of the courses that fell due: given, changed or missed (not those cancelled when a "
        "course stopped, nor those still ahead); 0 without a course",
    ),
    _v("given_injections", "Planned injections given", "count", "Planned injections a lumbar puncture gave"),
    _v(
        "changed_injections",
        "Injections changed from the plan",
        "count",
        "Given injections whose date (outside its window) or doses differed from the plan",
    ),
    _v("missed_injections", "Injections missed", "count", "Planned injections recorded as missed"),
    _v("adherence", "Adherence to the plan", "fraction", "given_injections / planned_injections"),
    _v(
        "relative_dose_intensity",
        "Relative dose intensity",
        "fraction",
        "mg given / mg proposed over the injections due, for the protocol's drugs other than "
        "dexamethasone (dexamethasone when it is the only drug)",
    ),
    _v(
        "dose_reductions",
        "Dose reductions",
        "count",
        "Injections at which a drug's dose was lower than at the previous injection of that drug and timing",
    ),
    _v(
        "course_end",
        "How the last course ended",
        "category",
        "completed, or the stop reason (recovered, low_icp, intolerance, progression, death, other); "
        "missing while it runs",
    ),
    _v(
        "icp_baseline", "Opening pressure, first LP", "mmH2O", "Opening pressure at the first LP that has one"
    ),
    _v(
        "icp_after",
        "Opening pressure, last LP",
        "mmH2O",
        "At the last later LP that has one; missing with a single LP",
    ),
    _v("protein_baseline", "CSF protein, first LP", "g/L", "CSF protein at the first LP that has one"),
    _v(
        "protein_after",
        "CSF protein, last LP",
        "g/L",
        "At the last later LP that has one; missing with a single LP",
    ),
    _v("inc_icp", "Raised opening pressure", "0/1", f"icp_baseline > {RAISED_ICP_MMH2O} mmH2O"),
    _v("inc_protein", "Raised CSF protein", "0/1", f"protein_baseline > {RAISED_PROTEIN_G_PER_L} g/L"),
    _v("low_icp", "Low-ICP complication", "0/1", "1 if any LP records low intracranial pressure"),
    _v("ae_grade3plus", "Grade ≥3 adverse event", "0/1", "1 if any CTCAE grade ≥3 adverse event is recorded"),
    *(
        _v(
            category.value,
            category.label,
            "0/1",
            "1 if the therapy overlaps the treatment window (see the study's window variable)",
        )
        for category in SystemicTherapyCategory
    ),
]

NPSLE_VARIABLES = [
    *(_v(s.value, s.label, "0/1", "1 if this ACR-1999 syndrome is recorded") for s in NpsleSyndrome),
    _v("n_syndromes", "Number of NPSLE syndromes", "count", "ACR-1999 syndromes recorded"),
    _v("multiple_syndromes", "More than one syndrome", "0/1", "n_syndromes ≥ 2"),
    _v(
        "headache_only",
        "Headache as the only syndrome",
        "0/1",
        "Only 'headache' recorded (sensitivity analyses)",
    ),
    _v("sledai", "SLEDAI-2K", "points", "Total of the first SLEDAI-2K assessment"),
    _v(
        "days_to_first_it",
        "Index admission to the first intrathecal dose",
        "days",
        "Date of the first intrathecal dose − index admission date",
    ),
    _v("onset_with_npsle", "SLE onset with NPSLE", "0/1", "As recorded"),
    _v("sle_duration_months", "SLE duration", "months", "As recorded"),
    *(
        _v(organ, organ.replace("_", " ").capitalize(), "0/1", "Organ involvement as recorded")
        for organ in NpsleDiagnosis.SLE_ORGANS
    ),
    *(
        _v(
            test,
            test.replace("_", " "),
            "0/1",
            "1 positive, 0 negative, missing if not done or indeterminate",
        )
        for test in ("anti_dsdna", "anti_rrnp", "coombs", "anti_b2gp1", "anticardiolipin")
    ),
    _v("c3_g_per_l", "C3", "g/L", "As recorded"),
    _v("c4_g_per_l", "C4", "g/L", "As recorded"),
    _v("lupus_anticoagulant_ratio", "Lupus anticoagulant", "ratio", "As recorded"),
    _v("bilag_np_grade", "BILAG-2004 NP grade", "A–E", "As recorded"),
    _v("discharge_outcome", "Outcome at discharge", "category", "complete / partial / exacerbation / death"),
    _v("relapse", "NPSLE relapse in follow-up", "0/1", "1 if a relapse needing hospitalisation is recorded"),
    _v("death", "Death in follow-up", "0/1", "1 if the patient has a date of death"),
    _v(
        "time_years",
        "Time to death or relapse",
        "years",
        "Index admission to the first of death or relapse, else to last contact; / 365.25",
    ),
    _v("event", "Death or relapse", "0/1", "1 if time_years ends in death or relapse"),
    _v("treatment_window", "Therapy window", "", "Index admission to discharge (or 30 days)"),
]

LM_VARIABLES = [
    _v(
        "it_drug",
        "Intrathecal drug",
        "category",
        "The main intrathecal drug (most injections, dexamethasone aside)",
    ),
    _v("ecog", "ECOG performance status", "0–5", "At LM diagnosis"),
    _v("ecog_ge2", "ECOG ≥2", "0/1", "ecog ≥ 2"),
    _v("histology", "NSCLC histology", "category", "As recorded"),
    _v(
        "mutation_class",
        "Driver mutation (tissue)",
        "category",
        "EGFR / ALK / MET / other / wild-type / unknown",
    ),
    _v("egfr_mutant", "EGFR-mutant", "0/1", "Any EGFR mutation in tissue; missing if unknown"),
    _v("csf_mutation_detected", "Driver found in CSF", "0/1", "Missing when the CSF was not tested"),
    _v("brain_metastases", "Brain metastases", "0/1", "As recorded"),
    *(
        _v(
            f"prior_{category.value}",
            f"Prior {category.label.lower()}",
            "0/1",
            "1 if started before the LM diagnosis date",
        )
        for category in PRIOR_LM_THERAPIES
    ),
    _v(
        "ipfs_months",
        "Intracranial progression-free survival",
        "months",
        f"First intrathecal dose to the first of LM progression or death, else last contact; / {DAYS_PER_MONTH}",
    ),
    _v("ipfs_event", "LM progression or death", "0/1", "1 if ipfs_months ends in progression or death"),
    _v(
        "os_months",
        "Overall survival",
        "months",
        f"First intrathecal dose to death, else last contact; / {DAYS_PER_MONTH}",
    ),
    _v("os_event", "Death", "0/1", "1 if os_months ends in death"),
    _v(
        "clinical_response",
        "Clinical response",
        "category",
        "Overall response at the first assessment after IT",
    ),
    _v(
        "responder",
        "Clinical response (yes/no)",
        "0/1",
        "clinical_response == response; missing if not evaluable",
    ),
    _v("neurological_response", "Neurological change", "category", "First assessment after IT"),
    _v("mri_response", "MRI change", "category", "First assessment after IT"),
    _v("max_pemetrexed_mg", "Highest pemetrexed dose", "mg", "Largest single intrathecal pemetrexed dose"),
    _v(
        "days_to_first_it",
        "LM diagnosis to the first intrathecal dose",
        "days",
        "Date of the first intrathecal dose − LM diagnosis date",
    ),
    _v("treatment_window", "Therapy window", "", "First to last intrathecal dose"),
]

ICANS_VARIABLES = [
    _v("underlying_malignancy", "Underlying malignancy", "category", "Of the first CAR-T infusion"),
    _v("car_t_target", "CAR-T target", "category", "Of the first CAR-T infusion"),
    _v("car_t_product", "CAR-T product", "", "Of the first CAR-T infusion"),
    _v("days_infusion_to_icans", "Infusion to ICANS onset", "days", "ICANS onset − infusion date"),
    _v("crs_max_grade", "Worst CRS grade", "0–5", "Highest computed ASTCT CRS grade"),
    _v("icans_max_grade", "Worst ICANS grade", "0–4", "Highest computed ASTCT ICANS grade"),
    _v(
        "grade_before_idm",
        "ICANS grade before IDM",
        "0–4",
        "Worst grade from onset to the first intrathecal dose",
    ),
    _v(
        "ice_before_idm",
        "ICE score before IDM",
        "0–10",
        "Lowest ICE from onset to the first intrathecal dose",
    ),
    _v(
        "grade_after_idm",
        "ICANS grade after IDM",
        "0–4",
        "First assessment ≥48 h after the first intrathecal dose",
    ),
    _v(
        "ice_after_idm",
        "ICE score after IDM",
        "0–10",
        "First assessment ≥48 h after the first intrathecal dose",
    ),
    _v(
        "hours_onset_to_idm",
        "ICANS onset to first IDM",
        "hours",
        "First assessment with grade ≥1 to the first LP with an intrathecal dose",
    ),
    _v(
        "days_to_first_it",
        "ICANS onset to the first intrathecal dose",
        "days",
        "hours_onset_to_idm / 24",
    ),
    _v("remission", "ICANS remission", "0/1", "1 if a response assessment records remission"),
    _v(
        "days_to_remission", "Time to remission", "days", "ICANS onset date to the first remission assessment"
    ),
    _v("car_t_baseline", "CSF CAR-T cells, first LP", "cells/µL", "First LP that has a value"),
    _v("car_t_after", "CSF CAR-T cells, last LP", "cells/µL", "Last later LP that has a value"),
    _v("il6_baseline", "CSF IL-6, first LP", "pg/mL", "First LP that has a value"),
    _v("il6_after", "CSF IL-6, last LP", "pg/mL", "Last later LP that has a value"),
    _v("treatment_window", "Therapy window", "", "ICANS onset to remission or last contact"),
]

DICTIONARIES: dict[str, list[Variable]] = {
    DiseaseArea.NPSLE: COMMON_VARIABLES + NPSLE_VARIABLES,
    DiseaseArea.LM: COMMON_VARIABLES + LM_VARIABLES,
    DiseaseArea.ICANS: COMMON_VARIABLES + ICANS_VARIABLES,
}


def data_dictionary(study: Study | str) -> list[Variable]:
    """The variables ``build_dataset`` returns for this study, in column order."""
    return DICTIONARIES[_resolve_study(study).disease_area]


def _resolve_study(study: Study | str) -> Study:
    if isinstance(study, Study):
        return study
    try:
        return Study.objects.get(code=study)
    except Study.DoesNotExist:
        raise AnalysisError(f"no study with the code {study!r}") from None


def build_dataset(
    study: Study | str, *, filters: Mapping[str, Any] | None = None, patients=None
) -> pd.DataFrame:
    """One row per patient of the study, with the columns of its data dictionary.

    ``filters`` narrows the cohort (see ``apply_filters``); ``patients`` optionally restricts the
    source queryset (the report layer passes the patients a user may see). The frame's ``attrs``
    carry the study code, the number of patients screened and the data dictionary.
    """
    study = _resolve_study(study)
    source = Patient.objects.filter(study=study) if patients is None else patients.filter(study=study)
    frame = _patients(source)
    if not frame.empty:
        doses = _doses(source)
        frame = _add_common(frame, source, doses)
        frame = _add_schedule(frame, source, doses)
        builder = {DiseaseArea.NPSLE: _add_npsle, DiseaseArea.LM: _add_lm, DiseaseArea.ICANS: _add_icans}
        frame = builder[study.disease_area](frame, source, doses)
        frame = _add_therapy_flags(frame, source)
    columns = [v.name for v in DICTIONARIES[study.disease_area]]
    frame = frame.reindex(columns=columns)
    screened = len(frame)
    if filters:
        frame = apply_filters(frame, filters)
    frame = frame.reset_index(drop=True)
    frame.attrs.update(
        study=study.code,
        disease_area=study.disease_area,
        screened=screened,
        dictionary=[v.to_dict() for v in DICTIONARIES[study.disease_area]],
    )
    return frame


# --- building blocks -------------------------------------------------------------------------


def _frame(queryset, columns: list[str], **renamed) -> pd.DataFrame:
    rows = list(queryset.values_list(*columns, *renamed.values()))
    return pd.DataFrame(rows, columns=[*columns, *renamed.keys()])


def _patients(source) -> pd.DataFrame:
    frame = _frame(
        source.order_by("pk"),
        ["pk", "study_code", "sex", "birth_date", "birth_year", "index_admission_date", "death_date"],
        site="site__code",
    )
    frame = frame.rename(columns={"pk": "patient_id", "index_admission_date": "index_date"})
    frame["sex_male"] = (frame["sex"] == "M").astype(int)
    by_date = (
        pd.to_datetime(frame["index_date"]) - pd.to_datetime(frame["birth_date"])
    ).dt.days / DAYS_PER_YEAR
    by_year = pd.to_datetime(frame["index_date"]).dt.year - frame["birth_year"]
    frame["age"] = by_date.where(frame["birth_date"].notna(), by_year.astype(float))
    return frame.set_index("patient_id", drop=False)


def _first_last(values: pd.DataFrame, column: str) -> tuple[pd.Series, pd.Series]:
    """Per patient: the value at the first row that has one, and at the last later row that has one."""
    present = values.dropna(subset=[column]).sort_values(["patient_id", "when"])
    grouped = present.groupby("patient_id")[column]
    first = grouped.first()
    last = grouped.last().where(grouped.size() > 1)
    return first.astype(float), last.astype(float)


def _lumbar_punctures(source) -> pd.DataFrame:
    return _frame(
        LumbarPuncture.objects.filter(patient__in=source),
        ["patient_id", "performed_at", "opening_pressure_mmh2o", "low_icp"],
        protein="csf__protein_g_per_l",
        car_t="csf__car_t_cells_per_ul",
        il6="csf__il6_pg_per_ml",
    ).rename(columns={"performed_at": "when"})


def _doses(source) -> pd.DataFrame:
    doses = _frame(
        IntrathecalDose.objects.filter(lumbar_puncture__patient__in=source),
        ["drug", "dose_mg", "timing"],
        patient_id="lumbar_puncture__patient_id",
        lp_id="lumbar_puncture_id",
        when="lumbar_puncture__performed_at",
    )
    doses["dose_mg"] = doses["dose_mg"].astype(float)
    return doses


def _add_common(frame: pd.DataFrame, source, doses: pd.DataFrame) -> pd.DataFrame:
    lps = _lumbar_punctures(source)
    for name, column in (("icp", "opening_pressure_mmh2o"), ("protein", "protein")):
        first, last = _first_last(lps, column)
        frame[f"{name}_baseline"] = first
        frame[f"{name}_after"] = last
    frame["inc_icp"] = _flag(frame["icp_baseline"] > RAISED_ICP_MMH2O, frame["icp_baseline"])
    frame["inc_protein"] = _flag(
        frame["protein_baseline"] > RAISED_PROTEIN_G_PER_L, frame["protein_baseline"]
    )
    frame["low_icp"] = (
        lps.groupby("patient_id")["low_icp"].any().reindex(frame.index, fill_value=False).astype(int)
    )

    frame["it_dose_count"] = doses.groupby("patient_id")["lp_id"].nunique().reindex(frame.index, fill_value=0)
    frame["intrathecal"] = (frame["it_dose_count"] > 0).astype(int)
    totals = doses.pivot_table(index="patient_id", columns="drug", values="dose_mg", aggfunc="sum")
    for drug in IntrathecalDrug:
        if drug != IntrathecalDrug.OTHER:
            column = totals[drug.value] if drug.value in totals else pd.Series(dtype=float)
            frame[f"cum_{drug.value}_mg"] = column.reindex(frame.index).fillna(0.0)
    first_dose = doses.groupby("patient_id")["when"].min()
    last_dose = doses.groupby("patient_id")["when"].max()
    frame["first_it_at"] = first_dose.reindex(frame.index)
    frame["last_it_at"] = last_dose.reindex(frame.index)

    severe = AdverseEvent.objects.filter(patient__in=source, grade__gte=3).values_list(
        "patient_id", flat=True
    )
    frame["ae_grade3plus"] = frame.index.isin(set(severe)).astype(int)
    return frame


def _add_schedule(frame: pd.DataFrame, source, doses: pd.DataFrame) -> pd.DataFrame:
    """Planned against given: the courses' injections by status, dose intensity, reductions, ending."""

    injections = _frame(
        PlannedInjection.objects.filter(course__patient__in=source),
        ["status", "proposed_doses", "lumbar_puncture_id"],
        patient_id="course__patient_id",
    )
    by_status = injections.groupby(["patient_id", "status"]).size().unstack(fill_value=0)

    def count(*statuses) -> pd.Series:
        present = [s.value for s in statuses if s.value in by_status.columns]
        return (
            by_status[present].sum(axis=1).reindex(frame.index, fill_value=0)
            if present
            else pd.Series(0, index=frame.index)
        )

    frame["planned_injections"] = count(*DUE).astype(int)
    frame["given_injections"] = count(*FULFILLED).astype(int)
    frame["changed_injections"] = count(InjectionStatus.CHANGED).astype(int)
    frame["missed_injections"] = count(InjectionStatus.MISSED).astype(int)
    due = frame["planned_injections"]
    frame["adherence"] = (frame["given_injections"] / due).where(due > 0)

    # Relative dose intensity: mg given against mg proposed, over the injections due.
    given_mg = doses.groupby(["lp_id", "drug"])["dose_mg"].sum()
    proposed_total: dict[int, float] = {}
    given_total: dict[int, float] = {}
    for row in injections[injections["status"].isin([s.value for s in DUE])].itertuples():
        proposed = row.proposed_doses or []
        drugs = {d["drug"] for d in proposed}
        counted = drugs - {IntrathecalDrug.DEXAMETHASONE.value} or drugs
        proposed_total[row.patient_id] = proposed_total.get(row.patient_id, 0.0) + sum(
            float(d["dose_mg"]) for d in proposed if d["drug"] in counted
        )
        if pd.notna(row.lumbar_puncture_id):
            given_total[row.patient_id] = given_total.get(row.patient_id, 0.0) + sum(
                float(given_mg.get((int(row.lumbar_puncture_id), drug), 0.0)) for drug in counted
            )
    proposed_series = pd.Series(proposed_total, dtype=float).reindex(frame.index)
    frame["relative_dose_intensity"] = (
        pd.Series(given_total, dtype=float).reindex(frame.index).fillna(0.0) / proposed_series
    ).where(proposed_series > 0)

    ordered = doses.sort_values(["patient_id", "drug", "timing", "when"])
    lower = ordered.groupby(["patient_id", "drug", "timing"])["dose_mg"].diff() < 0
    reductions = ordered[lower].groupby("patient_id")["lp_id"].nunique()
    frame["dose_reductions"] = reductions.reindex(frame.index, fill_value=0).astype(int)

    courses = _frame(
        Course.objects.filter(patient__in=source).order_by("start_date", "pk"),
        ["patient_id", "status", "stop_reason"],
        protocol_code="protocol__code",
        protocol_revision="protocol__revision",
    )
    first = courses.groupby("patient_id").first()
    frame["it_protocol"] = (first["protocol_code"] + " v" + first["protocol_revision"].astype(str)).reindex(
        frame.index
    )
    last = courses.groupby("patient_id").last()
    ending = last["stop_reason"].where(last["status"] == CourseStatus.STOPPED.value)
    ending = ending.where(last["status"] != CourseStatus.COMPLETED.value, "completed")
    frame["course_end"] = ending.where(last["status"] != CourseStatus.ACTIVE.value).reindex(frame.index)
    return frame.copy()  # one block again: the study's columns are added one by one after this


def _local_day(value) -> dt.date | None:
    """The date of a dose time (as the iPFS and OS origin takes it)."""
    return value.date() if pd.notna(value) else None


def _flag(condition: pd.Series, source: pd.Series) -> pd.Series:
    """A 0/1 column that stays missing where its source value is missing."""
    return condition.astype(float).where(source.notna())


def _events(source) -> pd.DataFrame:
    return _frame(
        FollowUpEvent.objects.filter(patient__in=source), ["patient_id", "event_type", "event_date"]
    )


def _time_to_event(
    frame: pd.DataFrame, origin: pd.Series, ends: pd.Series, last_contact: pd.Series, days_per_unit: float
) -> tuple[pd.Series, pd.Series]:
    """Time from origin to the event date, else to last contact (censored); missing without either."""
    origin_dates = pd.to_datetime(origin)
    end = pd.to_datetime(ends.reindex(frame.index))
    censor = pd.to_datetime(last_contact.reindex(frame.index))
    event = end.notna()
    stop = end.where(event, censor)
    time = (stop - origin_dates).dt.days / days_per_unit
    return time.where(stop.notna()), event.astype(int).where(stop.notna())


def _add_npsle(frame: pd.DataFrame, source, doses: pd.DataFrame) -> pd.DataFrame:
    syndromes = _frame(
        NpsleManifestation.objects.filter(diagnosis__patient__in=source),
        ["syndrome"],
        patient_id="diagnosis__patient_id",
    )
    for syndrome in NpsleSyndrome:
        ids = set(syndromes.loc[syndromes["syndrome"] == syndrome.value, "patient_id"])
        frame[syndrome.value] = frame.index.isin(ids).astype(int)
    counts = syndromes.groupby("patient_id").size().reindex(frame.index, fill_value=0)
    frame["n_syndromes"] = counts
    frame["multiple_syndromes"] = (counts >= 2).astype(int)
    frame["headache_only"] = ((counts == 1) & (frame[NpsleSyndrome.HEADACHE.value] == 1)).astype(int)

    sledai = _frame(
        Sledai2kAssessment.objects.filter(patient__in=source).order_by("assessed_on"), ["patient_id", "total"]
    )
    frame["sledai"] = sledai.groupby("patient_id")["total"].first().reindex(frame.index).astype(float)

    organ = list(NpsleDiagnosis.SLE_ORGANS)
    serology = ["anti_dsdna", "anti_rrnp", "coombs", "anti_b2gp1", "anticardiolipin"]
    values = [
        "onset_with_npsle",
        "sle_duration_months",
        "c3_g_per_l",
        "c4_g_per_l",
        "lupus_anticoagulant_ratio",
        "bilag_np_grade",
    ]
    diagnosis = _frame(
        NpsleDiagnosis.objects.filter(patient__in=source), ["patient_id", *organ, *serology, *values]
    )
    diagnosis = diagnosis.set_index("patient_id").reindex(frame.index)
    for column in organ + ["onset_with_npsle"]:
        frame[column] = diagnosis[column].map({True: 1, False: 0})
    for column in serology:
        frame[column] = diagnosis[column].map({TestResult.POSITIVE: 1.0, TestResult.NEGATIVE: 0.0})
    for column in ("sle_duration_months", "c3_g_per_l", "c4_g_per_l", "lupus_anticoagulant_ratio"):
        frame[column] = diagnosis[column].astype(float)
    frame["bilag_np_grade"] = diagnosis["bilag_np_grade"].where(
        diagnosis["bilag_np_grade"].isin(BilagGrade.values)
    )

    discharge = _frame(
        DischargeOutcome.objects.filter(patient__in=source), ["patient_id", "outcome", "discharge_date"]
    )
    discharge = discharge.set_index("patient_id").reindex(frame.index)
    frame["discharge_outcome"] = discharge["outcome"]
    window_end = pd.to_datetime(discharge["discharge_date"]).fillna(
        pd.to_datetime(frame["index_date"]) + pd.Timedelta(days=ADMISSION_WINDOW_DAYS)
    )
    frame["window_start"] = pd.to_datetime(frame["index_date"])
    frame["window_end"] = window_end
    frame["treatment_window"] = "index admission to discharge"
    first_dose_day = pd.to_datetime(frame["first_it_at"].map(_local_day))
    frame["days_to_first_it"] = (first_dose_day - pd.to_datetime(frame["index_date"])).dt.days

    events = _events(source)
    relapses = (
        events[events["event_type"] == FollowUpEventType.NPSLE_RELAPSE]
        .groupby("patient_id")["event_date"]
        .min()
    )
    deaths = frame["death_date"].dropna()
    frame["relapse"] = frame.index.isin(relapses.index).astype(int)
    frame["death"] = frame["death_date"].notna().astype(int)
    first_event = pd.concat([pd.to_datetime(relapses), pd.to_datetime(deaths)]).groupby(level=0).min()
    contact = (
        events[events["event_type"] == FollowUpEventType.LAST_CONTACT]
        .groupby("patient_id")["event_date"]
        .max()
    )
    frame["time_years"], frame["event"] = _time_to_event(
        frame, frame["index_date"], first_event, contact, DAYS_PER_YEAR
    )
    return frame


def _main_drug(doses: pd.DataFrame) -> pd.Series:
    """Per patient, the intrathecal drug given most often (dexamethasone counts only when alone)."""
    main = doses[doses["timing"] == DoseTiming.WITH]
    non_dex = main[main["drug"] != IntrathecalDrug.DEXAMETHASONE]
    chosen = non_dex if not non_dex.empty else main
    counts = chosen.groupby(["patient_id", "drug"]).size().reset_index(name="n")
    counts = counts.sort_values(["patient_id", "n", "drug"], ascending=[True, False, True])
    by_patient = counts.drop_duplicates("patient_id").set_index("patient_id")["drug"]
    dex_only = main[~main["patient_id"].isin(non_dex["patient_id"])]
    dex = dex_only.groupby("patient_id")["drug"].first()
    return pd.concat([by_patient, dex[~dex.index.isin(by_patient.index)]])


def _mutation_class(codes: set[str]) -> str:
    if not codes or codes == {DriverMutation.UNKNOWN}:
        return "unknown"
    if codes & EGFR_MUTATIONS:
        return "EGFR"
    if DriverMutation.ALK in codes:
        return "ALK"
    if DriverMutation.MET_AMPLIFICATION in codes:
        return "MET"
    if codes == {DriverMutation.WILD_TYPE}:
        return "wild-type"
    return "other"


def _add_lm(frame: pd.DataFrame, source, doses: pd.DataFrame) -> pd.DataFrame:
    frame["it_drug"] = _main_drug(doses).reindex(frame.index)
    pemetrexed = doses[doses["drug"] == IntrathecalDrug.PEMETREXED]
    frame["max_pemetrexed_mg"] = pemetrexed.groupby("patient_id")["dose_mg"].max().reindex(frame.index)

    diagnosis = _frame(
        LmDiagnosis.objects.filter(patient__in=source),
        ["patient_id", "ecog", "histology", "brain_metastases", "lm_diagnosis_date"],
    )
    diagnosis = diagnosis.set_index("patient_id").reindex(frame.index)
    frame["ecog"] = diagnosis["ecog"].astype(float)
    frame["days_to_first_it"] = (
        pd.to_datetime(frame["first_it_at"].map(_local_day)) - pd.to_datetime(diagnosis["lm_diagnosis_date"])
    ).dt.days
    frame["ecog_ge2"] = _flag(frame["ecog"] >= 2, frame["ecog"])
    frame["histology"] = diagnosis["histology"]
    frame["brain_metastases"] = diagnosis["brain_metastases"].map({True: 1.0, False: 0.0})
    prior = _frame(
        SystemicTherapy.objects.filter(patient__in=source), ["patient_id", "category", "start_date"]
    )
    prior = prior.merge(diagnosis[["lm_diagnosis_date"]], left_on="patient_id", right_index=True)
    prior = prior[pd.to_datetime(prior["start_date"]) < pd.to_datetime(prior["lm_diagnosis_date"])]
    for category in PRIOR_LM_THERAPIES:
        ids = set(prior.loc[prior["category"] == category.value, "patient_id"])
        frame[f"prior_{category.value}"] = frame.index.isin(ids).astype(int)

    mutations = _frame(
        MutationFinding.objects.filter(diagnosis__patient__in=source),
        ["specimen", "mutation"],
        patient_id="diagnosis__patient_id",
    )
    tissue = mutations[mutations["specimen"] == Specimen.TISSUE].groupby("patient_id")["mutation"].agg(set)
    csf = mutations[mutations["specimen"] == Specimen.CSF].groupby("patient_id")["mutation"].agg(set)
    frame["mutation_class"] = [_mutation_class(tissue.get(pid, set())) for pid in frame.index]
    frame["egfr_mutant"] = frame["mutation_class"].map(
        lambda c: np.nan if c == "unknown" else float(c == "EGFR")
    )
    frame["csf_mutation_detected"] = [
        np.nan
        if not csf.get(pid) or csf[pid] == {DriverMutation.UNKNOWN}
        else float(bool(csf[pid] - {DriverMutation.WILD_TYPE, DriverMutation.UNKNOWN}))
        for pid in frame.index
    ]

    origin = frame["first_it_at"].map(lambda t: t.date() if pd.notna(t) else None)
    events = _events(source)
    progression = (
        events[events["event_type"] == FollowUpEventType.LM_PROGRESSION]
        .groupby("patient_id")["event_date"]
        .min()
    )
    deaths = frame["death_date"].dropna()
    contact = (
        events[events["event_type"] == FollowUpEventType.LAST_CONTACT]
        .groupby("patient_id")["event_date"]
        .max()
    )
    ipfs_end = pd.concat([pd.to_datetime(progression), pd.to_datetime(deaths)]).groupby(level=0).min()
    frame["ipfs_months"], frame["ipfs_event"] = _time_to_event(
        frame, origin, ipfs_end, contact, DAYS_PER_MONTH
    )
    frame["os_months"], frame["os_event"] = _time_to_event(
        frame, origin, pd.to_datetime(deaths), contact, DAYS_PER_MONTH
    )

    responses = _frame(
        ResponseAssessment.objects.filter(patient__in=source).order_by("assessed_on"),
        ["patient_id", "assessed_on", "clinical_response", "neurological", "mri"],
    )
    responses = responses.merge(origin.rename("origin").reset_index(), on="patient_id")
    responses = responses[responses["origin"].notna() & (responses["assessed_on"] >= responses["origin"])]
    first = responses.groupby("patient_id").first().reindex(frame.index)
    frame["clinical_response"] = first["clinical_response"].replace("", np.nan)
    evaluable = frame["clinical_response"].notna() & (
        frame["clinical_response"] != ClinicalResponse.NOT_EVALUABLE
    )
    frame["responder"] = (
        (frame["clinical_response"] == ClinicalResponse.RESPONSE).astype(float).where(evaluable)
    )
    frame["neurological_response"] = first["neurological"]
    frame["mri_response"] = first["mri"]

    frame["window_start"] = pd.to_datetime(origin)
    frame["window_end"] = pd.to_datetime(frame["last_it_at"].map(lambda t: t.date() if pd.notna(t) else None))
    frame["treatment_window"] = "first to last intrathecal dose"
    return frame


def _add_icans(frame: pd.DataFrame, source, doses: pd.DataFrame) -> pd.DataFrame:
    infusions = (
        _frame(
            CarTInfusion.objects.filter(patient__in=source).order_by("infusion_date"),
            ["patient_id", "underlying_malignancy", "target", "product", "infusion_date"],
        )
        .groupby("patient_id")
        .first()
        .reindex(frame.index)
    )
    frame["underlying_malignancy"] = infusions["underlying_malignancy"]
    frame["car_t_target"] = infusions["target"]
    frame["car_t_product"] = infusions["product"]

    icans = _frame(
        IcansAssessment.objects.filter(patient__in=source),
        ["patient_id", "assessed_at", "ice_score", "icans_grade"],
    ).sort_values(["patient_id", "assessed_at"])
    crs = _frame(CrsAssessment.objects.filter(patient__in=source), ["patient_id", "crs_grade"])
    frame["crs_max_grade"] = crs.groupby("patient_id")["crs_grade"].max().reindex(frame.index).astype(float)
    frame["icans_max_grade"] = (
        icans.groupby("patient_id")["icans_grade"].max().reindex(frame.index).astype(float)
    )
    onset = icans[icans["icans_grade"] >= 1].groupby("patient_id")["assessed_at"].min().reindex(frame.index)
    first_idm = frame["first_it_at"]
    frame["hours_onset_to_idm"] = (first_idm - onset).dt.total_seconds() / 3600
    frame["days_to_first_it"] = frame["hours_onset_to_idm"] / 24
    frame["days_infusion_to_icans"] = (
        pd.to_datetime(onset.map(lambda t: t.date() if pd.notna(t) else None))
        - pd.to_datetime(infusions["infusion_date"])
    ).dt.days

    timed = icans.merge(
        pd.DataFrame({"onset": onset, "idm": first_idm}), left_on="patient_id", right_index=True
    )
    before = timed[(timed["assessed_at"] >= timed["onset"]) & (timed["assessed_at"] <= timed["idm"])]
    frame["grade_before_idm"] = (
        before.groupby("patient_id")["icans_grade"].max().reindex(frame.index).astype(float)
    )
    frame["ice_before_idm"] = (
        before.groupby("patient_id")["ice_score"].min().reindex(frame.index).astype(float)
    )
    after = timed[timed["assessed_at"] >= timed["idm"] + pd.Timedelta(hours=48)].groupby("patient_id").first()
    frame["grade_after_idm"] = after["icans_grade"].reindex(frame.index).astype(float)
    frame["ice_after_idm"] = after["ice_score"].reindex(frame.index).astype(float)

    remissions = (
        _frame(
            ResponseAssessment.objects.filter(patient__in=source, icans_remission=True),
            ["patient_id", "assessed_on"],
        )
        .groupby("patient_id")["assessed_on"]
        .min()
    )
    frame["remission"] = frame.index.isin(remissions.index).astype(int)
    onset_day = pd.to_datetime(onset.map(lambda t: t.date() if pd.notna(t) else None))
    frame["days_to_remission"] = (pd.to_datetime(remissions.reindex(frame.index)) - onset_day).dt.days

    lps = _lumbar_punctures(source)
    for name in ("car_t", "il6"):
        first, last = _first_last(lps, name)
        frame[f"{name}_baseline"], frame[f"{name}_after"] = first, last

    contact = _events(source)
    contact = (
        contact[contact["event_type"] == FollowUpEventType.LAST_CONTACT]
        .groupby("patient_id")["event_date"]
        .max()
    )
    frame["window_start"] = onset_day
    frame["window_end"] = pd.to_datetime(remissions.reindex(frame.index)).fillna(
        pd.to_datetime(contact.reindex(frame.index))
    )
    frame["treatment_window"] = "ICANS onset to remission or last contact"
    return frame


def _add_therapy_flags(frame: pd.DataFrame, source) -> pd.DataFrame:
    therapies = _frame(
        SystemicTherapy.objects.filter(patient__in=source),
        ["patient_id", "category", "start_date", "end_date"],
    )
    therapies = therapies.merge(frame[["window_start", "window_end"]], left_on="patient_id", right_index=True)
    start, end = pd.to_datetime(therapies["start_date"]), pd.to_datetime(therapies["end_date"])
    overlaps = (start <= therapies["window_end"]) & (end.isna() | (end >= therapies["window_start"]))
    given = therapies[overlaps.fillna(False)]
    for category in SystemicTherapyCategory:
        ids = set(given.loc[given["category"] == category.value, "patient_id"])
        frame[category.value] = frame.index.isin(ids).astype(int)
    return frame


# --- filters ---------------------------------------------------------------------------------

_OPERATORS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def apply_filters(frame: pd.DataFrame, filters: Mapping[str, Any]) -> pd.DataFrame:
    """Narrow a dataset by site, index-date range, syndromes, intrathecal drug or any column.

    Keys: ``site`` (code or list), ``index_from`` / ``index_to`` (dates, inclusive), ``syndromes``
    (patients with any of them), ``it_drug``; any other key is a column compared for equality (a
    scalar), membership (a list) or with an operator (``(">=", 2)``). Unknown columns are refused.
    """
    keep = pd.Series(True, index=frame.index)
    for key, wanted in filters.items():
        if wanted is None or wanted == [] or wanted == "":
            continue
        if key in ("index_from", "index_to"):
            day = dt.date.fromisoformat(wanted) if isinstance(wanted, str) else wanted
            dates = pd.to_datetime(frame["index_date"])
            keep &= dates >= pd.Timestamp(day) if key == "index_from" else dates <= pd.Timestamp(day)
        elif key == "syndromes":
            names = [wanted] if isinstance(wanted, str) else list(wanted)
            unknown = [n for n in names if n not in frame.columns]
            if unknown:
                raise AnalysisError(f"unknown syndrome filter(s): {', '.join(unknown)}")
            keep &= frame[names].eq(1).any(axis=1)
        else:
            if key not in frame.columns:
                raise AnalysisError(f"cannot filter on {key!r}: no such column in this study's dataset")
            keep &= _column_condition(frame[key], key, wanted)
    return frame[keep]


def _column_condition(column: pd.Series, key: str, wanted: Any) -> pd.Series:
    if isinstance(wanted, tuple) and len(wanted) == 2 and wanted[0] in _OPERATORS:
        op, value = wanted
        return _OPERATORS[op](column, value).fillna(False)
    if isinstance(wanted, list | set | frozenset):
        return column.isin(list(wanted))
    return (column == wanted).fillna(False)


__all__ = ["Variable", "apply_filters", "build_dataset", "data_dictionary"]
