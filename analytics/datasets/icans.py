"""The ICANS dataset's columns: the CAR-T infusion, ASTCT grade and ICE, IDM timing, remission by the
ICANS paper's rule (and a stricter one), CSF before and after IDM, and OS and PFS from the infusion.

Time zero of the ICANS course is the first IDM (the first lumbar puncture with an intrathecal dose);
ICANS onset is the first assessment with grade ≥1.
"""

from __future__ import annotations

import pandas as pd
from django.utils import timezone

from registry.choices import FollowUpEventType
from registry.models import CarTInfusion, CrsAssessment, IcansAssessment, ResponseAssessment
from registry.timeline import DAYS_PER_MONTH

from .base import _events, _frame, _time_to_event, _v

HOURS_PER_DAY = 24.0
#: Remission status codes of ``remission_status`` (the competing-risks coding).
CENSORED, REMITTED, DIED = 0, 1, 2
#: The ICANS paper's rule: grade 3–4 ICANS counts as remitted at grade ≤ 1; grade 1–2 ICANS at ICE 10.
SEVERE_GRADE = 3
REMITTED_SEVERE_GRADE = 1
FULL_ICE = 10

PAPER_RULE = (
    "grade 3–4 ICANS downgraded to grade ≤1, or grade 1–2 ICANS back to an ICE score of 10 "
    "(the worst grade so far decides which), at an assessment after the first IDM"
)
STRICT_RULE = "ICANS grade 0 with an ICE score of 10 at an assessment after the first IDM"

ICANS_VARIABLES = [
    _v("underlying_malignancy", "Underlying malignancy", "category", "Of the first CAR-T infusion"),
    _v("car_t_target", "CAR-T target", "category", "Of the first CAR-T infusion"),
    _v("car_t_product", "CAR-T product", "", "Of the first CAR-T infusion"),
    _v("car_t_dose", "CAR-T dose", "×10⁶ cells/kg", "Of the first CAR-T infusion"),
    _v("prior_lines", "Prior lines of therapy", "count", "Recorded with the first CAR-T infusion"),
    _v(
        "marrow_blasts_pct",
        "Marrow blasts before lymphodepletion",
        "%",
        "Recorded with the first CAR-T infusion",
    ),
    _v("cns_involvement", "CNS involvement", "0/1", "Recorded with the first CAR-T infusion"),
    _v(
        "days_infusion_to_icans",
        "Infusion to ICANS onset",
        "days",
        "Date of the first assessment with grade ≥1 − infusion date",
    ),
    _v("crs_max_grade", "Worst CRS grade", "0–5", "Highest computed ASTCT CRS grade"),
    _v("icans_max_grade", "Worst ICANS grade", "0–4", "Highest computed ASTCT ICANS grade"),
    _v(
        "grade_before_idm",
        "ICANS grade before IDM",
        "0–4",
        "The last assessment at or before the first IDM",
    ),
    _v("ice_before_idm", "ICE score before IDM", "0–10", "The last assessment at or before the first IDM"),
    _v(
        "grade_after_idm",
        "ICANS grade after IDM",
        "0–4",
        "The assessment at remission (the paper's rule); without remission, the last assessment after the "
        "first IDM",
    ),
    _v(
        "ice_after_idm",
        "ICE score after IDM",
        "0–10",
        "As grade_after_idm: at remission, or the last assessment after the first IDM",
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
    _v("remission", "ICANS remission (paper's rule)", "0/1", f"1 if reached: {PAPER_RULE}"),
    _v(
        "days_idm_to_remission",
        "First IDM to remission (paper's rule)",
        "days",
        "Hours from the first IDM to the first assessment meeting the rule / 24; missing without remission",
    ),
    _v("remission_strict", "ICANS remission (grade 0, ICE 10)", "0/1", f"1 if reached: {STRICT_RULE}"),
    _v(
        "days_idm_to_remission_strict",
        "First IDM to remission (grade 0, ICE 10)",
        "days",
        "As days_idm_to_remission, by the stricter rule",
    ),
    _v(
        "remission_time_days",
        "Remission follow-up from the first IDM",
        "days",
        "To remission (paper's rule); else to death; else to the last ICANS assessment",
    ),
    _v(
        "remission_status",
        "Remission follow-up status",
        "0/1/2",
        "1 remission, 2 death before remission (competing), 0 censored at the last ICANS assessment. A death "
        "is dated by day and taken at the later of that day's start and the last assessment",
    ),
    _v(
        "remission_recorded",
        "Remission recorded",
        "0/1",
        "1 if a response assessment records ICANS remission (the clinician's entry)",
    ),
    *(
        _v(f"{name}_{when}_idm", f"{label}, {when} IDM", unit, derivation)
        for name, label, unit in (
            ("car_t", "CSF CAR-T cells", "cells/µL"),
            ("protein", "CSF protein", "g/L"),
            ("il6", "CSF IL-6", "pg/mL"),
        )
        for when, derivation in (
            ("before", "The last LP at or before the first IDM that has a value (the IDM's own sample)"),
            ("after", "The last LP after the first IDM that has a value"),
        )
    ),
    _v("os_months", "Overall survival", "months", "First CAR-T infusion to death, else to last contact"),
    _v("os_event", "Death", "0/1", "1 if death ended os_months; 0 if censored at last contact"),
    _v(
        "pfs_months",
        "Progression-free survival",
        "months",
        "First CAR-T infusion to the first relapse or progression after CAR-T or death, else to last contact",
    ),
    _v("pfs_event", "Relapse, progression or death", "0/1", "1 if an event ended pfs_months"),
    _v("treatment_window", "Therapy window", "", "ICANS onset to remission or last contact"),
]


def _hours(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.total_seconds() / 3600


def _add_icans(frame: pd.DataFrame, source, doses: pd.DataFrame, lps: pd.DataFrame) -> pd.DataFrame:
    infusions = _infusions(frame, source)
    assessments = icans_assessments(source)
    crs = _frame(CrsAssessment.objects.filter(patient__in=source), ["patient_id", "crs_grade"])
    frame["crs_max_grade"] = crs.groupby("patient_id")["crs_grade"].max().reindex(frame.index).astype(float)
    frame["icans_max_grade"] = (
        assessments.groupby("patient_id")["icans_grade"].max().reindex(frame.index).astype(float)
    )
    onset = (
        assessments[assessments["icans_grade"] >= 1]
        .groupby("patient_id")["assessed_at"]
        .min()
        .reindex(frame.index)
    )
    first_idm = frame["first_it_at"]
    frame["hours_onset_to_idm"] = _hours(first_idm, onset)
    frame["days_to_first_it"] = frame["hours_onset_to_idm"] / HOURS_PER_DAY
    onset_day = pd.to_datetime(onset.map(lambda t: timezone.localdate(t) if pd.notna(t) else None))
    frame["days_infusion_to_icans"] = (onset_day - pd.to_datetime(infusions["infusion_date"])).dt.days

    _add_course(frame, assessments)
    recorded = ResponseAssessment.objects.filter(patient__in=source, icans_remission=True)
    frame["remission_recorded"] = frame.index.isin(set(recorded.values_list("patient_id", flat=True))).astype(
        int
    )
    _add_csf(frame, lps)
    _add_survival(frame, source, infusions)

    remitted_day = (first_idm + pd.to_timedelta(frame["days_idm_to_remission"], unit="D")).map(
        lambda t: timezone.localdate(t) if pd.notna(t) else None
    )
    frame["window_start"] = onset_day
    frame["window_end"] = pd.to_datetime(remitted_day).fillna(frame.pop("last_contact_date"))
    frame["treatment_window"] = "ICANS onset to remission or last contact"
    return frame


def _infusions(frame: pd.DataFrame, source) -> pd.DataFrame:
    """The first CAR-T infusion of each patient, and its columns in ``frame``."""
    infusions = (
        _frame(
            CarTInfusion.objects.filter(patient__in=source).order_by("infusion_date", "pk"),
            [
                "patient_id",
                "underlying_malignancy",
                "target",
                "product",
                "infusion_date",
                "dose_1e6_cells_per_kg",
                "prior_lines",
                "marrow_blasts_pct",
                "cns_involvement",
            ],
        )
        .groupby("patient_id")
        .first()
        .reindex(frame.index)
    )
    frame["underlying_malignancy"] = infusions["underlying_malignancy"]
    frame["car_t_target"] = infusions["target"]
    frame["car_t_product"] = infusions["product"]
    frame["car_t_dose"] = infusions["dose_1e6_cells_per_kg"].astype(float)
    frame["prior_lines"] = infusions["prior_lines"].astype(float)
    frame["marrow_blasts_pct"] = infusions["marrow_blasts_pct"].astype(float)
    frame["cns_involvement"] = infusions["cns_involvement"].map({True: 1.0, False: 0.0})
    return infusions


def icans_assessments(source) -> pd.DataFrame:
    """Every ICANS assessment of the patients: ``patient_id``, ``assessed_at``, ``ice_score``, ``icans_grade``."""
    frame = _frame(
        IcansAssessment.objects.filter(patient__in=source),
        ["patient_id", "assessed_at", "ice_score", "icans_grade"],
    ).sort_values(["patient_id", "assessed_at"], kind="stable")
    frame["assessed_at"] = pd.to_datetime(frame["assessed_at"], utc=True)
    return frame.reset_index(drop=True)


def meets_paper_rule(worst_grade: pd.Series, grade: pd.Series, ice: pd.Series) -> pd.Series:
    """The ICANS paper's remission at one assessment, given the worst grade up to it."""
    severe = worst_grade >= SEVERE_GRADE
    return (severe & (grade <= REMITTED_SEVERE_GRADE)) | (~severe & (ice == FULL_ICE))


def meets_strict_rule(grade: pd.Series, ice: pd.Series) -> pd.Series:
    return (grade == 0) & (ice == FULL_ICE)


def _add_course(frame: pd.DataFrame, assessments: pd.DataFrame) -> None:
    """Grade and ICE before and after the first IDM; remission by both rules; the competing-risks time."""
    timed = assessments.merge(
        frame["first_it_at"].rename("idm").dropna(), left_on="patient_id", right_index=True
    )
    timed["worst"] = timed.groupby("patient_id")["icans_grade"].cummax()
    before = timed[timed["assessed_at"] <= timed["idm"]].groupby("patient_id").last()
    frame["grade_before_idm"] = before["icans_grade"].reindex(frame.index).astype(float)
    frame["ice_before_idm"] = before["ice_score"].reindex(frame.index).astype(float)

    after = timed[timed["assessed_at"] > timed["idm"]]
    paper = after[meets_paper_rule(after["worst"], after["icans_grade"], after["ice_score"])]
    paper = paper.groupby("patient_id").first()
    strict = after[meets_strict_rule(after["icans_grade"], after["ice_score"])].groupby("patient_id").first()
    last = after.groupby("patient_id").last()
    for suffix, reached in (("", paper), ("_strict", strict)):
        frame[f"remission{suffix}"] = frame.index.isin(reached.index).astype(int)
        frame[f"days_idm_to_remission{suffix}"] = (
            _hours(reached["assessed_at"], reached["idm"]).reindex(frame.index) / HOURS_PER_DAY
        )
    at_remission = paper.reindex(frame.index)
    last = last.reindex(frame.index)
    frame["grade_after_idm"] = at_remission["icans_grade"].fillna(last["icans_grade"]).astype(float)
    frame["ice_after_idm"] = at_remission["ice_score"].fillna(last["ice_score"]).astype(float)

    last_seen = timed.groupby("patient_id")["assessed_at"].max().reindex(frame.index)
    death = pd.to_datetime(frame["death_date"]).dt.tz_localize(timezone.get_current_timezone())
    died_at = pd.concat([death.dt.tz_convert("UTC"), last_seen], axis=1).max(axis=1).where(death.notna())
    remitted = frame["remission"] == 1
    died = ~remitted & died_at.notna()
    end = frame["first_it_at"] + pd.to_timedelta(frame["days_idm_to_remission"] * HOURS_PER_DAY, unit="h")
    end = end.where(remitted, died_at.where(died, last_seen))
    status = pd.Series(CENSORED, index=frame.index).mask(remitted, REMITTED).mask(died, DIED)
    frame["remission_time_days"] = _hours(end, frame["first_it_at"]) / HOURS_PER_DAY
    frame["remission_status"] = status.astype(float).where(frame["remission_time_days"].notna())


def _add_csf(frame: pd.DataFrame, lps: pd.DataFrame) -> None:
    """Each CSF value at the last LP up to the first IDM and at the last LP after it."""
    lps = lps.assign(when=pd.to_datetime(lps["when"], utc=True))
    lps = lps.merge(frame["first_it_at"].rename("idm").dropna(), left_on="patient_id", right_index=True)
    lps = lps.sort_values(["patient_id", "when"], kind="stable")
    for name in ("car_t", "protein", "il6"):
        present = lps.dropna(subset=[name])
        for when, part in (
            ("before", present[present["when"] <= present["idm"]]),
            ("after", present[present["when"] > present["idm"]]),
        ):
            values = part.groupby("patient_id")[name].last().astype(float)
            frame[f"{name}_{when}_idm"] = values.reindex(frame.index)


def _add_survival(frame: pd.DataFrame, source, infusions: pd.DataFrame) -> None:
    """OS and PFS in months from the first CAR-T infusion (censored at the last contact)."""
    events = _events(source)
    relapse = (
        events[events["event_type"] == FollowUpEventType.CART_RELAPSE]
        .groupby("patient_id")["event_date"]
        .min()
    )
    contact = (
        events[events["event_type"] == FollowUpEventType.LAST_CONTACT]
        .groupby("patient_id")["event_date"]
        .max()
    )
    deaths = pd.to_datetime(frame["death_date"].dropna())
    origin = infusions["infusion_date"]
    progression_or_death = pd.concat([pd.to_datetime(relapse), deaths]).groupby(level=0).min()
    frame["os_months"], frame["os_event"] = _time_to_event(frame, origin, deaths, contact, DAYS_PER_MONTH)
    frame["pfs_months"], frame["pfs_event"] = _time_to_event(
        frame, origin, progression_or_death, contact, DAYS_PER_MONTH
    )
    frame["last_contact_date"] = pd.to_datetime(contact.reindex(frame.index))
