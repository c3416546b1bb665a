"""The NPSLE dataset's columns: syndromes, SLEDAI-2K, serology, CSF, outcome at discharge, relapse or death."""

from __future__ import annotations

import pandas as pd

from registry.choices import (
    BilagGrade,
    CsfCytology,
    FollowUpEventType,
    IntrathecalDrug,
    NpsleSyndrome,
    SystemicTherapyCategory,
    TestResult,
)
from registry.models import (
    DischargeOutcome,
    NpsleDiagnosis,
    NpsleManifestation,
    Sledai2kAssessment,
)
from registry.timeline import DAYS_PER_YEAR

from .base import ADMISSION_WINDOW_DAYS, _add_presence, _events, _frame, _local_days, _time_to_event, _v

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
        _v(test, label, "0/1", "1 positive, 0 negative, missing if not done or indeterminate")
        for test, label in (
            ("anti_dsdna", "Anti-dsDNA positive"),
            ("anti_rrnp", "Anti-rRNP positive"),
            ("coombs", "Coombs test positive"),
            ("anti_b2gp1", "Anti-β2GP1 positive"),
            ("anticardiolipin", "Anticardiolipin (aCL) positive"),
        )
    ),
    _v("c3_g_per_l", "C3", "g/L", "As recorded"),
    _v("c4_g_per_l", "C4", "g/L", "As recorded"),
    _v("lupus_anticoagulant_ratio", "Lupus anticoagulant", "ratio", "As recorded"),
    _v("bilag_np_grade", "BILAG-2004 NP grade", "A–E", "As recorded"),
    _v("discharge_outcome", "Outcome at discharge", "category", "complete / partial / exacerbation / death"),
    _v("hospital_days", "Hospital stay", "days", "Discharge date − index admission date"),
    _v(
        "wbc_baseline",
        "CSF white cells, first LP",
        "10⁶/L",
        "White cell count of the CSF of the first LP that has one",
    ),
    _v(
        "cytology_abnormal",
        "Abnormal CSF cytology",
        "0/1",
        "First LP's cytology: 1 abnormal or malignant, 0 normal, missing if not done",
    ),
    _v(
        "post_lp_headache",
        "Headache after a lumbar puncture",
        "0/1",
        "1 if any LP records a post-LP headache",
    ),
    _v(
        "dex_only_injections",
        "Injections of dexamethasone alone",
        "count",
        "Intrathecal injections with dexamethasone and no methotrexate",
    ),
    _v(
        "dex_only",
        "Dexamethasone alone",
        "0/1",
        "Treated patients: 1 if no injection had methotrexate; missing without an injection",
    ),
    _v(
        "immunosuppressant",
        "Immunosuppressant regimen",
        "category",
        "The one immunosuppressant in the treatment window (cyc, mmf, cni, other_is, rituximab), "
        "'combination' for two or more, 'none'",
    ),
    _v("relapse", "NPSLE relapse in follow-up", "0/1", "1 if a relapse needing hospitalisation is recorded"),
    _v("death", "Death in follow-up", "0/1", "1 if the patient has a date of death"),
    _v(
        "time_years",
        "Time to death or relapse",
        "years",
        "Index admission to the first of death or relapse, else to last contact; / 365.25",
    ),
    _v("event", "Death or relapse", "0/1", "1 if time_years ends in death or relapse"),
    _v(
        "death_cause", "Cause of death", "category", "As recorded (sle_related, infection, malignancy, other)"
    ),
    _v("treatment_window", "Therapy window", "", "Index admission to discharge (or 30 days)"),
]


def _add_npsle(frame: pd.DataFrame, source, doses: pd.DataFrame, lps: pd.DataFrame) -> pd.DataFrame:
    syndromes = _frame(
        NpsleManifestation.objects.filter(diagnosis__patient__in=source).order_by(),
        ["syndrome"],
        patient_id="diagnosis__patient_id",
    )
    frame = _add_presence(frame, syndromes, "syndrome", [syndrome.value for syndrome in NpsleSyndrome])
    counts = syndromes.groupby("patient_id").size().reindex(frame.index, fill_value=0)
    frame["n_syndromes"] = counts
    frame["multiple_syndromes"] = (counts >= 2).astype(int)
    frame["headache_only"] = ((counts == 1) & (frame[NpsleSyndrome.HEADACHE.value] == 1)).astype(int)

    sledai = _frame(
        Sledai2kAssessment.objects.filter(patient__in=source).order_by("patient_id", "assessed_on"),
        ["patient_id", "total"],
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
    frame["hospital_days"] = (
        pd.to_datetime(discharge["discharge_date"]) - pd.to_datetime(frame["index_date"])
    ).dt.days
    _add_csf_and_injections(frame, lps, doses)
    first_dose_day = _local_days(frame["first_it_at"])
    frame["days_to_first_it"] = (first_dose_day - pd.to_datetime(frame["index_date"])).dt.days

    events = _events(source)
    events["event_date"] = pd.to_datetime(events["event_date"])  # min and max on datetime64, not on objects
    relapses = (
        events[events["event_type"] == FollowUpEventType.NPSLE_RELAPSE]
        .groupby("patient_id")["event_date"]
        .min()
    )
    deaths = frame["death_date"].dropna()
    frame["relapse"] = frame.index.isin(relapses.index).astype(int)
    frame["death"] = frame["death_date"].notna().astype(int)
    causes = dict(source.exclude(death_cause="").order_by().values_list("pk", "death_cause"))
    frame["death_cause"] = pd.Series(causes, dtype=object).reindex(frame.index)
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


#: The immunosuppressants of the paper's Table 2; a patient's regimen is the one given, or a combination.
IMMUNOSUPPRESSANTS = (
    SystemicTherapyCategory.CYCLOPHOSPHAMIDE,
    SystemicTherapyCategory.MYCOPHENOLATE,
    SystemicTherapyCategory.CALCINEURIN_INHIBITOR,
    SystemicTherapyCategory.OTHER_IMMUNOSUPPRESSANT,
    SystemicTherapyCategory.RITUXIMAB,
)


def _add_csf_and_injections(frame: pd.DataFrame, lps: pd.DataFrame, doses: pd.DataFrame) -> None:
    """CSF white cells and cytology of the first LP, post-LP headache, injections without methotrexate."""
    csf = lps[lps["csf_id"].notna()].sort_values(["patient_id", "when"])
    cytology = csf.groupby("patient_id")["cytology"].first().reindex(frame.index)
    wbc = csf.dropna(subset=["wbc"]).groupby("patient_id")["wbc"].first()
    frame["wbc_baseline"] = wbc.reindex(frame.index).astype(float)
    abnormal = {
        CsfCytology.ABNORMAL.value: 1.0,
        CsfCytology.MALIGNANT.value: 1.0,
        CsfCytology.NORMAL.value: 0.0,
    }
    frame["cytology_abnormal"] = cytology.map(abnormal)
    headache = set(lps.loc[lps["post_lp_headache"].astype(bool), "patient_id"])
    frame["post_lp_headache"] = frame.index.isin(headache).astype(int)
    owner = doses.groupby("lp_id")["patient_id"].first()
    dexamethasone = (doses["drug"] == IntrathecalDrug.DEXAMETHASONE.value).groupby(doses["lp_id"]).any()
    methotrexate = (doses["drug"] == IntrathecalDrug.METHOTREXATE.value).groupby(doses["lp_id"]).any()
    dex_only = dexamethasone & ~methotrexate
    counts = dex_only.groupby(owner).sum() if len(dex_only) else pd.Series(dtype=int)
    frame["dex_only_injections"] = counts.reindex(frame.index, fill_value=0).astype(int)
    treated = frame["it_dose_count"] > 0
    frame["dex_only"] = (frame["dex_only_injections"] == frame["it_dose_count"]).astype(float).where(treated)


def add_npsle_regimen(frame: pd.DataFrame) -> pd.DataFrame:
    """``immunosuppressant`` from the therapy flags (read after they are added)."""
    flags = frame[[category.value for category in IMMUNOSUPPRESSANTS]]
    given = flags.sum(axis=1)
    regimen = flags.idxmax(axis=1).where(given == 1)
    frame["immunosuppressant"] = regimen.mask(given >= 2, "combination").mask(given == 0, "none")
    return frame
