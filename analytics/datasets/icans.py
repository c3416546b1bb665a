"""The ICANS dataset's columns: ASTCT grade, ICE, CRS, CAR-T product and dose, time to remission, CSF."""

from __future__ import annotations

import pandas as pd

from registry.choices import (
    FollowUpEventType,
)
from registry.models import (
    CarTInfusion,
    CrsAssessment,
    IcansAssessment,
    ResponseAssessment,
)

from .base import _events, _first_last, _frame, _lumbar_punctures, _v

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
