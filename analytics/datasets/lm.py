"""The LM dataset's columns: driver mutations, prior therapies, ECOG, intrathecal drug, iPFS and OS.

It also writes the paper's Table 3 columns as text in the paper's notation (``tissue_mutations``,
``systemic_before_ic``, ``systemic_during_ic``, …). Those texts are built only from coded values and a
fixed vocabulary of agents (``TABLE3_AGENTS``): a typed agent name outside it reads as its
category, so no free text typed by staff reaches a report or a download.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from registry.choices import (
    EGFR_MUTATIONS,
    ClinicalResponse,
    CsfCytology,
    DoseTiming,
    DriverMutation,
    FollowUpEventType,
    IntrathecalDrug,
    LmMriPattern,
    LpRoute,
    Specimen,
    SystemicTherapyCategory,
)
from registry.models import (
    CsfResult,
    LmDiagnosis,
    LumbarPuncture,
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
#: Driver mutations in the notation of the paper's Table 3; a code without an entry reads as its label.
MUTATION_NOTATION: dict[str, str] = {
    DriverMutation.EGFR_L858R: "EGFR L858R",
    DriverMutation.EGFR_19DEL: "EGFR 19Del",
    DriverMutation.EGFR_T790M: "T790M",
    DriverMutation.EGFR_20INS: "EGFR 20Ins",
    DriverMutation.EGFR_G719A: "EGFR G719A",
    DriverMutation.EGFR_L861Q: "EGFR L861Q",
    DriverMutation.MET_AMPLIFICATION: "MET amplification",
    DriverMutation.WILD_TYPE: "Wild-type",
    DriverMutation.UNKNOWN: "Unknown",
}
#: Acquired mutations the table writes after the primary one with a slash ("EGFR 19Del/T790M").
SECONDARY_MUTATIONS = frozenset({DriverMutation.EGFR_T790M})

C = SystemicTherapyCategory
#: The agents of the paper's Table 3: its abbreviation → (category, the agent as the registry records it).
TABLE3_AGENTS: dict[str, tuple[SystemicTherapyCategory, str]] = {
    "Gefitinib": (C.EGFR_TKI_GEN1, "gefitinib"),
    "Erlotinib": (C.EGFR_TKI_GEN1, "erlotinib"),
    "Icotinib": (C.EGFR_TKI_GEN1, "icotinib"),
    "Afatinib": (C.EGFR_TKI_GEN2, "afatinib"),
    "Osimertinib": (C.EGFR_TKI_GEN3, "osimertinib"),
    "Almonertinib": (C.EGFR_TKI_GEN3, "almonertinib"),
    "Savolitinib": (C.OTHER_TARGETED, "savolitinib (MET inhibitor)"),
    "Anlotinib": (C.OTHER_TARGETED, "anlotinib"),
    "BEV": (C.BEVACIZUMAB, "bevacizumab"),
    "Pembrolizumab": (C.IMMUNOTHERAPY, "pembrolizumab"),
    "Sintilimab": (C.IMMUNOTHERAPY, "sintilimab"),
    "TC": (C.CHEMOTHERAPY, "paclitaxel + carboplatin (TC)"),
    "PC": (C.CHEMOTHERAPY, "pemetrexed + carboplatin (PC)"),
    "DP": (C.CHEMOTHERAPY, "docetaxel + cisplatin (DP)"),
    "Pemetrexed": (C.CHEMOTHERAPY, "pemetrexed"),
    "Paclitaxel": (C.CHEMOTHERAPY, "paclitaxel"),
    "Surgery": (C.SURGERY, "lung resection"),
    "WBRT": (C.RADIOTHERAPY, "whole-brain radiotherapy"),
}
#: The intrathecal drug as Table 3 writes it inside the regimen.
INTRATHECAL_NOTATION: dict[str, str] = {IntrathecalDrug.PEMETREXED: "IP", IntrathecalDrug.METHOTREXATE: "IM"}
#: A dose the table writes beside an agent, e.g. "Osimertinib(160 mg/day)": a number and a unit only.
DOSE_NOTATION = re.compile(r"\d+(?:\.\d+)? ?(?:mg|µg|g)(?:/(?:day|week))?")
TARGETED = frozenset({C.EGFR_TKI_GEN1, C.EGFR_TKI_GEN2, C.EGFR_TKI_GEN3, C.OTHER_TARGETED})
#: Anticancer therapy named in Table 3's regimen column (supportive care such as folic acid is not).
ANTICANCER = TARGETED | {C.CHEMOTHERAPY, C.IMMUNOTHERAPY, C.BEVACIZUMAB}
#: Prior treatment as Table 3 lists it: anticancer drugs, surgery and radiotherapy.
PRIOR_TREATMENT = ANTICANCER | {C.SURGERY, C.RADIOTHERAPY}
#: The systemic regimen given with intrathecal therapy, as the paper groups it (Table 5): the first
#: that applies. Bevacizumab alone does not make a regimen.
SYSTEMIC_REGIMENS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("targeted", "Targeted therapy", TARGETED),
    ("chemotherapy", "Systemic chemotherapy", frozenset({C.CHEMOTHERAPY})),
    ("immunotherapy", "Immunotherapy", frozenset({C.IMMUNOTHERAPY})),
)
TARGETED_REGIMEN, NO_REGIMEN = SYSTEMIC_REGIMENS[0][0], "none"
MRI_POSITIVE_PATTERNS = frozenset({LmMriPattern.A, LmMriPattern.B, LmMriPattern.C})

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
    _v(
        "driver_mutation",
        "Driver mutation (tissue genotype)",
        "0/1",
        "1 if tissue carries any driver mutation, 0 if wild-type; missing if unknown",
    ),
    _v(
        "mutation_as_treated",
        "Driver mutation (as treated)",
        "0/1",
        "1 if driver_mutation or targeted therapy during IC (treated as mutation-positive), 0 if wild-type "
        "and no targeted therapy; missing otherwise",
    ),
    _v("met_amplification", "MET amplification", "0/1", "1 if found in tissue or CSF"),
    _v("tissue_mutations", "Gene mutation", "text", "Tissue results in the notation of the paper's Table 3"),
    _v(
        "csf_mutations",
        "CSF gene mutation",
        "text",
        "CSF results before IC, same notation; Unknown if not tested",
    ),
    _v("brain_metastases", "Brain metastases", "0/1", "As recorded"),
    _v(
        "csf_cytology_positive",
        "Malignant cells in the CSF",
        "0/1",
        "1 if the diagnosis or any CSF examination found malignant cells, 0 if examined without; "
        "missing if never examined",
    ),
    _v(
        "mri_positive",
        "LM on MRI at diagnosis",
        "0/1",
        "EANO–ESMO MRI pattern A, B or C → 1, D → 0; missing if not recorded",
    ),
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
        "systemic_before_ic",
        "Prior systemic treatment",
        "text",
        "Treatment started before the LM diagnosis: agents started the same day form a line (joined by +), "
        "lines oldest first; Table 3's abbreviations, a category for any other agent; No if none",
    ),
    _v(
        "systemic_during_ic",
        "Systemic treatment during IC",
        "text",
        "Anticancer agents overlapping the therapy window, then IP/IM, then BEV, in the same notation",
    ),
    _v(
        "systemic_regimen",
        "Systemic regimen during IC",
        "category",
        "targeted (any targeted drug in the therapy window), else chemotherapy, else immunotherapy, else none",
    ),
    _v(
        "ommaya",
        "Ommaya reservoir",
        "0/1",
        "1 if any lumbar puncture record went through an Ommaya reservoir",
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


def mutation_text(codes: Iterable[str]) -> str:
    """Coded results in Table 3's notation: 'EGFR 19Del/T790M', 'EGFR 19Del, MET amplification'."""
    present = set(codes)
    parts: list[str] = []
    for code in DriverMutation:
        if code not in present:
            continue
        text = MUTATION_NOTATION.get(code, code.label)
        if code in SECONDARY_MUTATIONS and parts:
            parts[-1] += f"/{text}"
        else:
            parts.append(text)
    return ", ".join(parts) or MUTATION_NOTATION[DriverMutation.UNKNOWN]


_AGENT_NOTATION = {
    (category.value, agent.casefold()): token for token, (category, agent) in TABLE3_AGENTS.items()
}


def agent_text(category: str, agent: str, dose: str = "") -> str:
    """One agent as Table 3 writes it; an agent outside the vocabulary reads as its category."""
    token = _AGENT_NOTATION.get((category, agent.strip().casefold()))
    if token is None:
        return SystemicTherapyCategory(category).label
    dose = dose.strip()
    return f"{token}({dose})" if dose and DOSE_NOTATION.fullmatch(dose) else token


def systemic_regimen(categories: Iterable[str]) -> str:
    """The regimen a set of therapy categories given with intrathecal therapy makes (``SYSTEMIC_REGIMENS``)."""
    given = set(categories)
    return next((code for code, _, members in SYSTEMIC_REGIMENS if given & members), NO_REGIMEN)


def _add_cytology(frame: pd.DataFrame, source, at_diagnosis: pd.Series) -> None:
    """Malignant cells at diagnosis or in any CSF examination; missing when never examined."""
    results = _frame(
        CsfResult.objects.filter(lumbar_puncture__patient__in=source),
        ["cytology"],
        patient_id="lumbar_puncture__patient_id",
    )
    parts = [results.set_index("patient_id")["cytology"], at_diagnosis.dropna().rename("cytology")]
    parts = [part for part in parts if not part.empty]
    readings = pd.concat(parts) if parts else pd.Series(dtype=object)
    examined = readings[readings != CsfCytology.NOT_DONE]
    malignant = set(examined[examined == CsfCytology.MALIGNANT].index)
    frame["csf_cytology_positive"] = [
        (1.0 if pid in malignant else 0.0) if pid in examined.index else np.nan for pid in frame.index
    ]


def _add_mutations(frame: pd.DataFrame, source) -> None:
    mutations = _frame(
        MutationFinding.objects.filter(diagnosis__patient__in=source),
        ["specimen", "mutation"],
        patient_id="diagnosis__patient_id",
    )
    # Dicts by patient id: ``Series.get`` on the empty result of a study without findings looked
    # patients up by position (a pandas FutureWarning), not by id.
    tissue = (
        mutations[mutations["specimen"] == Specimen.TISSUE]
        .groupby("patient_id")["mutation"]
        .agg(set)
        .to_dict()
    )
    csf = (
        mutations[mutations["specimen"] == Specimen.CSF].groupby("patient_id")["mutation"].agg(set).to_dict()
    )
    frame["mutation_class"] = [_mutation_class(tissue.get(pid, set())) for pid in frame.index]
    frame["egfr_mutant"] = frame["mutation_class"].map(
        lambda c: np.nan if c == "unknown" else float(c == "EGFR")
    )
    frame["driver_mutation"] = frame["mutation_class"].map(
        lambda c: np.nan if c == "unknown" else float(c != "wild-type")
    )
    frame["csf_mutation_detected"] = [
        np.nan
        if not csf.get(pid) or csf[pid] == {DriverMutation.UNKNOWN}
        else float(bool(csf[pid] - {DriverMutation.WILD_TYPE, DriverMutation.UNKNOWN}))
        for pid in frame.index
    ]
    met = {pid for pid, codes in (*tissue.items(), *csf.items()) if DriverMutation.MET_AMPLIFICATION in codes}
    frame["met_amplification"] = frame.index.isin(met).astype(int)
    frame["tissue_mutations"] = [mutation_text(tissue.get(pid, ())) for pid in frame.index]
    frame["csf_mutations"] = [mutation_text(csf.get(pid, ())) for pid in frame.index]


def _add_therapies(frame: pd.DataFrame, source, lm_diagnosed: pd.Series) -> None:
    """Prior therapy classes and lines, and the regimen given with intrathecal therapy (Table 3)."""
    therapies = _frame(
        SystemicTherapy.objects.filter(patient__in=source),
        ["patient_id", "category", "agent", "dose_description", "start_date", "end_date"],
    )
    therapies["text"] = [
        agent_text(category, agent, dose)
        for category, agent, dose in zip(
            therapies["category"], therapies["agent"], therapies["dose_description"], strict=True
        )
    ]
    # The text follows from the records alone (not from the order they were entered in): by start, then
    # the category's order with bevacizumab last ("PC + BEV", "Osimertinib + IP + BEV"), then the text.
    after = len(SystemicTherapyCategory)  # bevacizumab after every other category
    rank = {c.value: i + (after if c == C.BEVACIZUMAB else 0) for i, c in enumerate(SystemicTherapyCategory)}
    therapies = therapies.assign(rank=therapies["category"].map(rank)).sort_values(
        ["start_date", "rank", "text"]
    )
    start = pd.to_datetime(therapies["start_date"])
    prior = therapies[start < pd.to_datetime(therapies["patient_id"].map(lm_diagnosed))]
    for category in PRIOR_LM_THERAPIES:
        ids = set(prior.loc[prior["category"] == category.value, "patient_id"])
        frame[f"prior_{category.value}"] = frame.index.isin(ids).astype(int)
    treatment = prior[prior["category"].isin(PRIOR_TREATMENT)]
    lines = treatment.groupby(["patient_id", "start_date"], sort=True)["text"].agg(
        lambda texts: " + ".join(dict.fromkeys(texts))
    )
    by_patient = lines.groupby(level="patient_id").agg(", ".join)
    frame["systemic_before_ic"] = by_patient.reindex(frame.index).fillna("No")

    first = pd.to_datetime(frame["first_it_at"].map(_local_day))
    last = pd.to_datetime(frame["last_it_at"].map(_local_day))
    end = pd.to_datetime(therapies["end_date"])
    during = therapies[
        (start <= therapies["patient_id"].map(last))
        & (end.isna() | (end >= therapies["patient_id"].map(first)))
        & therapies["category"].isin(ANTICANCER)
    ]
    grouped = dict(list(during.groupby("patient_id")))
    empty = during.iloc[0:0]
    frame["systemic_during_ic"] = [
        _regimen_text(grouped.get(pid, empty), frame.at[pid, "it_drug"]) for pid in frame.index
    ]
    frame["systemic_regimen"] = [systemic_regimen(grouped.get(pid, empty)["category"]) for pid in frame.index]


def _regimen_text(therapies: pd.DataFrame, it_drug) -> str:
    """Systemic agents, then the intrathecal drug, then bevacizumab: 'Osimertinib + IP + BEV'."""
    bevacizumab = therapies["category"] == SystemicTherapyCategory.BEVACIZUMAB
    intrathecal = (
        [] if pd.isna(it_drug) else [INTRATHECAL_NOTATION.get(it_drug, IntrathecalDrug(it_drug).label)]
    )
    parts = [*therapies.loc[~bevacizumab, "text"], *intrathecal, *therapies.loc[bevacizumab, "text"]]
    return " + ".join(dict.fromkeys(parts))


def _add_lm(frame: pd.DataFrame, source, doses: pd.DataFrame, lps: pd.DataFrame) -> pd.DataFrame:
    frame["it_drug"] = _main_drug(doses).reindex(frame.index)
    pemetrexed = doses[doses["drug"] == IntrathecalDrug.PEMETREXED]
    frame["max_pemetrexed_mg"] = pemetrexed.groupby("patient_id")["dose_mg"].max().reindex(frame.index)

    diagnosis = _frame(
        LmDiagnosis.objects.filter(patient__in=source),
        [
            "patient_id",
            "ecog",
            "histology",
            "brain_metastases",
            "lm_diagnosis_date",
            "csf_cytology",
            "mri_pattern",
        ],
    )
    diagnosis = diagnosis.set_index("patient_id").reindex(frame.index)
    frame["ecog"] = diagnosis["ecog"].astype(float)
    frame["days_to_first_it"] = (
        pd.to_datetime(frame["first_it_at"].map(_local_day)) - pd.to_datetime(diagnosis["lm_diagnosis_date"])
    ).dt.days
    frame["ecog_ge2"] = _flag(frame["ecog"] >= 2, frame["ecog"])
    frame["histology"] = diagnosis["histology"]
    frame["brain_metastases"] = diagnosis["brain_metastases"].map({True: 1.0, False: 0.0})
    frame["mri_positive"] = diagnosis["mri_pattern"].map(
        lambda pattern: np.nan if not pattern else float(pattern in MRI_POSITIVE_PATTERNS)
    )
    _add_cytology(frame, source, diagnosis["csf_cytology"])
    _add_mutations(frame, source)
    _add_therapies(frame, source, diagnosis["lm_diagnosis_date"])
    routes = _frame(LumbarPuncture.objects.filter(patient__in=source), ["patient_id", "route"])
    ommaya = set(routes.loc[routes["route"] == LpRoute.OMMAYA, "patient_id"])
    frame["ommaya"] = frame.index.isin(ommaya).astype(int)

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
    frame["clinical_response"] = _blank_as_missing(first["clinical_response"])
    evaluable = frame["clinical_response"].notna() & (
        frame["clinical_response"] != ClinicalResponse.NOT_EVALUABLE
    )
    frame["responder"] = (
        (frame["clinical_response"] == ClinicalResponse.RESPONSE).astype(float).where(evaluable)
    )
    frame["neurological_response"] = first["neurological"]
    frame["mri_response"] = first["mri"]

    targeted = frame["systemic_regimen"] == TARGETED_REGIMEN
    as_treated = ((frame["driver_mutation"] == 1) | targeted).astype(float)
    frame["mutation_as_treated"] = as_treated.where(frame["driver_mutation"].notna() | targeted)

    frame["window_start"] = pd.to_datetime(origin)
    frame["window_end"] = pd.to_datetime(frame["last_it_at"].map(lambda t: t.date() if pd.notna(t) else None))
    frame["treatment_window"] = "first to last intrathecal dose"
    return frame


def _blank_as_missing(answers: pd.Series) -> pd.Series:
    """An empty answer is a missing one. Written out rather than ``replace("", nan)``, whose silent
    downcasting pandas deprecates (a FutureWarning in every LM dataset with no response recorded): a
    column of only missing answers becomes float NaN as before, one with any answer stays text."""
    answers = answers.copy()
    answers[answers.eq("")] = np.nan
    return answers.infer_objects()
