"""ICANS report: early intrathecal dexamethasone + methotrexate (IDM) for neurotoxicity after CAR-T.

A small single-arm series, so the report shows every patient (by study code, age in whole years
capped at 90, no typed free text such as the product name), the remission rate
with an exact interval, and paired before/after comparisons (Wilcoxon signed-rank) of the ICANS
grade, the ICE score and the CSF at the first and last lumbar puncture.
"""

from __future__ import annotations

from analytics.deidentify import capped_age
from analytics.errors import AnalysisError
from analytics.plots import SlopePanel, cumulative_plot, slope_plot
from analytics.reports.base import Column, SectionBuilder, SectionPlan, StudyReport
from analytics.reports.common import (
    PAIRED_COLUMNS,
    PROPORTION_COLUMNS,
    dose_schedule,
    paired_row,
    proportion,
    quartiles,
)
from registry.choices import CarTTarget, HaematologicalMalignancy

#: (before, after, label, unit, log scale) of each paired measure.
GRADE_AND_ICE = (
    ("grade_before_idm", "grade_after_idm", "ICANS grade", "grade", False),
    ("ice_before_idm", "ice_after_idm", "ICE score", "points", False),
)
CSF_MEASURES = (
    ("car_t_baseline", "car_t_after", "CSF CAR-T cells", "cells/µL", True),
    ("protein_baseline", "protein_after", "CSF protein", "g/L", False),
    ("il6_baseline", "il6_after", "CSF IL-6", "pg/mL", True),
)
PATIENT_COLUMNS = [
    Column("study_code", "Patient", "text"),
    Column("age", "Age (years)", digits=0),
    Column("sex", "Sex", "text"),
    Column("malignancy", "Malignancy", "text"),
    Column("target", "Target", "text"),
    Column("crs_max_grade", "Worst CRS", "count"),
    Column("icans_max_grade", "Worst ICANS", "count"),
    Column("ice_before_idm", "ICE before IDM", "count"),
    Column("hours_onset_to_idm", "Onset to IDM (h)", digits=0),
    Column("it_dose_count", "IDM doses", "count"),
    Column("remission", "Remission", "text"),
    Column("days_to_remission", "Days to remission", "count"),
    Column("underlying_malignancy", "Malignancy code", "text", shown=False),
    Column("car_t_target", "Target code", "text", shown=False),
    Column("sex_male", "Male", "count", shown=False),
]


class IcansReport(StudyReport):
    title = "ICANS after CAR-T cells: early intrathecal dexamethasone and methotrexate"

    def sections(self) -> list[SectionPlan]:
        return [
            ("patients", "Patients", self.patients),
            ("remission", "ICANS remission", self.remission),
            ("time_to_remission", "Time to remission", self.time_to_remission),
            ("grade_and_ice", "ICANS grade and ICE score before and after IDM", self.grade_and_ice),
            ("csf", "CSF at the first and last lumbar puncture", self.csf),
            ("doses", "IDM schedule and dose intensity", self.doses),
        ]

    def doses(self, b: SectionBuilder) -> None:
        dose_schedule(b, self.frame, self.cohort.patients, group_labels=self.group_labels, account=True)

    def patients(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, ["patient_id"])
        malignancies = dict(HaematologicalMalignancy.choices)
        targets = {code: label.split(" (")[0] for code, label in CarTTarget.choices}
        rows = [
            row
            | {
                "age": capped_age(row["age"]),  # a listing of patients: de-identified like a download
                "sex": "male" if row["sex_male"] == 1 else "female",
                "malignancy": malignancies.get(row["underlying_malignancy"], row["underlying_malignancy"]),
                "target": targets.get(row["car_t_target"], row["car_t_target"]),
                "remission": "yes" if row["remission"] == 1 else "no",
            }
            for row in frame.sort_values("study_code").to_dict("records")
        ]
        b.table("patients", "Patients (study codes only)", PATIENT_COLUMNS, rows)

    def remission(self, b: SectionBuilder) -> None:
        data = b.analysed(self.frame, ["remission"])
        rows = [{"label": "ICANS remission"} | proportion(int(data["remission"].sum()), len(data))]
        b.table(
            "rate",
            "Remission rate",
            [Column("label", "Outcome", "text"), *PROPORTION_COLUMNS],
            rows,
            ["Remission: ICANS grade 0 with ICE 10 at a response assessment; exact 95% interval."],
        )

    def time_to_remission(self, b: SectionBuilder) -> None:
        remitted = b.analysed(self.frame, ["days_to_remission"])
        rows = []
        for column, label, unit in (
            ("hours_onset_to_idm", "ICANS onset to first IDM", "hours"),
            ("days_to_remission", "ICANS onset to remission", "days"),
        ):
            values = self.frame[column].dropna()
            if values.empty:
                continue
            median, q1, q3 = quartiles(values)
            rows.append(
                {
                    "label": label,
                    "variable": column,
                    "unit": unit,
                    "n": len(values),
                    "median": median,
                    "q1": q1,
                    "q3": q3,
                    "minimum": float(values.min()),
                    "maximum": float(values.max()),
                }
            )
        b.table(
            "timing",
            "Timing",
            [
                Column("label", "Interval", "text"),
                Column("variable", "Variable", "text", shown=False),
                Column("unit", "Unit", "text"),
                Column("n", "Patients", "count"),
                Column("median", "Median", digits=1),
                Column("q1", "Q1", digits=1),
                Column("q3", "Q3", digits=1),
                Column("minimum", "Shortest", digits=1),
                Column("maximum", "Longest", digits=1),
            ],
            rows,
        )
        b.figure(
            "cumulative",
            "Cumulative remission",
            cumulative_plot(
                b.key_for("cumulative"),
                remitted["days_to_remission"].tolist(),
                n=len(self.frame),
                xlabel="Days since ICANS onset",
                ylabel="Patients in remission",
            ),
            f"Share of all {len(self.frame)} patients in remission by each day; patients without remission "
            "never count as remitted (no censoring).",
        )

    def _paired(self, b: SectionBuilder, measures, *, key: str, before_label: str, after_label: str) -> None:
        b.analysed(self.frame, ["patient_id"])  # an empty cohort stops here, plainly
        rows, panels = [], []
        for before, after, label, unit, log_scale in measures:
            with b.attempt(label):
                rows.append(paired_row(self.frame, before, after, label) | {"unit": unit})
                pairs = self.frame[[before, after]].dropna()
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
            [*PAIRED_COLUMNS, Column("unit", "Unit", "text")],
            rows,
            [
                "Each patient's value before and after; V is the rank sum of the positive differences (before − after)."
            ],
        )
        b.figure(
            key,
            b.section.title,
            slope_plot(b.key_for(key), panels),
            "Lines join each patient's values; diamonds mark medians.",
        )

    def grade_and_ice(self, b: SectionBuilder) -> None:
        self._paired(b, GRADE_AND_ICE, key="slopes", before_label="Before IDM", after_label="≥48 h after")

    def csf(self, b: SectionBuilder) -> None:
        self._paired(b, CSF_MEASURES, key="slopes", before_label="First LP", after_label="Last LP")
