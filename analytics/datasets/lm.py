"""The LM dataset's columns: driver mutations, prior therapies, ECOG, intrathecal drug, iPFS and OS."""

from __future__ import annotations

import numpy as np
import pandas as pd

from registry.choices import (
    EGFR_MUTATIONS,
    ClinicalResponse,
    DoseTiming,
    DriverMutation,
    FollowUpEventType,
    IntrathecalDrug,
    Specimen,
    SystemicTherapyCategory,
)
from registry.models import (
    LmDiagnosis,
    MutationFinding,
    ResponseAssessment,
    SystemicTherapy,
)
from registry.timeline import DAYS_PER_MONTH

from .base import _events, _flag, _frame, _local_day, _time_to_event, _v

#: Prior systemic therapy classes the LM analyses describe (before the LM diagnosis).
PRIOR_LM_THERAPIES = (
    SystemicTherapyCategory.EGFR_TKI_GEN1,
    SystemicTherapyCategory.EGFR_TKI_GEN2,
    SystemicTherapyCategory.EGFR_TKI_GEN3,
    SystemicTherapyCategory.CHEMOTHERAPY,
    SystemicTherapyCategory.BEVACIZUMAB,
    SystemicTherapyCategory.IMMUNOTHERAPY,
)
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
