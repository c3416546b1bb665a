"""ICANS report: early intrathecal dexamethasone + methotrexate (IDM) for neurotoxicity after CAR-T.

It follows the ICANS paper (Meng et al., Front. Immunol. 2025): its remission rule (grade 3–4 ICANS
down to grade ≤1, grade 1–2 back to ICE 10; the stricter grade 0 with ICE 10 as a second row), its
time origin (the first IDM), its before/after comparisons on every patient, its trajectories of grade
and ICE, the CSF before and after IDM, its baseline table, and OS and PFS from the CAR-T infusion.
Time to remission is a cumulative incidence with death as the competing event (Aalen–Johansen), so a
patient without remission is censored at the last assessment rather than counted as never remitting.
A small single-arm series, so the report also lists every patient (by study code, age in whole years
capped at 90, no typed free text such as the product name).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analytics.competing_risks import cumulative_incidence
from analytics.datasets.icans import PAPER_RULE, STRICT_RULE, icans_assessments
from analytics.deidentify import capped_age
from analytics.errors import AnalysisError
from analytics.plots import (
    KmPanel,
    SlopePanel,
    TrajectoryPanel,
    cumulative_incidence_plot,
    km_plot,
    slope_plot,
    trajectory_plot,
)
from analytics.reports import records
from analytics.reports.base import Column, SectionBuilder, SectionPlan, StudyReport
from analytics.reports.common import (
    PAIRED_COLUMNS,
    PROPORTION_COLUMNS,
    at_risk_table,
    compare_survival,
    dose_schedule,
    km_columns,
    km_rows,
    paired_row,
    proportion,
    quartiles,
)
from registry.choices import CarTTarget, HaematologicalMalignancy

PAPER = "Meng et al., Front. Immunol. 2025"
MALIGNANCIES = dict(HaematologicalMalignancy.choices)
TARGETS = {code: label.split(" (")[0] for code, label in CarTTarget.choices}
SEX = {1: "Male", 0: "Female"}
YES_NO = {1: "Yes", 0: "No"}

#: (before, after, label, unit, log scale) of each paired measure.
GRADE_AND_ICE = (
    ("grade_before_idm", "grade_after_idm", "ICANS grade", "grade", False),
    ("ice_before_idm", "ice_after_idm", "ICE score", "points", False),
)
CSF_MEASURES = (
    ("car_t_before_idm", "car_t_after_idm", "CSF CAR-T cells", "cells/µL", True),
    ("protein_before_idm", "protein_after_idm", "CSF protein", "g/L", False),
    ("il6_before_idm", "il6_after_idm", "CSF IL-6", "pg/mL", True),
)
CSF_TEST_NOTE = (
    "Two-sided Wilcoxon signed-rank test of each patient's value before and after IDM (exact without "
    "ties below 50 pairs, as R's wilcox.test). The paper's abstract reports a significant fall of CAR-T "
    "cells and a tendency for protein and IL-6 without naming its test; a paired rank test is the one "
    "that fits 13 skewed paired values."
)
#: OS and PFS from the first CAR-T infusion: (time, event, endpoint).
ENDPOINTS = (("os_months", "os_event", "OS"), ("pfs_months", "pfs_event", "PFS"))
RISK_STEP_MONTHS = 3.0
INCIDENCE_DAYS = (1, 2, 3, 5, 7, 14, 28)
TRAJECTORY_STEP_HOURS = 12
#: Above this many patients the spaghetti plot draws one patient in k (by study code) so that at most
#: this many lines remain; the medians are still of every patient.
TRAJECTORY_MAX_LINES = 200

PATIENT_COLUMNS = [
    Column("study_code", "Patient", "text"),
    Column("age", "Age", digits=0),
    Column("sex", "Sex", "text"),
    Column("malignancy", "Disease", "text"),
    Column("target", "CAR-T target", "text"),
    Column("car_t_dose", "Dose (×10⁶/kg)", digits=1),
    Column("prior_lines", "Prior lines", "count"),
    Column("marrow_blasts_pct", "Marrow blasts (%)", digits=1),
    Column("cns", "CNS", "text"),
    Column("underlying_malignancy", "Disease code", "text", shown=False),
    Column("car_t_target", "Target code", "text", shown=False),
    Column("sex_male", "Male", "count", shown=False),
    Column("cns_involvement", "CNS involvement", "count", shown=False),
]
COURSE_COLUMNS = [
    Column("study_code", "Patient", "text"),
    Column("crs_max_grade", "Worst CRS", "count"),
    Column("icans_max_grade", "Worst ICANS", "count"),
    Column("days_infusion_to_icans", "Onset day", "count"),
    Column("hours_onset_to_idm", "Onset to IDM (h)", digits=0),
    Column("it_dose_count", "IDMs", "count"),
    Column("ice_before_idm", "ICE before", "count"),
    Column("ice_after_idm", "ICE after", "count"),
    Column("remission_text", "Remission (days)", "text"),
    Column("days_idm_to_remission", "Days to remission", digits=1, shown=False),
    Column("outcome", "Status", "text"),
    Column("remission", "Remission (0/1)", "count", shown=False),
    Column("os_months", "Follow-up (months)", digits=1, shown=False),
]
BASELINE_COLUMNS = [
    Column("characteristic", "Characteristic", "text"),
    Column("value", "Median (range) or n (%)", "text"),
    Column("n", "Recorded", "count"),
    Column("variable", "Variable", "text", shown=False),
    Column("level", "Level", "text", shown=False),
    Column("median", "Median", shown=False),
    Column("minimum", "Minimum", shown=False),
    Column("maximum", "Maximum", shown=False),
    Column("count", "Count", "count", shown=False),
    Column("percent", "%", "percent", shown=False),
]


def _range_row(label: str, values: pd.Series, variable: str, digits: int) -> dict[str, Any] | None:
    present = values.dropna().astype(float)
    if present.empty:
        return None
    median, low, high = float(present.median()), float(present.min()), float(present.max())
    return {
        "characteristic": label,
        "value": f"{median:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})",
        "n": len(present),
        "variable": variable,
        "median": median,
        "minimum": low,
        "maximum": high,
    }


def _count_row(label: str, hits: int, n: int, variable: str, level: str = "") -> dict[str, Any]:
    percent = 100 * hits / n if n else None
    return {
        "characteristic": label,
        "value": f"{hits} ({percent:.1f}%)" if percent is not None else "—",
        "n": n,
        "variable": variable,
        "level": level,
        "count": hits,
        "percent": percent,
    }


def _level_rows(
    frame: pd.DataFrame, variable: str, heading: str, labels: dict[Any, str]
) -> list[dict[str, Any]]:
    values = frame[variable].dropna()
    counts = values.value_counts()
    order = [level for level in labels if level in counts.index] + sorted(set(counts.index) - set(labels))
    return [
        _count_row(
            f"{heading}: {labels.get(level, str(level))}",
            int(counts[level]),
            len(values),
            variable,
            str(level),
        )
        for level in order
    ]


def _median_range(values: pd.Series) -> tuple[float | None, float | None, float | None]:
    present = values.dropna().astype(float)
    if present.empty:
        return None, None, None
    return float(present.median()), float(present.min()), float(present.max())


class IcansReport(StudyReport):
    title = "ICANS after CAR-T cells: early intrathecal dexamethasone and methotrexate"

    def sections(self) -> list[SectionPlan]:
        return [
            ("baseline", "Patients at baseline", self.baseline),
            ("patients", "Patients", self.patients),
            ("remission", "ICANS remission", self.remission),
            ("time_to_remission", "Time from the first IDM to remission", self.time_to_remission),
            ("grade_and_ice", "ICANS grade and ICE score before and after IDM", self.grade_and_ice),
            ("trajectories", "ICANS grade and ICE score over time", self.trajectories),
            ("csf", "CSF before and after IDM", self.csf),
            ("survival", "Overall and progression-free survival", self.survival),
            ("doses", "IDM schedule and dose intensity", self.doses),
        ]

    # --- who the patients are --------------------------------------------------------------------

    def baseline(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, ["patient_id"])
        n = len(frame)
        rows: list[dict[str, Any] | None] = [
            _count_row("Female", int((frame["sex_male"] == 0).sum()), n, "sex_male", "0"),
            _range_row("Age (years)", frame["age"], "age", 0),
            *_level_rows(frame, "underlying_malignancy", "Disease", MALIGNANCIES),
            _range_row("Prior lines of therapy", frame["prior_lines"], "prior_lines", 0),
            *_level_rows(frame, "car_t_target", "CAR-T target", TARGETS),
            {
                "characteristic": "CAR-T products (distinct)",
                "value": str(frame["car_t_product"].dropna().nunique()),
                "n": int(frame["car_t_product"].notna().sum()),
                "variable": "car_t_product",
                "count": int(frame["car_t_product"].dropna().nunique()),
            },
            _range_row("CAR-T dose (×10⁶ cells/kg)", frame["car_t_dose"], "car_t_dose", 1),
            _range_row(
                "Marrow blasts before lymphodepletion (%)", frame["marrow_blasts_pct"], "marrow_blasts_pct", 2
            ),
            _count_row(
                "CNS involvement",
                int((frame["cns_involvement"] == 1).sum()),
                int(frame["cns_involvement"].notna().sum()),
                "cns_involvement",
                "1",
            ),
            *_level_rows(frame, "crs_max_grade", "Worst CRS grade", {g: f"grade {g}" for g in range(6)}),
            _count_row(
                "Worst ICANS grade 1–2",
                int(frame["icans_max_grade"].isin([1, 2]).sum()),
                int(frame["icans_max_grade"].notna().sum()),
                "icans_max_grade",
                "1–2",
            ),
            _count_row(
                "Worst ICANS grade 3–4",
                int(frame["icans_max_grade"].isin([3, 4]).sum()),
                int(frame["icans_max_grade"].notna().sum()),
                "icans_max_grade",
                "3–4",
            ),
            _range_row(
                "ICANS onset (day after infusion)",
                frame["days_infusion_to_icans"],
                "days_infusion_to_icans",
                0,
            ),
            _range_row(
                "ICANS onset to the first IDM (hours)", frame["hours_onset_to_idm"], "hours_onset_to_idm", 0
            ),
            _range_row("IDMs per patient", frame["it_dose_count"], "it_dose_count", 0),
        ]
        b.table(
            "summary",
            f"Baseline characteristics ({n} patients)",
            BASELINE_COLUMNS,
            [row for row in rows if row is not None],
            [
                "Median (range) for numbers, n (%) for categories; 'Recorded' is the number of patients with a "
                "value (the percentages are of them).",
                "Disease, CAR-T target, dose, prior lines, marrow blasts and CNS involvement are those recorded "
                "with the first CAR-T infusion; the product names are free text and only counted.",
            ],
        )

    def patients(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, ["patient_id"]).sort_values("study_code")
        rows = []
        for row in frame.to_dict("records"):
            remitted = row["remission"] == 1
            dead = row["os_event"] == 1
            rows.append(
                row
                | {
                    "age": capped_age(row["age"]),  # a listing of patients: de-identified like a download
                    "sex": SEX.get(row["sex_male"], "—"),
                    "malignancy": MALIGNANCIES.get(row["underlying_malignancy"], "—"),
                    "target": TARGETS.get(row["car_t_target"], "—"),
                    "cns": YES_NO.get(row["cns_involvement"], "—")
                    if pd.notna(row["cns_involvement"])
                    else "—",
                    "remission_text": f"Yes ({row['days_idm_to_remission']:.1f})" if remitted else "No",
                    "outcome": "Died" if dead else ("Alive" if row["os_event"] == 0 else "—"),
                }
            )
        b.table("patients", "Disease and CAR-T infusion (study codes only)", PATIENT_COLUMNS, rows)
        b.table(
            "course",
            "ICANS course and outcome",
            COURSE_COLUMNS,
            rows,
            [
                "Onset day: days from the infusion to the first assessment with ICANS grade ≥1. ICE before: the "
                "last assessment at or before the first IDM; after: at remission, or the last assessment.",
                f"Remission by the ICANS paper's rule: {PAPER_RULE}; in brackets, days from the first IDM. "
                "Status: alive or dead at the last follow-up.",
            ],
        )

    # --- remission ---------------------------------------------------------------------------------

    def remission(self, b: SectionBuilder) -> None:
        data = b.analysed(self.frame, ["remission", "remission_strict"])
        rows = [
            {"label": "ICANS paper's definition¹", "rule": "paper"}
            | proportion(int(data["remission"].sum()), len(data)),
            {"label": "Stricter: grade 0 with ICE 10²", "rule": "strict"}
            | proportion(int(data["remission_strict"].sum()), len(data)),
        ]
        recorded = int(data["remission_recorded"].sum())
        b.table(
            "rate",
            "Remission rate",
            [
                Column("label", "Definition", "text"),
                Column("rule", "Rule", "text", shown=False),
                *PROPORTION_COLUMNS,
            ],
            rows,
            [
                f"¹ The ICANS paper's definition ({PAPER}): {PAPER_RULE}.",
                f"² Stricter: {STRICT_RULE}.",
                "Derived from the recorded ICANS assessments (ICE items and ASTCT domains); exact "
                f"(Clopper–Pearson) 95% intervals. Remission as entered on response assessments: {recorded} of "
                f"{len(data)}.",
            ],
        )

    def time_to_remission(self, b: SectionBuilder) -> None:
        data = b.analysed(self.frame, ["remission_time_days", "remission_status"])
        cif = cumulative_incidence(data, "remission_time_days", "remission_status")
        rows = []
        for label, flag, days, aj_median in (
            ("Paper's rule", "remission", "days_idm_to_remission", cif.median),
            ("Grade 0 with ICE 10", "remission_strict", "days_idm_to_remission_strict", None),
        ):
            remitted = data.loc[data[flag] == 1, days]
            median, low, high = _median_range(remitted)
            rows.append(
                {
                    "label": label,
                    "n": len(data),
                    "remitted": len(remitted),
                    "median": median,
                    "minimum": low,
                    "maximum": high,
                    "aj_median": aj_median,
                }
            )
        rows[0] |= {"competing": cif.competing, "censored": cif.censored}
        b.table(
            "summary",
            "Days from the first IDM to remission",
            [
                Column("label", "Definition", "text"),
                Column("n", "Patients", "count"),
                Column("remitted", "Remitted", "count"),
                Column("median", "Median", digits=1),
                Column("minimum", "Shortest", digits=1),
                Column("maximum", "Longest", digits=1),
                Column("aj_median", "Median (cumulative incidence)", digits=1, missing="—"),
                Column("competing", "Died before remission", "count"),
                Column("censored", "Censored", "count"),
            ],
            rows,
            [
                "Median, shortest and longest among the patients who remitted (as the paper reports them). The "
                "cumulative-incidence median is the first time half of all patients had remitted.",
                "Patients alive without remission are censored at their last ICANS assessment; a death before "
                "remission is a competing event (a death is dated by day, and placed at the later of that day's "
                "start and the last assessment).",
            ],
        )
        at = cif.incidence_at(INCIDENCE_DAYS)
        b.table(
            "incidence",
            "Cumulative incidence of remission (paper's rule)",
            [
                Column("time", "Days since the first IDM", digits=0),
                Column("at_risk", "Followed (at risk)", "count"),
                Column("incidence", "In remission (%)", digits=1, scale=100),
                Column("competing_incidence", "Died before remission (%)", digits=1, scale=100),
            ],
            at,
            [
                "Aalen–Johansen estimates (lifelines; equal to R's survfit with a multi-state status). No "
                "confidence interval is given: lifelines' variance is not R's."
            ],
        )
        b.figure(
            "cumulative_incidence",
            "Cumulative incidence of remission after the first IDM",
            cumulative_incidence_plot(
                b.key_for("cumulative_incidence"),
                cif.curve,
                event_label="Remission (paper's rule)",
                competing_label="Death before remission",
                xlabel="Days since the first IDM",
                ylabel="Patients",
            ),
            f"Share of all {cif.n} patients in remission (green) and dead before remission (orange) by each day; "
            "ticks mark patients censored at their last assessment.",
        )

    # --- before and after ------------------------------------------------------------------------------

    def _paired(
        self,
        b: SectionBuilder,
        measures: Sequence[tuple[str, str, str, str, bool]],
        *,
        before_label: str,
        after_label: str,
        notes: Sequence[str],
    ) -> None:
        b.analysed(self.frame, ["patient_id"])  # an empty cohort stops here, plainly
        rows, panels = [], []
        for before, after, label, unit, log_scale in measures:
            with b.attempt(label):
                pairs = self.frame[[before, after]].dropna()
                rows.append(
                    paired_row(self.frame, before, after, label)
                    | {"unit": unit, "fell": int((pairs[after] < pairs[before]).sum())}
                )
                panels.append(
                    SlopePanel(
                        title=label,
                        before=pairs[before].tolist(),
                        after=pairs[after].tolist(),
                        ylabel=f"{label} ({unit})",
                        before_label=before_label,
                        after_label=after_label,
                        log_scale=log_scale,
                    )
                )
        b.section.analysed = max((row["n"] for row in rows), default=0)
        b.section.excluded = len(self.frame) - b.section.analysed
        b.section.exclusions = "; ".join(
            f"{row['label']}: {len(self.frame) - row['n']} without both values"
            for row in rows
            if row["n"] < len(self.frame)
        )
        if not rows:
            raise AnalysisError("no measure has two patients with both values")
        b.table(
            "paired",
            "Paired comparison (Wilcoxon signed-rank)",
            [*PAIRED_COLUMNS, Column("fell", "Lower after", "count"), Column("unit", "Unit", "text")],
            rows,
            [
                *notes,
                "V is the rank sum of the positive differences (before − after); 'Lower after': patients whose "
                "value after is lower than before.",
            ],
        )
        b.figure(
            "slopes",
            b.section.title,
            slope_plot(b.key_for("slopes"), panels),
            "Lines join each patient's values; diamonds mark medians.",
        )

    def grade_and_ice(self, b: SectionBuilder) -> None:
        remitted = int((self.frame["remission"] == 1).sum())
        self._paired(
            b,
            GRADE_AND_ICE,
            before_label="Before IDM",
            after_label="At remission or last",
            notes=[
                "Before: each patient's last assessment at or before the first IDM. After: the assessment at "
                f"remission by the paper's rule ({remitted} patients), or, without remission, the last "
                f"assessment ({len(self.frame) - remitted}). No patient is left out for the timing of the "
                "assessments."
            ],
        )

    def csf(self, b: SectionBuilder) -> None:
        self._paired(
            b,
            CSF_MEASURES,
            before_label="Before IDM",
            after_label="After IDM",
            notes=[
                "Before: the CSF of the last lumbar puncture at or before the first IDM (taken before the "
                "injection). After: the last lumbar puncture after the first IDM.",
                CSF_TEST_NOTE,
            ],
        )

    # --- trajectories --------------------------------------------------------------------------------

    def _course_hours(self) -> pd.DataFrame:
        """Each ICANS assessment from onset on, with hours since the patient's first IDM."""
        ids = self.frame["patient_id"]
        assessments = icans_assessments(self.cohort.patients)
        assessments = assessments[assessments["patient_id"].isin(set(ids))]
        idm = records.intrathecal_injections(self.cohort.patients, ids).groupby("patient_id")["when"].min()
        onset = assessments[assessments["icans_grade"] >= 1].groupby("patient_id")["assessed_at"].min()
        course = assessments.join(idm.rename("idm"), on="patient_id", how="inner")
        course = course.join(onset.rename("onset"), on="patient_id", how="inner")
        course = course[course["assessed_at"] >= course["onset"]]
        course["hours"] = (course["assessed_at"] - course["idm"]).dt.total_seconds() / 3600
        return course.merge(self.frame[["patient_id", "study_code"]], on="patient_id")

    def trajectories(self, b: SectionBuilder) -> None:
        b.analysed(self.frame, ["patient_id"])  # an empty cohort stops here, plainly
        course = self._course_hours()
        patients = course["patient_id"].nunique()
        b.section.analysed, b.section.excluded = patients, len(self.frame) - patients
        b.section.exclusions = (
            f"no ICANS assessment or no IDM ({len(self.frame) - patients})"
            if len(self.frame) > patients
            else ""
        )
        if course.empty:
            raise AnalysisError("no patient has ICANS assessments and an IDM")
        medians = _medians_over_time(course, TRAJECTORY_STEP_HOURS)
        b.table(
            "medians",
            "Median ICANS grade and ICE score by hours since the first IDM",
            [
                Column("hours", "Hours since the first IDM", digits=0),
                Column("patients", "Patients assessed", "count"),
                Column("median_grade", "Median ICANS grade", digits=1),
                Column("median_ice", "Median ICE score", digits=1),
                Column("q1_ice", "ICE Q1", digits=1, shown=False),
                Column("q3_ice", "ICE Q3", digits=1, shown=False),
            ],
            medians,
            [
                f"Every {TRAJECTORY_STEP_HOURS} hours: each patient's latest assessment at that time, among the "
                "patients whose assessments reach it (from their ICANS onset to their last assessment); no value "
                "is carried past a patient's last assessment."
            ],
        )
        # The median is drawn only where at least half of the patients are still assessed: later marks
        # hold only the slowest to respond (the table keeps every mark, with its count).
        drawn = medians[medians["patients"] >= patients / 2]
        codes = sorted(course["study_code"].unique())
        step = -(-len(codes) // TRAJECTORY_MAX_LINES)  # every patient, or every step-th by study code
        drawn_codes = set(codes[::step])
        lined = course[course["study_code"].isin(drawn_codes)].sort_values(["study_code", "hours"])
        panels = []
        for column, label, ticks, median in (
            ("icans_grade", "ICANS grade (ASTCT)", (0, 1, 2, 3, 4), "median_grade"),
            ("ice_score", "ICE score", (0, 2, 4, 6, 8, 10), "median_ice"),
        ):
            lines = [
                (code, part["hours"].tolist(), part[column].astype(float).tolist())
                for code, part in lined.groupby("study_code")
            ]
            panels.append(
                TrajectoryPanel(
                    label, label, lines, drawn["hours"].tolist(), drawn[median].tolist(), yticks=ticks
                )
            )
        b.figure(
            "spaghetti",
            "ICANS grade and ICE score per patient",
            trajectory_plot(
                b.key_for("spaghetti"), panels, xlabel="Hours since the first IDM", marker_label="First IDM"
            ),
            (
                "Thin lines: each patient from ICANS onset to the last assessment"
                if step == 1
                else f"Thin lines: {len(drawn_codes):,} of the {len(codes):,} patients (one in {step} by study "
                f"code; more than {TRAJECTORY_MAX_LINES} lines are not readable), from ICANS onset to the last "
                "assessment"
            )
            + "; thick line: the median of the table above (every patient), where at least half of the patients "
            "are still assessed.",
        )

    # --- survival --------------------------------------------------------------------------------------

    def survival(self, b: SectionBuilder) -> None:
        needed = [column for time, event, _ in ENDPOINTS for column in (time, event)]
        data = b.analysed(self.frame, needed)
        labels = {"all": "All patients"}
        summary, risks, panels = [], [], []
        for time, event, endpoint in ENDPOINTS:
            comparison = compare_survival(data, time, event, None, risk_step=RISK_STEP_MONTHS)
            summary += km_rows(comparison.km, endpoint, labels)
            risks.append((endpoint, comparison.at_risk))
            panels.append(
                KmPanel(
                    title=endpoint,
                    curve=comparison.km.curve,
                    groups=[("all", "All patients")],
                    xlabel="Months since the CAR-T infusion",
                    ylabel="Alive" if endpoint == "OS" else "Alive without relapse or progression",
                    at_risk=comparison.at_risk,
                )
            )
        b.figure(
            "km",
            "Kaplan–Meier: overall and progression-free survival",
            km_plot(b.key_for("km"), panels),
            "Step curves with 95% confidence bands; ticks mark censored patients. Numbers at risk below.",
        )
        b.table(
            "medians",
            "Kaplan–Meier medians",
            km_columns(unit="months", digits=1),
            summary,
            [
                "From the first CAR-T infusion. OS: death from any cause. PFS: relapse or progression after "
                "CAR-T, or death. Patients without the event are censored at their last contact.",
                "Median with R's 95% interval (log transform of S); NR: the limit curve never reaches 0.5.",
            ],
        )
        columns, rows = at_risk_table(risks, labels, "mo")
        b.table("at_risk", "Numbers at risk", columns, rows)

    def doses(self, b: SectionBuilder) -> None:
        dose_schedule(b, self.frame, self.cohort.patients, group_labels=self.group_labels, account=True)


def _medians_over_time(course: pd.DataFrame, step: int) -> pd.DataFrame:
    """At every ``step`` hours: how many patients are being assessed, and their median grade and ICE."""
    first = float(np.floor(course["hours"].min() / step) * step)
    marks = np.arange(first, course["hours"].max() + 1e-9, step)
    rows = []
    for mark in marks:
        latest = course[course["hours"] <= mark].groupby("patient_id").last()
        span = course.groupby("patient_id")["hours"].agg(["min", "max"])
        followed = span[(span["min"] <= mark) & (span["max"] >= mark)].index
        current = latest.loc[latest.index.intersection(followed)]
        if current.empty:
            continue
        ice_median, ice_q1, ice_q3 = quartiles(current["ice_score"].astype(float))
        rows.append(
            {
                "hours": float(mark),
                "patients": len(current),
                "median_grade": float(current["icans_grade"].median()),
                "median_ice": ice_median,
                "q1_ice": ice_q1,
                "q3_ice": ice_q3,
            }
        )
    return pd.DataFrame(rows, columns=["hours", "patients", "median_grade", "median_ice", "q1_ice", "q3_ice"])
