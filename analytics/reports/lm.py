"""LM report: intrathecal chemotherapy for leptomeningeal metastasis of lung cancer.

The published analysis (SPSS) reports Kaplan–Meier medians of intracranial progression-free
survival (iPFS) and overall survival (OS), and Cox hazard ratios with Breslow's handling of tied
times, which is this report's default (``ties`` option; Efron is R's default).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd

from analytics.errors import AnalysisError
from analytics.plots import KmPanel, Lane, forest_plot, km_plot, swimmer_plot
from analytics.reports import records
from analytics.reports.base import (
    TIES_CHOICES,
    Cohort,
    Column,
    Option,
    SectionBuilder,
    SectionPlan,
    StudyReport,
)
from analytics.reports.common import (
    COX_COLUMNS,
    LOGRANK_COLUMNS,
    PROPORTION_COLUMNS,
    adverse_event_table,
    at_risk_table,
    compare_survival,
    describe_groups,
    dose_schedule,
    effects,
    km_columns,
    km_rows,
    logrank_row,
    multivariable_cox_rows,
    proportion,
    proportional_hazards_note,
    table_one_columns,
    univariable_cox_rows,
)
from analytics.reports.display import p_text
from registry.choices import (
    ClinicalResponse,
    FollowUpEventType,
    IntrathecalDrug,
    MriChange,
    NeurologicalChange,
    NsclcHistology,
)
from registry.timeline import DAYS_PER_MONTH

DRUG = "it_drug"
ENDPOINTS = (("ipfs_months", "ipfs_event", "iPFS"), ("os_months", "os_event", "OS"))
GROUP_LABELS = {
    "all": "All patients",
    "it_drug=methotrexate": "Intrathecal methotrexate",
    "it_drug=pemetrexed": "Intrathecal pemetrexed",
    "egfr_mutant=0": "No EGFR mutation",
    "egfr_mutant=1": "EGFR-mutant",
    "bevacizumab=0": "No bevacizumab",
    "bevacizumab=1": "Bevacizumab",
}
BASELINE_CONTINUOUS = ("age", "it_dose_count")
BASELINE_CATEGORICAL = (
    "sex_male",
    "histology",
    "mutation_class",
    "csf_mutation_detected",
    "ecog_ge2",
    "brain_metastases",
    "egfr_tki_1",
    "egfr_tki_2",
    "egfr_tki_3",
    "bevacizumab",
    "chemotherapy",
    "immunotherapy",
    "radiotherapy",
)
#: Intrathecal pemetrexed as a 0/1 covariate (methotrexate the reference), for the Cox models.
PEMETREXED = "it_pemetrexed"
COX_UNIVARIABLE = (
    "bevacizumab",
    PEMETREXED,
    "egfr_mutant",
    "csf_mutation_detected",
    "egfr_tki_3",
    "chemotherapy",
    "radiotherapy",
    "age",
    "sex_male",
    "ecog_ge2",
    "brain_metastases",
)
#: Fixed in advance rather than chosen by univariable p-values, so the model does not chase noise.
COX_MULTIVARIABLE = ("bevacizumab", PEMETREXED, "egfr_mutant", "age", "sex_male")
RISK_STEP_MONTHS = 6.0
XLABEL = "Months since the first intrathecal dose"
YLABEL = {"iPFS": "Free of LM progression or death", "OS": "Alive"}


class LmReport(StudyReport):
    title = "Leptomeningeal metastasis: intrathecal chemotherapy"
    option_specs = (Option("ties", "Cox model ties", TIES_CHOICES, "breslow"),)
    group_labels = GROUP_LABELS
    short_labels = {PEMETREXED: "Intrathecal pemetrexed (vs methotrexate)"}
    level_labels = {
        "histology": dict(NsclcHistology.choices),
        "clinical_response": dict(ClinicalResponse.choices),
        "neurological_response": dict(NeurologicalChange.choices),
        "mri_response": dict(MriChange.choices),
    }

    def __init__(self, cohort: Cohort, options: Mapping[str, str]) -> None:
        super().__init__(cohort, options)
        drug = self.frame[DRUG]
        self.frame = self.frame.assign(
            **{PEMETREXED: (drug == IntrathecalDrug.PEMETREXED).astype(float).where(drug.notna())}
        )

    def sections(self) -> list[SectionPlan]:
        return [
            ("baseline", "Baseline characteristics by intrathecal drug", self.baseline),
            ("survival", "iPFS and OS: all patients", self.survival),
            ("survival_by_drug", "iPFS and OS by intrathecal drug", self.by(DRUG)),
            ("survival_by_egfr", "iPFS and OS by EGFR mutation status", self.by("egfr_mutant")),
            ("survival_by_bevacizumab", "iPFS and OS with and without bevacizumab", self.by("bevacizumab")),
            ("cox_os", "Cox models of overall survival", self.cox("os_months", "os_event")),
            ("cox_ipfs", "Cox models of iPFS", self.cox("ipfs_months", "ipfs_event")),
            ("response", "Clinical response", self.response),
            ("safety", "Adverse events", self.safety),
            ("swimmer", "Course of each patient", self.swimmer),  # with the schedule and dose intensity
        ]

    def baseline(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, [DRUG])
        described = describe_groups(
            frame,
            DRUG,
            self.labels,
            continuous=BASELINE_CONTINUOUS,
            categorical=BASELINE_CATEGORICAL,
            all_exact=True,
            level_labels=self.level_labels,
        )
        b.table(
            "table_one",
            "Baseline characteristics",
            table_one_columns(described, GROUP_LABELS, DRUG),
            described.table,
            ["Median [Q1, Q3] with the Mann–Whitney test; n (%) with Fisher's exact test.", *described.notes],
        )

    # --- survival ---------------------------------------------------------------------------------

    def survival(self, b: SectionBuilder) -> None:
        self._survival(b, None)

    def by(self, variable: str) -> Callable[[SectionBuilder], None]:
        """The section comparing iPFS and OS across the levels of ``variable``."""

        def build(b: SectionBuilder) -> None:
            self._survival(b, variable)

        return build

    def _survival(self, b: SectionBuilder, by: str | None) -> None:
        needed = [column for time, event, _ in ENDPOINTS for column in (time, event)]
        data = b.analysed(self.frame, [*needed, *([by] if by else [])])
        summary, tests, risks, panels = [], [], [], []
        for time, event, endpoint in ENDPOINTS:
            comparison = compare_survival(data, time, event, by, risk_step=RISK_STEP_MONTHS)
            summary += km_rows(comparison.km, endpoint, GROUP_LABELS)
            risks.append((endpoint, comparison.at_risk))
            groups = [(group, GROUP_LABELS.get(group, group)) for group in comparison.km.summary["group"]]
            note = ""
            if comparison.logrank is not None:
                tests.append(logrank_row(comparison.logrank, endpoint, self.labels[by]))
                note = f"Log-rank p = {p_text(comparison.logrank.p)}"
            panels.append(
                KmPanel(
                    title=endpoint,
                    curve=comparison.km.curve,
                    groups=groups,
                    xlabel=XLABEL,
                    ylabel=YLABEL[endpoint],
                    at_risk=comparison.at_risk,
                    note=note,
                )
            )
        b.figure(
            "km",
            f"Kaplan–Meier: {b.section.title}",
            km_plot(b.key_for("km"), panels),
            "Step curves with 95% confidence bands; ticks mark censored patients. Numbers at risk below.",
        )
        b.table(
            "medians",
            "Kaplan–Meier medians",
            km_columns(unit="months", digits=1),
            summary,
            ["Median with R's 95% interval (log transform of S); NR: the limit curve never reaches 0.5."],
        )
        if tests:
            b.table("logrank", "Log-rank tests", LOGRANK_COLUMNS, tests)
        columns, rows = at_risk_table(risks, GROUP_LABELS, "mo")
        b.table("at_risk", "Numbers at risk", columns, rows)

    def cox(self, time: str, event: str) -> Callable[[SectionBuilder], None]:
        """The section of univariable and multivariable Cox models of one endpoint."""

        def build(b: SectionBuilder) -> None:
            ties = self.options["ties"]
            data = b.analysed(self.frame, [time, event])
            ties_note = f"{dict(TIES_CHOICES)[ties]} handling of tied times; PH test: cox.zph (KM transform)."
            rows, notes = univariable_cox_rows(data, time, event, COX_UNIVARIABLE, self.labels, ties=ties)
            b.table(
                "univariable",
                "Univariable models",
                COX_COLUMNS,
                rows,
                [ties_note, *notes, *proportional_hazards_note(rows)],
            )
            with b.attempt("Multivariable model"):
                model = multivariable_cox_rows(data, time, event, COX_MULTIVARIABLE, self.labels, ties=ties)
                b.table(
                    "multivariable",
                    "Multivariable model",
                    COX_COLUMNS,
                    model,
                    proportional_hazards_note(model),
                )
                b.figure(
                    "forest",
                    "Adjusted hazard ratios",
                    forest_plot(
                        b.key_for("forest"),
                        effects(model, "hr"),
                        xlabel="Hazard ratio (95% CI, log scale)",
                    ),
                )

        return build

    # --- response and safety ------------------------------------------------------------------------

    def response(self, b: SectionBuilder) -> None:
        data = b.analysed(self.frame, ["responder"])
        rates = [{"label": "All evaluable patients"} | proportion(int(data["responder"].sum()), len(data))]
        for drug, part in data.groupby(DRUG):
            rates.append(
                {"label": GROUP_LABELS.get(f"{DRUG}={drug}", drug)}
                | proportion(int(part["responder"].sum()), len(part))
            )
        notes = [
            "Response at the first assessment after intrathecal therapy, among evaluable patients; "
            "exact (Clopper–Pearson) 95% intervals."
        ]
        not_evaluable = int((self.frame["clinical_response"] == ClinicalResponse.NOT_EVALUABLE).sum())
        if not_evaluable:
            notes.append(f"{not_evaluable} patients were not evaluable.")
        b.table(
            "rates",
            "Clinical response rate",
            [Column("label", "Patients", "text"), *PROPORTION_COLUMNS],
            rates,
            notes,
        )
        with b.attempt("Response by intrathecal drug"):
            described = describe_groups(
                self.frame,
                DRUG,
                self.labels,
                categorical=["responder", "clinical_response", "neurological_response", "mri_response"],
                all_exact=True,
                level_labels=self.level_labels,
            )
            b.table(
                "by_drug",
                "Response by intrathecal drug",
                table_one_columns(described, GROUP_LABELS, DRUG),
                described.table,
                ["n (%) with Fisher's exact test.", *described.notes],
            )

    def safety(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, [DRUG])
        events = records.adverse_events(self.cohort.patients, frame["patient_id"])
        columns, rows = adverse_event_table(events, frame, by=DRUG, group_labels=GROUP_LABELS)
        b.table(
            "adverse_events",
            "Adverse events by CTCAE term and grade",
            columns,
            rows,
            [
                "Grade columns count events; patient columns count patients with at least one event.",
                f"Low intracranial pressure after a lumbar puncture: {int(frame['low_icp'].sum())} patients.",
            ],
        )

    def swimmer(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, ["os_months", "os_event", DRUG])
        injections = records.intrathecal_injections(self.cohort.patients, frame["patient_id"])
        events = records.course_events(self.cohort.patients, frame["patient_id"])
        if injections.empty:
            raise AnalysisError("no intrathecal dose is recorded for this cohort")
        days = injections["when"].dt.tz_convert(None).dt.normalize()
        origin = days.groupby(injections["patient_id"]).min()
        injections = injections.assign(months=_months_after(origin, injections["patient_id"], days))
        events = events.assign(months=_months_after(origin, events["patient_id"], events["event_date"]))
        lanes = []
        for row in frame.sort_values("os_months", ascending=False).itertuples():
            mine = events[events["patient_id"] == row.patient_id]
            lanes.append(
                Lane(
                    label=row.study_code,
                    length=row.os_months,
                    doses=injections.loc[injections["patient_id"] == row.patient_id, "months"].tolist(),
                    progression=mine.loc[
                        mine["event_type"] == FollowUpEventType.LM_PROGRESSION, "months"
                    ].tolist(),
                    death=row.os_months if row.os_event == 1 else None,
                    last_contact=row.os_months if row.os_event == 0 else None,
                    group=GROUP_LABELS[f"{DRUG}={row.it_drug}"],
                )
            )
        drugs = [GROUP_LABELS[f"{DRUG}={drug}"] for drug in sorted(frame[DRUG].unique())]
        b.figure(
            "swimmer",
            "Swimmer plot",
            swimmer_plot(b.key_for("swimmer"), lanes, groups=drugs, xlabel=XLABEL),
            "One bar per patient (study code), from the first intrathecal dose to death or last contact.",
        )
        b.table(
            "courses",
            "Courses",
            [
                Column("study_code", "Patient", "text"),
                Column("label", "Intrathecal drug", "text"),
                Column("injections", "Injections", "count"),
                Column("os_months", "Follow-up (months)", digits=1),
                Column("outcome", "Outcome", "text"),
            ],
            [
                {
                    "study_code": lane.label,
                    "label": lane.group,
                    "injections": len(lane.doses),
                    "os_months": lane.length,
                    "outcome": "died" if lane.death is not None else "alive at last contact",
                }
                for lane in lanes
            ],
        )
        with b.attempt("Schedule and dose intensity"):
            dose_schedule(b, self.frame, self.cohort.patients, group_labels=self.group_labels, account=False)


def _months_after(origin: pd.Series, patient_ids: pd.Series, dates: pd.Series) -> pd.Series:
    """Months from each patient's first intrathecal dose (the iPFS and OS origin) to a date."""
    return (pd.to_datetime(dates) - patient_ids.map(origin)).dt.days / DAYS_PER_MONTH
