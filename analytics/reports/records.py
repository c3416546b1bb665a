"""Registry records a report needs beyond the one-row-per-patient dataset (selectors, read-only).

Each selector reads from the same scoped patient queryset the dataset was built from, then keeps
the patients that passed the cohort filter, so a report never sees another site's records. No
names, medical record numbers or free text are read.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd
from django.db.models import QuerySet

from protocols.choices import InjectionStatus
from protocols.models import PlannedInjection, Protocol
from registry.choices import FollowUpEventType, IntrathecalDrug
from registry.models import AdverseEvent, IntrathecalDose, Patient, ScreeningLogEntry


def _kept(frame: pd.DataFrame, ids: Collection[int]) -> pd.DataFrame:
    return frame[frame["patient_id"].isin(set(ids))].reset_index(drop=True)


def adverse_events(patients: QuerySet[Patient], ids: Collection[int]) -> pd.DataFrame:
    """One row per adverse event: ``patient_id``, ``ctcae_term`` (code), ``grade``, ``onset_date``."""
    columns = ["patient_id", "ctcae_term", "grade", "onset_date"]
    rows = AdverseEvent.objects.filter(patient__in=patients).values_list(*columns)
    return _kept(pd.DataFrame(list(rows), columns=columns), ids)


def intrathecal_injections(patients: QuerySet[Patient], ids: Collection[int]) -> pd.DataFrame:
    """One row per lumbar puncture or Ommaya tap with an intrathecal dose: ``patient_id``, ``when``."""
    rows = (
        IntrathecalDose.objects.filter(lumbar_puncture__patient__in=patients)
        .order_by()  # the model's ordering would otherwise join the SELECT and defeat distinct()
        .values_list("lumbar_puncture__patient_id", "lumbar_puncture__performed_at")
        .distinct()
    )
    frame = pd.DataFrame(list(rows), columns=["patient_id", "when"])
    frame["when"] = pd.to_datetime(frame["when"], utc=True)
    return _kept(frame, ids)


def course_events(patients: QuerySet[Patient], ids: Collection[int]) -> pd.DataFrame:
    """Progressions, deaths and last contacts: ``patient_id``, ``event_type``, ``event_date``."""
    events = pd.DataFrame(
        list(
            patients.filter(follow_up_events__isnull=False).values_list(
                "pk", "follow_up_events__event_type", "follow_up_events__event_date"
            )
        ),
        columns=["patient_id", "event_type", "event_date"],
    )
    deaths = pd.DataFrame(
        list(patients.filter(death_date__isnull=False).values_list("pk", "death_date")),
        columns=["patient_id", "event_date"],
    ).assign(event_type=FollowUpEventType.DEATH.value)
    frame = pd.concat([events, deaths], ignore_index=True).drop_duplicates()
    frame["event_date"] = pd.to_datetime(frame["event_date"])
    return _kept(frame, ids)


def injection_schedule(patients: QuerySet[Patient], ids: Collection[int]) -> pd.DataFrame:
    """One row per intrathecal injection given, and per planned injection missed: ``patient_id``,
    ``when`` (the LP's time in UTC, or the planned date of a missed one), ``status`` (given, changed,
    missed, or unplanned: outside a planned course) and ``main_mg`` (the largest dose of a drug other
    than dexamethasone; dexamethasone's when it is the only drug)."""

    columns = ["patient_id", "when", "status", "main_mg"]
    doses = pd.DataFrame(
        list(
            IntrathecalDose.objects.filter(lumbar_puncture__patient__in=patients).values_list(
                "lumbar_puncture_id",
                "lumbar_puncture__patient_id",
                "lumbar_puncture__performed_at",
                "drug",
                "dose_mg",
            )
        ),
        columns=["lp_id", "patient_id", "when", "drug", "dose_mg"],
    )
    planned = pd.DataFrame(
        list(
            PlannedInjection.objects.filter(course__patient__in=patients).values_list(
                "course__patient_id", "lumbar_puncture_id", "status", "planned_date"
            )
        ),
        columns=["patient_id", "lp_id", "status", "planned_date"],
    )
    parts = []
    if not doses.empty:
        doses["when"] = pd.to_datetime(doses["when"], utc=True).dt.tz_convert(None)
        doses["dose_mg"] = doses["dose_mg"].astype(float)
        doses["main"] = doses["drug"] != IntrathecalDrug.DEXAMETHASONE
        chosen = doses[doses["main"] | ~doses.groupby("lp_id")["main"].transform("any")]
        given = chosen.groupby("lp_id").agg(
            patient_id=("patient_id", "first"), when=("when", "first"), main_mg=("dose_mg", "max")
        )
        linked = planned.dropna(subset=["lp_id"])
        status_of = pd.Series(linked["status"].to_numpy(), index=linked["lp_id"].astype(int).to_numpy())
        given["status"] = given.index.map(status_of).fillna("unplanned")
        parts.append(given.reset_index()[columns])
    missed = planned[planned["status"] == InjectionStatus.MISSED.value]
    if not missed.empty:
        parts.append(
            missed.assign(when=pd.to_datetime(missed["planned_date"]), main_mg=float("nan"))[columns]
        )
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return _kept(frame, ids).sort_values(["patient_id", "when"]).reset_index(drop=True)


def screening_log(study: str, patients: QuerySet[Patient]) -> pd.DataFrame:
    """The study's screening log at the sites of these patients: ``step``, ``exclusion_reason``, ``patients``."""
    sites = patients.values("site_id")
    rows = ScreeningLogEntry.objects.filter(study__code=study, site_id__in=sites).values_list(
        "step", "exclusion_reason", "patients"
    )
    return pd.DataFrame(list(rows), columns=["step", "exclusion_reason", "patients"])


def protocol_labels(codes: Collection[str]) -> dict[str, str]:
    """Names for the dataset's ``it_protocol`` values ("<code> v<revision>"): "<name>, version <n>"
    (protocols are reference data; a value no protocol has keeps its code)."""
    wanted = set(codes)
    labels = {}
    for code, revision, name in Protocol.objects.values_list("code", "revision", "name"):
        key = f"{code} v{revision}"
        if key in wanted:
            labels[key] = f"{name}, version {revision}"
    return labels
