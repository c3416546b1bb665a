"""What every study's dataset shares: the data dictionary's Variable, the common columns, the
readers that turn records into frames (one query per kind of record), and the cohort filters."""

from __future__ import annotations

import datetime as dt
import json
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from django.db.models import Case, TextField, When
from django.db.models.functions import Cast

from analytics.errors import AnalysisError
from protocols.choices import DUE, FULFILLED, CourseStatus, InjectionStatus
from protocols.models import Course, PlannedInjection
from registry import csf_limits
from registry.choices import (
    IntrathecalDrug,
    SystemicTherapyCategory,
)
from registry.models import (
    AdverseEvent,
    FollowUpEvent,
    IntrathecalDose,
    LumbarPuncture,
    SystemicTherapy,
)
from registry.timeline import DAYS_PER_YEAR

from .fetch import values_frame

#: The study definitions of raised ICP and raised CSF protein (registry.csf_limits), as numbers pandas compares.
RAISED_ICP_MMH2O = csf_limits.RAISED_ICP_MMH2O
RAISED_PROTEIN_G_PER_L = float(csf_limits.RAISED_PROTEIN_G_PER_L)
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

# --- building blocks -------------------------------------------------------------------------


def _frame(queryset, columns: list[str], **renamed) -> pd.DataFrame:
    """The queryset's values as columns, in the queryset's order.

    The readers below ask for no order (``order_by()``), or for one by patient where the first record
    counts, rather than for the models' default orderings: those join the study and sort by its code
    and the patients' study codes, a text sort that cost more than the rest of the query. Every
    derivation works per patient and sorts by time itself where the order matters.
    """
    return values_frame(queryset.values_list(*columns, *renamed.values()), [*columns, *renamed.keys()])


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
    """Every LP of the patients with its CSF results: the one read of the LPs' times, which the doses
    and the CSF results take from here by ``lp_id``. At 100,000 patients that is 0.4 million fewer
    datetimes to parse, and two queries fewer (the CSF results, the post-LP headaches)."""
    return _frame(
        LumbarPuncture.objects.filter(patient__in=source).order_by(),
        ["patient_id", "performed_at", "opening_pressure_mmh2o", "low_icp", "post_lp_headache"],
        lp_id="pk",
        csf_id="csf__pk",
        protein="csf__protein_g_per_l",
        wbc="csf__wbc_1e6_per_l",
        cytology="csf__cytology",
        car_t="csf__car_t_cells_per_ul",
        il6="csf__il6_pg_per_ml",
    ).rename(columns={"performed_at": "when"})


def _doses(source, lps: pd.DataFrame) -> pd.DataFrame:
    doses = _frame(
        IntrathecalDose.objects.filter(lumbar_puncture__patient__in=source).order_by(),
        ["drug", "dose_mg", "timing"],
        patient_id="lumbar_puncture__patient_id",
        lp_id="lumbar_puncture_id",
    )
    doses["dose_mg"] = doses["dose_mg"].astype(float)
    # Without doses the column stays the empty object column a read of the rows gave.
    doses["when"] = doses["lp_id"].map(lps.set_index("lp_id")["when"]) if len(doses) else doses["lp_id"]
    return doses


def _add_common(frame: pd.DataFrame, source, lps: pd.DataFrame, doses: pd.DataFrame) -> pd.DataFrame:
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

    severe = (
        AdverseEvent.objects.filter(patient__in=source, grade__gte=3)
        .order_by()
        .values_list("patient_id", flat=True)
    )
    frame["ae_grade3plus"] = frame.index.isin(set(severe)).astype(int)
    return frame


def _add_schedule(frame: pd.DataFrame, source, doses: pd.DataFrame) -> pd.DataFrame:
    """Planned against given: the courses' injections by status, dose intensity, reductions, ending."""

    # The proposed doses as JSON text: the plans of a protocol repeat, so each is decoded once below.
    # Only the injections due need them (the dose intensity's); at 100,000 patients 56% are
    # cancelled ones, whose 38 MB of text the database then neither writes nor sends.
    due_text = When(status__in=[s.value for s in DUE], then=Cast("proposed_doses", TextField()))
    injections = _frame(
        PlannedInjection.objects.filter(course__patient__in=source)
        .order_by()
        .annotate(proposed_text=Case(due_text, default=None, output_field=TextField())),
        ["status", "proposed_text", "lumbar_puncture_id"],
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
    frame["relative_dose_intensity"] = _relative_dose_intensity(
        injections[injections["status"].isin([s.value for s in DUE])], doses, frame.index
    )

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


def _relative_dose_intensity(due: pd.DataFrame, doses: pd.DataFrame, patients: pd.Index) -> pd.Series:
    """mg given / mg proposed over the injections due, for the counted drugs of each injection's plan.

    The counted drugs are the plan's drugs other than dexamethasone, or dexamethasone when it is the
    only one; given mg are the doses of those drugs at the injection's lumbar puncture.
    """
    plans = due["proposed_text"].drop_duplicates().tolist()
    proposed_mg: dict[str, float] = {}
    counted_drugs: list[tuple[str, str]] = []
    for text in plans:
        proposed = json.loads(text) or []
        drugs = {d["drug"] for d in proposed}
        counted = drugs - {IntrathecalDrug.DEXAMETHASONE.value} or drugs
        proposed_mg[text] = sum(float(d["dose_mg"]) for d in proposed if d["drug"] in counted)
        counted_drugs.extend((text, drug) for drug in counted)
    proposed = due["proposed_text"].map(proposed_mg).groupby(due["patient_id"]).sum()

    given_mg = doses.groupby(["lp_id", "drug"], as_index=False)["dose_mg"].sum()
    fulfilled = due.loc[
        due["lumbar_puncture_id"].notna(), ["patient_id", "proposed_text", "lumbar_puncture_id"]
    ]
    fulfilled = fulfilled.assign(lp_id=fulfilled["lumbar_puncture_id"].astype("int64"))
    counted_frame = pd.DataFrame(counted_drugs, columns=["proposed_text", "drug"])
    given = fulfilled.merge(counted_frame, on="proposed_text").merge(
        given_mg, on=["lp_id", "drug"], how="left"
    )
    given_total = given["dose_mg"].fillna(0.0).groupby(given["patient_id"]).sum()

    proposed_series = proposed.astype(float).reindex(patients)
    return (given_total.astype(float).reindex(patients).fillna(0.0) / proposed_series).where(
        proposed_series > 0
    )


def _local_day(value) -> dt.date | None:
    """The date of a dose time (as the iPFS and OS origin takes it)."""
    return value.date() if pd.notna(value) else None


def _local_days(moments: pd.Series) -> pd.Series:
    """``_local_day`` of a column of dose times, as datetime64 (vectorised for a time-zone-aware column)."""
    if isinstance(moments.dtype, pd.DatetimeTZDtype):
        return moments.dt.tz_localize(None).dt.normalize()
    return pd.to_datetime(moments.map(_local_day))


def _flag(condition: pd.Series, source: pd.Series) -> pd.Series:
    """A 0/1 column that stays missing where its source value is missing."""
    return condition.astype(float).where(source.notna())


def _events(source) -> pd.DataFrame:
    return _frame(
        FollowUpEvent.objects.filter(patient__in=source).order_by(),
        ["patient_id", "event_type", "event_date"],
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


def _add_therapy_flags(frame: pd.DataFrame, source) -> pd.DataFrame:
    therapies = _frame(
        SystemicTherapy.objects.filter(patient__in=source).order_by(),
        ["patient_id", "category", "start_date", "end_date"],
    )
    therapies = therapies.merge(frame[["window_start", "window_end"]], left_on="patient_id", right_index=True)
    start, end = pd.to_datetime(therapies["start_date"]), pd.to_datetime(therapies["end_date"])
    overlaps = (start <= therapies["window_end"]) & (end.isna() | (end >= therapies["window_start"]))
    given = therapies[overlaps.fillna(False)]
    frame = _add_presence(frame, given, "category", [category.value for category in SystemicTherapyCategory])
    return frame


def _add_presence(frame: pd.DataFrame, records: pd.DataFrame, column: str, values: list[str]) -> pd.DataFrame:
    """A 0/1 column per value: 1 if the patient has a record with that value in ``column``.

    One grouping for all the values, rather than one comparison of the whole column per value.
    """
    counts = records.reset_index(drop=True).groupby(["patient_id", column]).size().unstack(fill_value=0)
    for value in values:
        present = counts[value] if value in counts.columns else pd.Series(0, index=counts.index)
        frame[value] = (present.reindex(frame.index, fill_value=0) > 0).astype(int)
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
