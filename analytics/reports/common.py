"""Report pieces the three studies share: group descriptions, survival, Cox tables, rates, safety.

Everything here calls the analytics API for the statistics and only arranges its results into
table rows (and, where a report needs one, a descriptive median or a count). Rows keep the API's
own column names, so the JSON equals the API's numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analytics.compare import signed_rank_test
from analytics.describe import table_one
from analytics.errors import AnalysisError
from analytics.frames import level_text
from analytics.plots import DoseLane, Effect, dose_rate_plot, dose_timeline_plot
from analytics.reports import records
from analytics.reports.base import Column, SectionBuilder
from analytics.survival import (
    KaplanMeierResult,
    LogrankResult,
    Ties,
    cox,
    kaplan_meier,
    logrank,
    univariable_cox,
)
from registry.choices import CtcaeTerm, IntrathecalDrug

# --- describing two groups ("Table 1") -------------------------------------------------------------

TABLE_ONE_PIECES = ("n", "median", "q1", "q3", "count", "percent")
SHORT_TEST_NAMES = {
    "Mann-Whitney (Wilcoxon rank-sum)": "Mann–Whitney",
    "chi-square, Yates-corrected": "χ² (Yates)",
    "chi-square": "χ²",
    "Fisher exact": "Fisher",
}


def needs_exact_test(frame: pd.DataFrame, by: str, variable: str) -> bool:
    """Cochran's rule: Fisher's exact test when any expected count of the table is below 5."""
    present = frame[[by, variable]].dropna()
    if present.empty:
        return False
    counts = _cross_counts(present[variable], present[by])
    expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / counts.sum()
    return bool((expected < 5).any())


def _cross_counts(rows: pd.Series, columns: pd.Series) -> np.ndarray:
    """The contingency table of two columns without missing values: the counts of ``pd.crosstab``
    (observed levels only; levels in order of appearance, not sorted), by ``np.bincount``. Crosstab
    builds a pivot table, about 3 ms a call, and Table 1 asks for one per categorical variable."""
    row_codes, row_levels = pd.factorize(rows)
    column_codes, column_levels = pd.factorize(columns)
    shape = (len(row_levels), len(column_levels))
    cells = np.bincount(row_codes * shape[1] + column_codes, minlength=shape[0] * shape[1])
    return cells.reshape(shape)


@dataclass
class Described:
    """``table_one`` rows for the variables that could be described, and why others could not."""

    table: pd.DataFrame
    levels: tuple[Any, ...]
    sizes: dict[str, int]
    notes: list[str] = field(default_factory=list)


def describe_groups(
    frame: pd.DataFrame,
    by: str,
    labels: Mapping[str, str],
    *,
    continuous: Sequence[str] = (),
    categorical: Sequence[str] = (),
    all_exact: bool = False,
    digits: int = 1,
    level_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> Described:
    """``table_one`` by ``by``; a variable it refuses (constant, never recorded) is left out with a note.

    Categorical variables use Fisher's test where a cell is sparse (or always, for small cohorts
    with ``all_exact``), chi-square otherwise. ``digits`` is for the median [Q1, Q3] summaries.
    """
    # A variable nobody has a value for is noted here (table_one fails on it with an IndexError).
    unrecorded = [v for v in (*continuous, *categorical) if frame[v].isna().all()]
    continuous = [v for v in continuous if v not in unrecorded]
    categorical = [v for v in categorical if v not in unrecorded]
    exact = [v for v in categorical if all_exact or needs_exact_test(frame, by, v)]
    try:
        result = table_one(
            frame, by, continuous=continuous, categorical=categorical, exact=exact, digits=digits
        )
        # A variable whose test or SMD could not run keeps its row (NA there) and says why.
        why_not = [f"{labels.get(v, v)} not compared: {reason}." for v, reason in result.notes.items()]
        described = Described(result.table, result.levels, result.group_sizes, why_not)
    except AnalysisError:
        described = _one_by_one(frame, by, labels, continuous, categorical, exact, digits)
    described.notes += [f"{labels.get(v, v)} not recorded for any patient." for v in unrecorded]
    table = described.table
    table.insert(
        0, "label", [_row_label(row, labels, level_labels or {}) for row in table.to_dict("records")]
    )
    table["test_short"] = table["test"].map(lambda name: SHORT_TEST_NAMES.get(name, name))
    return described


def _one_by_one(frame, by, labels, continuous, categorical, exact, digits) -> Described:
    tables, notes, result = [], [], None
    for name in [*continuous, *categorical]:
        values = frame.loc[frame[by].notna(), name].dropna().unique()
        if len(values) == 1:
            notes.append(
                f"{labels.get(name, name)} not compared: every patient has the value {level_text(values[0])}."
            )
            continue
        kind = {"continuous": [name]} if name in continuous else {"categorical": [name]}
        try:
            result = table_one(frame, by, **kind, exact=[name] if name in exact else [], digits=digits)
        except AnalysisError as exc:
            notes.append(f"{labels.get(name, name)} not compared: {exc}.")
            continue
        tables.append(result.table)
    if result is None or not tables:
        raise AnalysisError(notes[0].rstrip(".") if notes else f"nothing to describe by {by!r}")
    return Described(pd.concat(tables, ignore_index=True), result.levels, result.group_sizes, notes)


def _row_label(
    row: Mapping[str, Any], labels: Mapping[str, str], levels: Mapping[str, Mapping[str, str]]
) -> str:
    label = labels.get(row["variable"], row["variable"])
    if row.get("level") is None:
        return label
    return f"{label}: {levels.get(row['variable'], {}).get(row['level'], row['level'])}"


def table_one_columns(described: Described, group_labels: Mapping[str, str], by: str) -> list[Column]:
    """Characteristic, one summary column per group (with its size), test, p, SMD, missing.

    The API's raw numbers (medians, quartiles, counts, percentages) stay in the rows as hidden
    columns: the page shows the summaries, the JSON and the workbook keep every number.
    """
    columns = [Column("label", "Characteristic", "text"), Column("variable", "Variable", "text", shown=False)]
    columns.append(Column("level", "Level", "text", shown=False))
    for level in described.levels:
        suffix = level_text(level)
        name = group_labels.get(f"{by}={suffix}", suffix)
        columns.append(Column(f"summary_{suffix}", f"{name} (n = {described.sizes[suffix]})", "text"))
    columns += [
        Column("test_short", "Test", "text"),
        Column("test", "Test (full name)", "text", shown=False),
        Column("p", "p", "p"),
        Column("smd", "SMD", "number", digits=3),
        Column("n_missing", "Missing", "count"),
    ]
    for level in described.levels:
        suffix = level_text(level)
        for piece in TABLE_ONE_PIECES:
            if f"{piece}_{suffix}" in described.table.columns:
                columns.append(Column(f"{piece}_{suffix}", f"{piece} ({suffix})", "number", shown=False))
    return columns


# --- Kaplan–Meier ----------------------------------------------------------------------------------


@dataclass
class SurvivalComparison:
    """Kaplan–Meier estimates, the log-rank test (when there are groups) and numbers at risk."""

    km: KaplanMeierResult
    logrank: LogrankResult | None
    at_risk: pd.DataFrame


def compare_survival(
    frame: pd.DataFrame, time: str, event: str, by: str | None, *, risk_step: float
) -> SurvivalComparison:
    km = kaplan_meier(frame, time, event, by=by)
    test = logrank(frame, time, event, by) if by else None
    return SurvivalComparison(km, test, at_risk(km, risk_times(frame, time, risk_step)))


LOGRANK_COLUMNS = [
    Column("endpoint", "Endpoint", "text"),
    Column("comparison", "Comparison", "text"),
    Column("statistic", "χ²", digits=3),
    Column("df", "df", "count"),
    Column("p", "p", "p"),
]


def logrank_row(test: LogrankResult, endpoint: str, comparison: str) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "comparison": comparison,
        "statistic": test.statistic,
        "df": test.df,
        "p": test.p,
    }


def km_columns(*, unit: str, digits: int) -> list[Column]:
    return [
        Column("endpoint", "Endpoint", "text"),
        Column("label", "Group", "text"),
        Column("group", "Stratum", "text", shown=False),
        Column("n", "n", "count"),
        Column("events", "Events", "count"),
        Column("median", f"Median ({unit})", digits=digits, missing="not reached"),
        Column("median_lower", "95% CI", "lower", digits=digits, missing="NR"),
        Column("median_upper", "95% CI upper", "upper", digits=digits, missing="NR"),
    ]


def km_rows(km: KaplanMeierResult, endpoint: str, group_labels: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        row | {"endpoint": endpoint, "label": group_labels.get(row["group"], row["group"])}
        for row in km.summary.to_dict("records")
    ]


def at_risk(km: KaplanMeierResult, times: Sequence[float]) -> pd.DataFrame:
    """Numbers at risk per group at each time (0 after a group's last follow-up)."""
    known = km.survival_at(times).set_index(["group", "time"])["at_risk"]
    rows = [
        {"group": group, "time": float(time), "at_risk": int(known.get((group, float(time)), 0))}
        for group in km.summary["group"]
        for time in times
    ]
    return pd.DataFrame(rows, columns=["group", "time", "at_risk"])


def at_risk_table(
    parts: Sequence[tuple[str, pd.DataFrame]], group_labels: Mapping[str, str], unit: str
) -> tuple[list[Column], list[dict[str, Any]]]:
    """Numbers at risk as one row per endpoint and group, one column per time."""
    times = sorted({float(t) for _, risk in parts for t in risk["time"]})
    columns = [
        Column("endpoint", "Endpoint", "text"),
        Column("label", "Group", "text"),
        Column("group", "Stratum", "text", shown=False),
    ]
    columns += [Column(f"at_{time:g}", f"{time:g} {unit}", "count") for time in times]
    rows = []
    for endpoint, risk in parts:
        for group, part in risk.groupby("group", sort=False):
            row = {"endpoint": endpoint, "group": group, "label": group_labels.get(group, group)}
            rows.append(
                row | {f"at_{t:g}": int(n) for t, n in zip(part["time"], part["at_risk"], strict=True)}
            )
    return columns, rows


def survival_at_columns(unit: str) -> list[Column]:
    return [
        Column("label", "Group", "text"),
        Column("group", "Stratum", "text", shown=False),
        Column("time", f"Time ({unit})", "number", digits=0),
        Column("at_risk", "At risk", "count"),
        Column("survival", "Survival (%)", digits=1, scale=100),
        Column("lower", "95% CI (%)", "lower", digits=1, scale=100),
        Column("upper", "95% CI upper", "upper", digits=1, scale=100),
    ]


def risk_times(frame: pd.DataFrame, time: str, step: float) -> list[float]:
    """0, step, 2·step, … up to the longest follow-up."""
    longest = float(frame[time].max()) if frame[time].notna().any() else 0.0
    return [float(t) for t in np.arange(0.0, longest + 1e-9, step)]


# --- Cox ------------------------------------------------------------------------------------------

COX_COLUMNS = [
    Column("label", "Variable", "text"),
    Column("term", "Term", "text", shown=False),
    Column("n", "n", "count"),
    Column("events", "Events", "count"),
    Column("hr", "HR", digits=3),
    Column("lower", "95% CI", "lower", digits=3),
    Column("upper", "95% CI upper", "upper", digits=3),
    Column("p", "p", "p"),
    Column("ph_p", "PH test p", "p"),
    Column("coef", "log HR", shown=False, digits=4),
    Column("se", "SE", shown=False, digits=4),
    Column("z", "z", shown=False, digits=3),
    Column("n_excluded", "Excluded (missing)", "count", shown=False),
]


def univariable_cox_rows(
    frame: pd.DataFrame,
    time: str,
    event: str,
    covariates: Sequence[str],
    labels: Mapping[str, str],
    *,
    ties: Ties,
) -> tuple[list[dict[str, Any]], list[str]]:
    """One Cox model per covariate; a covariate the data cannot support is noted, not fatal."""
    rows, notes = [], []
    for covariate in covariates:
        label = labels.get(covariate, covariate)
        values = frame[covariate].dropna().unique()
        if len(values) < 2:
            why = "not recorded for any patient" if len(values) == 0 else "every patient has the same value"
            notes.append(f"{label}: no model ({why}).")
            continue
        try:
            table = univariable_cox(frame, time, event, [covariate], ties=ties).table
        except AnalysisError as exc:
            notes.append(f"{label}: no model ({str(exc).replace(covariate, label)}).")  # a label, not a code
            continue
        rows += [row | {"label": labels.get(row["term"], row["term"])} for row in table.to_dict("records")]
    if not rows:
        raise AnalysisError(notes[0].rstrip(".") if notes else "no covariate could be modelled")
    return rows, notes


def multivariable_cox_rows(
    frame: pd.DataFrame,
    time: str,
    event: str,
    covariates: Sequence[str],
    labels: Mapping[str, str],
    *,
    ties: Ties,
) -> list[dict[str, Any]]:
    model = cox(frame, time, event, covariates, ties=ties)
    ph = model.proportional_hazards.set_index("term")["p"]
    return [
        row
        | {
            "label": labels.get(row["term"], row["term"]),
            "n": model.n,
            "events": model.events,
            "n_excluded": model.n_excluded,
            "ph_p": ph.get(row["term"]),
        }
        for row in model.table.to_dict("records")
    ]


def effects(rows: Sequence[Mapping[str, Any]], estimate: str) -> list[Effect]:
    return [Effect(row["label"], row[estimate], row["lower"], row["upper"]) for row in rows]


def proportional_hazards_note(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    flagged = [row["label"] for row in rows if row.get("ph_p") is not None and row["ph_p"] < 0.05]
    if not flagged:
        return []
    return [
        "Proportional-hazards test p < 0.05 for "
        + ", ".join(flagged)
        + ": the hazard ratio averages an effect that changes over time."
    ]


# --- rates ----------------------------------------------------------------------------------------


def proportion(count: int, n: int) -> dict[str, Any]:
    """A count out of n with its exact (Clopper–Pearson) 95% interval, in percent."""
    if n == 0:
        raise AnalysisError("no patients to count")
    interval = stats.binomtest(count, n).proportion_ci(confidence_level=0.95, method="exact")
    return {
        "count": count,
        "n": n,
        "percent": 100 * count / n,
        "lower": 100 * interval.low,
        "upper": 100 * interval.high,
    }


PROPORTION_COLUMNS = [
    Column("count", "Patients", "count"),
    Column("n", "Of", "count"),
    Column("percent", "%", "percent", digits=1),
    Column("lower", "95% CI (%)", "lower", digits=1),
    Column("upper", "95% CI upper", "upper", digits=1),
]


def person_years_rows(
    frame: pd.DataFrame,
    by: str,
    time: str,
    event: str,
    group_labels: Mapping[str, str],
    *,
    cohort: str,
    also_count: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Follow-up time, events and the crude event rate per 100 person-years, per group and overall."""
    data = frame.dropna(subset=[time, event, by])
    if data.empty:
        raise AnalysisError(f"no patient has {time!r} and {event!r}")
    parts = [
        (group_labels.get(f"{by}={level_text(v)}", str(v)), data[data[by] == v])
        for v in sorted(data[by].unique())
    ]
    rows = []
    for label, part in [*parts, ("All", data)]:
        years = float(part[time].sum())
        row = {
            "cohort": cohort,
            "label": label,
            "n": len(part),
            "events": int(part[event].sum()),
            "person_years": years,
            "rate_per_100py": 100 * part[event].sum() / years if years > 0 else None,
        }
        rows.append(row | {name: int(part[name].sum()) for name in also_count})
    return rows


# --- paired measurements (single arm) ---------------------------------------------------------------


def quartiles(values: pd.Series) -> tuple[float, float, float]:
    q1, median, q3 = np.quantile(values.to_numpy(dtype=float), (0.25, 0.5, 0.75))
    return float(median), float(q1), float(q3)


PAIRED_COLUMNS = [
    Column("label", "Measure", "text"),
    Column("before", "Variable (before)", "text", shown=False),
    Column("after", "Variable (after)", "text", shown=False),
    Column("n", "Pairs", "count"),
    Column("median_before", "Median before", digits=2),
    Column("q1_before", "Q1 before", shown=False),
    Column("q3_before", "Q3 before", shown=False),
    Column("median_after", "Median after", digits=2),
    Column("q1_after", "Q1 after", shown=False),
    Column("q3_after", "Q3 after", shown=False),
    Column("median_change", "Median change", digits=2),
    Column("statistic", "V", digits=1),
    Column("p", "p", "p"),
    Column("method", "Method", "text"),
]


def paired_row(frame: pd.DataFrame, before: str, after: str, label: str) -> dict[str, Any]:
    """Wilcoxon signed-rank test of before vs after on the patients who have both."""
    pairs = frame[[before, after]].dropna()
    if len(pairs) < 2:
        raise AnalysisError(f"{label}: fewer than two patients have both measurements")
    test = signed_rank_test((pairs[before] - pairs[after]).to_numpy(dtype=float))
    median_before, q1_before, q3_before = quartiles(pairs[before])
    median_after, q1_after, q3_after = quartiles(pairs[after])
    return {
        "label": label,
        "before": before,
        "after": after,
        "n": len(pairs),
        "median_before": median_before,
        "q1_before": q1_before,
        "q3_before": q3_before,
        "median_after": median_after,
        "q1_after": q1_after,
        "q3_after": q3_after,
        "median_change": float((pairs[after] - pairs[before]).median()),
        "statistic": test.statistic,
        "p": test.p,
        "method": test.method,
    }


# --- adverse events ---------------------------------------------------------------------------------


def adverse_event_table(
    events: pd.DataFrame,
    frame: pd.DataFrame,
    *,
    by: str | None = None,
    group_labels: Mapping[str, str] | None = None,
) -> tuple[list[Column], list[dict[str, Any]]]:
    """Adverse events by CTCAE term: events per grade, and patients affected (any grade, grade ≥3).

    Free-text "other" terms are counted as "Other" and never shown (they may identify a patient).
    """
    n = len(frame)
    if n == 0:
        raise AnalysisError("no patients in this cohort")
    group_labels = group_labels or {}
    levels = sorted(frame[by].dropna().unique()) if by else []
    group_of = frame.set_index("patient_id")[by] if by else None
    columns = [Column("label", "CTCAE term", "text"), Column("term", "Code", "text", shown=False)]
    columns += [Column(f"grade_{g}", f"Grade {g}", "count") for g in range(1, 6)]
    columns += [
        Column("events", "Events", "count"),
        Column("patients", "Patients", "count"),
        Column("percent", "% of cohort", "percent", digits=1),
        Column("patients_grade3plus", "Patients grade ≥3", "count"),
    ]
    for level in levels:
        suffix = level_text(level)
        name = group_labels.get(f"{by}={suffix}", suffix)
        columns += [
            Column(f"patients_{suffix}", f"Patients: {name}", "count"),
            Column(f"percent_{suffix}", f"%: {name}", "percent", digits=1),
        ]
    sizes = {level_text(level): int((frame[by] == level).sum()) for level in levels}

    def row(term: str, label: str, part: pd.DataFrame) -> dict[str, Any]:
        patients = set(part["patient_id"])
        result = {
            "term": term,
            "label": label,
            **{f"grade_{g}": int((part["grade"] == g).sum()) for g in range(1, 6)},
            "events": len(part),
            "patients": len(patients),
            "percent": 100 * len(patients) / n,
            "patients_grade3plus": part.loc[part["grade"] >= 3, "patient_id"].nunique(),
        }
        for level in levels:
            assert group_of is not None  # levels come from the grouping column
            suffix = level_text(level)
            count = sum(1 for pid in patients if group_of[pid] == level)
            result |= {
                f"patients_{suffix}": count,
                f"percent_{suffix}": 100 * count / sizes[suffix] if sizes[suffix] else None,
            }
        return result

    rows = [
        row(term, CtcaeTerm(term).label.removesuffix(" (specify)"), part)
        for term, part in events.groupby("ctcae_term")
    ]
    rows.sort(key=lambda r: (-r["patients"], r["label"]))
    rows.append(row("any", "Any adverse event", events))
    return columns, rows


# --- protocol schedule and dose intensity ----------------------------------------------------------

#: How a course ended, in words (``course_end`` in the dataset).
COURSE_ENDINGS = {
    "completed": "Completed",
    "recovered": "Stopped: recovered or responded",
    "low_icp": "Stopped: low intracranial pressure",
    "intolerance": "Stopped: intolerance or toxicity",
    "progression": "Stopped: disease progression",
    "death": "Stopped: death",
    "other": "Stopped: other reason",
}


def _median(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.median()) if not values.empty else None


def intensity_columns(drugs: Sequence[str]) -> list[Column]:

    return [
        Column("label", "Patients", "text"),
        Column("protocol", "Protocol (code and version)", "text", shown=False),
        Column("n", "Treated", "count"),
        Column("with_course", "With a planned course", "count"),
        Column("planned", "Injections due", "count"),
        Column("given", "Given", "count"),
        Column("changed", "Changed", "count"),
        Column("missed", "Missed", "count"),
        Column("adherence", "Given of due (%)", "percent", digits=1, scale=100.0),
        Column("rdi", "Median relative dose intensity", digits=2),
        Column("reductions", "Patients with a dose reduction", "count"),
        Column("injections", "Median injections per patient", digits=1),
        Column("days_to_first_it", "Median days to the first dose", digits=1),
        *(
            Column(
                f"cum_{drug}_mg", f"Median cumulative {IntrathecalDrug(drug).label.lower()} (mg)", digits=1
            )
            for drug in drugs
        ),
    ]


def intensity_row(label: str, part: pd.DataFrame, drugs: Sequence[str]) -> dict[str, Any]:
    """Planned against given, dose intensity and cumulative doses of a group of treated patients."""
    planned = int(part["planned_injections"].sum())
    return {
        "label": label,
        "n": len(part),
        "with_course": int(part["it_protocol"].notna().sum()),
        "planned": planned,
        "given": int(part["given_injections"].sum()),
        "changed": int(part["changed_injections"].sum()),
        "missed": int(part["missed_injections"].sum()),
        "adherence": part["given_injections"].sum() / planned if planned else None,
        "rdi": _median(part["relative_dose_intensity"]),
        "reductions": int((part["dose_reductions"] > 0).sum()),
        "injections": _median(part["it_dose_count"].astype(float)),
        "days_to_first_it": _median(part["days_to_first_it"].astype(float)),
        **{
            f"cum_{drug}_mg": _median(part[f"cum_{drug}_mg"].where(part[f"cum_{drug}_mg"] > 0))
            for drug in drugs
        },
    }


#: Above this many treated patients the dose timeline shows injections per week, not one row each:
#: a row per patient stops being readable (and its SVG grows by about 1 KB a patient).
DOSE_TIMELINE_MAX_LANES = 200


def dose_schedule(
    b: SectionBuilder, frame: pd.DataFrame, patients, *, group_labels: Mapping[str, str], account: bool
) -> None:
    """Planned against given per protocol, how courses ended, and each patient's dose timeline.

    ``account``: this is the section's own analysis (it records who was analysed, for the flow).
    """

    if frame.empty:
        raise AnalysisError("no patient is in this cohort")
    treated = frame[frame["it_dose_count"] > 0]
    if account:
        b.section.analysed, b.section.excluded = len(treated), len(frame) - len(treated)
        b.section.exclusions = (
            f"no intrathecal dose ({len(frame) - len(treated)})" if len(frame) > len(treated) else ""
        )
    if treated.empty:
        raise AnalysisError("no intrathecal dose is recorded for this cohort")
    drugs = [
        d.value
        for d in IntrathecalDrug
        if f"cum_{d.value}_mg" in treated and (treated[f"cum_{d.value}_mg"] > 0).any()
    ]
    rows = [intensity_row("All treated patients", treated, drugs)]
    names = records.protocol_labels(treated["it_protocol"].dropna().unique())
    for protocol, part in treated.groupby("it_protocol"):
        label = group_labels.get(f"it_protocol={protocol}") or names.get(protocol, str(protocol))
        rows.append(intensity_row(label, part, drugs) | {"protocol": protocol})
    b.table(
        "intensity",
        "Schedule adherence and dose intensity",
        intensity_columns(drugs),
        rows,
        [
            "Due: the planned injections given, changed or missed (not those cancelled when a course stopped). "
            "Relative dose intensity: mg given / mg proposed over the injections due (dexamethasone aside).",
            "Days to the first dose from the index admission (NPSLE), the LM diagnosis (LM) or ICANS onset (ICANS).",
        ],
    )
    endings = treated["course_end"].dropna().value_counts()
    if not endings.empty:
        b.table(
            "course_endings",
            "How the courses ended",
            [
                Column("reason", "Ending", "text"),
                Column("code", "Code", "text", shown=False),
                Column("n", "Patients", "count"),
            ],
            [
                {"reason": COURSE_ENDINGS.get(code, code), "code": code, "n": int(n)}
                for code, n in endings.items()
            ],
            ["The last course of each patient; courses still running are not counted."],
        )
    schedule = records.injection_schedule(patients, treated["patient_id"])
    if schedule.empty:
        return
    day = schedule["when"].dt.normalize()
    first = day.groupby(schedule["patient_id"]).transform("min")
    schedule = schedule.assign(days=(day - first).dt.days.astype(float))
    if len(treated) > DOSE_TIMELINE_MAX_LANES:
        weekly = pd.crosstab(schedule["days"] // 7, schedule["status"])
        b.figure(
            "dose_timeline",
            "Dose timeline",
            dose_rate_plot(
                b.key_for("dose_timeline"), weekly, xlabel="Weeks since the first intrathecal dose"
            ),
            f"{len(treated):,} treated patients are too many for one row each (more than "
            f"{DOSE_TIMELINE_MAX_LANES}): intrathecal injections per week since each patient's first dose, "
            "stacked by how they relate to the plan; open bars: planned injections missed.",
        )
        return
    by_patient = dict(tuple(schedule.groupby("patient_id", sort=False)))
    empty = schedule.iloc[:0]
    lanes = []
    for row in treated.sort_values("study_code").itertuples():
        mine = by_patient.get(row.patient_id, empty)
        lanes.append(
            DoseLane(
                label=row.study_code,
                times=mine["days"].tolist(),
                statuses=mine["status"].tolist(),
                doses_mg=[None if pd.isna(v) else float(v) for v in mine["main_mg"]],
            )
        )
    b.figure(
        "dose_timeline",
        "Dose timeline",
        dose_timeline_plot(
            b.key_for("dose_timeline"),
            lanes,
            xlabel="Days since the first intrathecal dose",
            dose_label="dose of the main drug",
        ),
        "One row per patient (study code): each intrathecal injection, sized by the dose of its main drug "
        "(dexamethasone when alone), coloured by how it relates to the plan; open circles: planned injections missed.",
    )


# --- numbers as a paper prints them --------------------------------------------------------------

#: Decimals a paper prints for a value in this unit: ages, months and years one, whole units none.
UNIT_DIGITS = {
    "years": 1,
    "months": 1,
    "days": 0,
    "points": 0,
    "count": 0,
    "mmH2O": 0,
    "10⁶/L": 0,
    "g/L": 2,
    "ratio": 2,
}


def unit_digits(unit: str, default: int = 2) -> int:
    return UNIT_DIGITS.get(unit, default)


def median_iqr_text(median: float | None, q1: float | None, q3: float | None, digits: int) -> str:
    """ "29.0 [21.8, 40.3]": a median and its quartiles with the unit's decimals."""
    if median is None or pd.isna(median):
        return "—"
    return f"{median:.{digits}f} [{q1:.{digits}f}, {q3:.{digits}f}]"


def count_percent_text(count: float | None, percent: float | None) -> str:
    """ "26 (13.5)": a count and its percentage to one decimal."""
    if count is None or pd.isna(count):
        return "—"
    return f"{int(count)} ({percent:.1f})"


def characteristic_label(label: str, unit: str, continuous: bool) -> str:
    """A Table 1 row label with its unit and what its cells hold: "Age, years, median [IQR]"."""
    if continuous:
        return (
            f"{label}, {unit}, median [IQR]"
            if unit and unit not in ("points", "count")
            else f"{label}, median [IQR]"
        )
    return f"{label}, n (%)"


@dataclass(frozen=True)
class Characteristic:
    """A Table 1 row: the dataset column, whether it is continuous, and the heading it sits under."""

    variable: str
    continuous: bool = False
    group: str = ""


#: The numbers behind a side-by-side summary cell: (``table_one`` column prefix, label, kind).
_RAW_SUMMARY = (
    ("n", "Patients with a value", "count"),
    ("median", "Median", "number"),
    ("q1", "Q1", "number"),
    ("q3", "Q3", "number"),
    ("count", "Count", "count"),
    ("percent", "Percent", "number"),
)


def _number(value: Any) -> Any:
    """A table_one number, or None where the row has none (a continuous row has no count)."""
    return None if value is None or pd.isna(value) else value


def side_by_side(
    parts: Sequence[tuple[str, str, Described]],
    rows: Sequence[Characteristic],
    labels: Mapping[str, str],
    units: Mapping[str, str],
    group_labels: Mapping[str, str],
    by: str,
) -> tuple[list[Column], list[dict[str, Any]]]:
    """Several ``describe_groups`` results as one table, side by side (the paper's Table 1 before
    and after matching): per part, a summary column per group, p and SMD. ``parts`` are
    (key, caption, described); summaries use the unit's decimals (``UNIT_DIGITS``). Hidden columns
    keep the numbers behind each summary (``{key}_median_{level}``, ``…_q1_…``, ``…_q3_…``,
    ``…_count_…``, ``…_percent_…``, ``…_n_…``: ``table_one``'s own values) for the JSON and workbook."""
    columns = [Column("label", "Characteristic", "text"), Column("variable", "Variable", "text", shown=False)]
    for key, caption, described in parts:
        for level in described.levels:
            suffix = level_text(level)
            name = group_labels.get(f"{by}={suffix}", suffix)
            size = described.sizes[suffix]
            columns.append(
                Column(f"{key}_summary_{suffix}", f"{name}{caption} (n = {size})", "text", missing="")
            )
            columns += [
                Column(f"{key}_{raw}_{suffix}", f"{label}: {name}{caption}", kind, missing="", shown=False)
                for raw, label, kind in _RAW_SUMMARY
            ]
        columns += [
            Column(f"{key}_p", f"p{caption}", "p", missing=""),
            Column(f"{key}_smd", f"SMD{caption}", "number", digits=2, missing=""),
            Column(f"{key}_test", f"Test{caption}", "text", shown=False),
        ]
    indexed = [
        (
            key,
            {row["variable"]: row for row in described.table.to_dict("records") if row.get("level") is None},
        )
        for key, _, described in parts
    ]
    out: list[dict[str, Any]] = []
    heading = ""
    for row in rows:
        if row.group and row.group != heading:
            out.append({"label": row.group, "variable": None})
        heading = row.group
        if not any(row.variable in by_variable for _, by_variable in indexed):
            continue  # not described (constant or unrecorded): the table's notes say why
        unit = units.get(row.variable, "")
        label = characteristic_label(labels.get(row.variable, row.variable), unit, row.continuous)
        record: dict[str, Any] = {"label": f"\u2003{label}" if row.group else label, "variable": row.variable}
        for key, by_variable in indexed:
            found = by_variable.get(row.variable)
            if found is None:
                continue
            for level in parts[0][2].levels:
                s = level_text(level)
                record |= {f"{key}_{raw}_{s}": _number(found.get(f"{raw}_{s}")) for raw, _, _ in _RAW_SUMMARY}
                record[f"{key}_summary_{s}"] = (
                    median_iqr_text(
                        found.get(f"median_{s}"),
                        found.get(f"q1_{s}"),
                        found.get(f"q3_{s}"),
                        unit_digits(unit),
                    )
                    if row.continuous
                    else count_percent_text(found.get(f"count_{s}"), found.get(f"percent_{s}"))
                )
            record |= {
                f"{key}_p": found.get("p"),
                f"{key}_smd": found.get("smd"),
                f"{key}_test": found.get("test"),
            }
        out.append(record)
    return columns, out
