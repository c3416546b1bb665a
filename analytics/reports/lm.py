"""LM report: intrathecal chemotherapy for leptomeningeal metastasis of lung cancer, computed the
paper's way.

The seed paper (41 patients, SPSS 27) is reproduced table by table: the consort flow and follow-up
(Fig. 1), Table 1 with the p-value of the test SPSS printed on each row, Table 3 patient by patient,
the Kaplan–Meier medians of Fig. 2 with SPSS's symmetric median interval, the clinical response, the
Cox models of Table 4 with its eight factors and codings and its selection procedure, and Table 5's
adverse events by systemic regimen and grade. Where the paper's own numbers disagree with its Table 3,
or where a factor the paper used is not recorded, a note says so rather than forcing a match.

Each choice the paper made is the default of an option, with R's as the alternative: Cox ties
(Breslow / Efron), median CI (SPSS / R's log interval), survival times (months to one decimal, as
Table 3 records them / exact days), the gene-mutation grouping (as treated / tissue genotype) and the
multivariable selection (univariable p < 0.05 / p < 0.10 / all eight factors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import pandas as pd

from analytics.compare import chi_square_test, fisher_exact_test
from analytics.datasets.lm import SYSTEMIC_REGIMENS
from analytics.errors import AnalysisError
from analytics.frames import level_text
from analytics.plots import KmPanel, Lane, forest_plot, km_plot, swimmer_plot, swimmer_summary_plot
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
    at_risk,
    at_risk_table,
    dose_schedule,
    effects,
    km_columns,
    km_rows,
    logrank_row,
    multivariable_cox_rows,
    proportion,
    proportional_hazards_note,
    risk_times,
)
from analytics.reports.display import p_text
from analytics.survival import MedianCI, Ties, cox, kaplan_meier, logrank
from registry.choices import (
    ClinicalResponse,
    CtcaeTerm,
    FollowUpEventType,
    IntrathecalDrug,
    MriChange,
    NeurologicalChange,
    NsclcHistology,
)
from registry.timeline import DAYS_PER_MONTH

DRUG = "it_drug"
#: The paper's column order: intrathecal pemetrexed, then methotrexate, then all patients.
DRUGS = (IntrathecalDrug.PEMETREXED.value, IntrathecalDrug.METHOTREXATE.value)
ENDPOINTS = (("ipfs_months", "ipfs_event", "iPFS"), ("os_months", "os_event", "OS"))
GENE_MUTATION = "gene_mutation"  # the grouping the report uses (option), as a 0/1 column
AGE_UNDER_60 = "age_under_60"
GROUPINGS = {
    "as_treated": ("mutation_as_treated", "targeted therapy received"),
    "tissue": ("driver_mutation", "tissue genotype"),
}
GROUP_LABELS = {
    "all": "All patients",
    "it_drug=methotrexate": "Intrathecal methotrexate (IM)",
    "it_drug=pemetrexed": "Intrathecal pemetrexed (IP)",
    "mutation_as_treated=0": "Wild-type, no targeted therapy",
    "mutation_as_treated=1": "Gene mutation or targeted therapy",
    "driver_mutation=0": "Wild-type in tissue",
    "driver_mutation=1": "Driver mutation in tissue",
    "bevacizumab=0": "No bevacizumab",
    "bevacizumab=1": "Bevacizumab",
}
RISK_STEP_MONTHS = 6.0
XLABEL = "Months since the first intrathecal dose"
#: Above this many patients the swimmer plot shows, per month, the patients followed and the injections
#: given by group instead of one bar each (the table beside it still lists every patient).
SWIMMER_MAX_LANES = 200
YLABEL = {"iPFS": "Free of LM progression or death", "OS": "Alive"}

MEDIAN_CI_CHOICES = (("spss", "SPSS: median ± 1.96 SE (paper)"), ("survfit", "R survfit: log interval"))
TIME_CHOICES = (("table", "Months to 0.1 (paper's Table 3)"), ("exact", f"Exact: days / {DAYS_PER_MONTH}"))
GROUPING_CHOICES = (("as_treated", "Targeted therapy received (paper)"), ("tissue", "Tissue genotype"))
SELECTION_CHOICES = (
    ("p05", "Univariable p < 0.05 (paper)"),
    ("p10", "Univariable p < 0.10"),
    ("all", "All eight factors"),
)
SELECTION_THRESHOLDS = {"p05": 0.05, "p10": 0.10, "all": None}
MEDIAN_CI_NOTES = {
    "spss": "95% CI as SPSS prints it (the paper's method): median ± 1.96 × SE, the SE from Greenwood's "
    "variance and the slope of the curve between S = 0.55 and 0.45. R's log-transformed interval is an option.",
    "survfit": "95% CI as R's survfit gives it (log transform of S); the paper used SPSS's median ± 1.96 × SE.",
}
TIME_NOTES = {
    "table": "Times in months rounded to one decimal, as the paper's Table 3 records them (its SPSS data).",
    "exact": f"Times in exact days / {DAYS_PER_MONTH}; the paper analysed months to one decimal.",
}


@dataclass(frozen=True)
class CoxFactor:
    """A factor of the paper's Table 4: the 0/1 (or count) column and the paper's coding."""

    term: str
    label: str
    coding: str


#: Table 4, in its order. Each hazard ratio is for the second level against the first (reference).
PAPER_FACTORS = (
    CoxFactor(AGE_UNDER_60, "Age", "≥ 60 (ref.) vs < 60 years"),
    CoxFactor("sex_male", "Sex", "female (ref.) vs male"),
    CoxFactor("ecog_ge2", "ECOG PS", "< 2 (ref.) vs ≥ 2"),
    CoxFactor("brain_metastases", "Brain metastasis", "no (ref.) vs yes"),
    CoxFactor(GENE_MUTATION, "Gene mutation", "no (ref.) vs yes"),
    CoxFactor("bevacizumab", "Combined with bevacizumab", "no (ref.) vs yes"),
    CoxFactor("inc_protein", "CSF protein", "normal (ref.) vs increased"),
    CoxFactor("it_dose_count", "Number of IC", "per injection"),
)
#: The factors of the paper's multivariable model (univariable p < 0.05), with its adjusted results.
PAPER_MODEL = {
    "ecog_ge2": "HR 2.560 (1.010–6.484), p = 0.048",
    "bevacizumab": "HR 0.240 (0.097–0.595), p = 0.002",
}


class LmReport(StudyReport):
    title = "Leptomeningeal metastasis: intrathecal chemotherapy"
    option_specs = (
        Option("ties", "Cox model ties", TIES_CHOICES, "breslow"),
        Option("median_ci", "Median survival 95% CI", MEDIAN_CI_CHOICES, "spss"),
        Option("times", "Survival times", TIME_CHOICES, "table"),
        Option("mutation_grouping", "Gene-mutation groups", GROUPING_CHOICES, "as_treated"),
        Option("cox_selection", "Multivariable Cox factors", SELECTION_CHOICES, "p05"),
    )
    group_labels = GROUP_LABELS
    short_labels = {
        AGE_UNDER_60: "Age < 60 years",
        GENE_MUTATION: "Gene mutation",
        "it_dose_count": "Number of IC",
    }
    level_labels = {
        "histology": dict(NsclcHistology.choices),
        "clinical_response": dict(ClinicalResponse.choices),
        "neurological_response": dict(NeurologicalChange.choices),
        "mri_response": dict(MriChange.choices),
    }

    def __init__(self, cohort: Cohort, options: Mapping[str, str]) -> None:
        super().__init__(cohort, options)
        frame = self.frame
        grouping, _ = GROUPINGS[self.options["mutation_grouping"]]
        derived = {
            AGE_UNDER_60: (frame["age"] < 60).astype(float).where(frame["age"].notna()),
            GENE_MUTATION: frame[grouping],
        }
        if self.options["times"] == "table":
            derived |= {time: frame[time].round(1) for time, _, _ in ENDPOINTS}
        self.frame = frame.assign(**derived)
        self.grouping = grouping

    def sections(self) -> list[SectionPlan]:
        other = next(column for column, _ in GROUPINGS.values() if column != self.grouping)
        return [
            ("consort", "Patients, treatment and follow-up (Fig. 1)", self.consort),
            ("baseline", "Baseline characteristics by intrathecal drug (Table 1)", self.baseline),
            ("patients", "Treatment and outcome of each patient (Table 3)", self.patients),
            ("survival", "iPFS and OS: all patients (Fig. 2A, B)", self.by()),
            ("survival_by_drug", "iPFS and OS by intrathecal drug (Fig. 2E, F)", self.by(DRUG)),
            (
                "survival_by_mutation",
                "iPFS and OS by gene mutation (Fig. 2C, D)",
                self.by(self.grouping, other),
            ),
            ("survival_by_bevacizumab", "iPFS and OS with and without bevacizumab", self.by("bevacizumab")),
            ("response", "Clinical response", self.response),
            ("cox_os", "Cox models of overall survival (Table 4)", self.cox("os_months", "os_event")),
            ("cox_ipfs", "Cox models of iPFS (not in the paper)", self.cox("ipfs_months", "ipfs_event")),
            ("safety", "Adverse events by systemic regimen (Table 5)", self.safety),
            ("swimmer", "Course of each patient", self.swimmer),  # with the schedule and dose intensity
        ]

    # --- flow, treatment and follow-up (Fig. 1) --------------------------------------------------------

    def consort(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, [DRUG])
        b.table("flow", "Consort flow", _group_columns("Step"), _flow_rows(frame), _FLOW_NOTES)
        b.table(
            "treatment",
            "Intrathecal treatment",
            [*_group_columns("Treatment")[:6], *_summary_columns()],
            _treatment_rows(frame, self.cohort.patients),
            _TREATMENT_NOTES,
        )
        with b.attempt("Median follow-up"):
            b.table(
                "follow_up",
                "Median follow-up",
                [
                    Column("label", "Measure", "text"),
                    Column("method", "Method", "text", shown=False),
                    Column("n", "n", "count"),
                    Column("median", "Months", digits=1, missing="not reached"),
                    Column("ci", "95% CI", "text", missing=""),
                    Column("median_lower", "95% CI lower", digits=3, shown=False),
                    Column("median_upper", "95% CI upper", digits=3, shown=False),
                ],
                _follow_up_rows(frame, cast(MedianCI, self.options["median_ci"])),
                [
                    "Reverse Kaplan–Meier: the OS times with censoring as the event (a death censors). "
                    + MEDIAN_CI_NOTES[self.options["median_ci"]].split(" (")[0]
                    + ".",
                    "The paper gives a median follow-up of 7.5 months without saying how it was computed; its "
                    "Table 3 gives neither that by the reverse Kaplan–Meier method nor as the median time observed.",
                ],
            )

    # --- Table 1 ---------------------------------------------------------------------------------------

    def baseline(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, [DRUG])
        rows, notes = table_one_rows(frame)
        b.table(
            "table_one",
            "Characteristics of the patients by intrathecal drug",
            [
                *_group_columns("Characteristic"),
                *_summary_columns(),
                Column("test", "Test", "text", missing=""),
                Column("p", "p", "p", missing=""),
            ],
            rows,
            [
                "Counts per intrathecal drug; the p of each row is that of the test SPSS printed and the paper "
                "reports: the continuity-corrected (Yates) χ² for 2 × 2 tables, Pearson's χ² for ECOG PS.",
                *notes,
            ],
        )

    # --- Table 3 ---------------------------------------------------------------------------------------

    def patients(self, b: SectionBuilder) -> None:
        """Table 3 in two tables of the same rows (its ten columns do not fit an A4 page)."""
        frame = b.analysed(self.frame, [DRUG]).sort_values("study_code")
        rows = [_patient_row(row, self.level_labels) for row in frame.to_dict("records")]
        patient = Column("study_code", "Patient", "text")
        b.table(
            "treatment",
            "Mutations and treatment (Table 3)",
            [
                patient,
                Column("tissue_mutations", "Gene mutation", "text"),
                Column("csf_mutations", "CSF gene mutation before IC", "text"),
                Column("systemic_before_ic", "Prior systemic treatment", "text"),
                Column("systemic_during_ic", "Systemic treatment during IC", "text"),
            ],
            rows,
            [
                "Patients by study code only. Agents as the paper abbreviates them (PC pemetrexed + carboplatin, "
                "TC paclitaxel + carboplatin, DP docetaxel + cisplatin, BEV bevacizumab, IP/IM intrathecal "
                "pemetrexed/methotrexate); an agent outside that vocabulary shows as its category. Prior "
                "treatment: lines oldest first, agents started together joined by +.",
            ],
        )
        b.table(
            "outcome",
            "Response and survival (Table 3, continued)",
            [
                patient,
                Column("neurological", "Neurological symptoms", "text"),
                Column("mri", "MRI", "text"),
                Column("response", "Response", "text"),
                Column("ipfs", "iPFS (months)", "text"),
                Column("os", "OS (months)", "text"),
                *(Column(name, name, digits=3, shown=False) for name in _ENDPOINT_COLUMNS),
            ],
            rows,
            [
                "+ after a time: censored (alive, or free of LM progression, at the last follow-up). "
                "Response: at the first assessment after intrathecal therapy.",
            ],
        )

    # --- survival ------------------------------------------------------------------------------------

    def by(self, *groupings: str) -> Callable[[SectionBuilder], None]:
        """The section comparing iPFS and OS across groups; the first grouping is drawn."""

        def build(b: SectionBuilder) -> None:
            self._survival(b, list(groupings))

        return build

    def _survival(self, b: SectionBuilder, groupings: list[str]) -> None:
        needed = [column for time, event, _ in ENDPOINTS for column in (time, event)]
        data = b.analysed(self.frame, [*needed, *groupings[:1]])
        method = cast(MedianCI, self.options["median_ci"])  # one of its choices (resolve_options)
        summary, tests, risks, panels = [], [], [], []
        for index, by in enumerate(groupings or [None]):
            part = data.dropna(subset=[by]) if by else data
            for time, event, endpoint in ENDPOINTS:
                km = kaplan_meier(part, time, event, by=by, median_ci=method)
                summary += [
                    row | {"grouping": self.labels.get(by, "—") if by else "—"}
                    for row in km_rows(km, endpoint, GROUP_LABELS)
                ]
                if by:
                    test = logrank(part, time, event, by)
                    tests.append(logrank_row(test, endpoint, self.labels[by]))
                if index:
                    continue
                risk = at_risk(km, risk_times(part, time, RISK_STEP_MONTHS))
                risks.append((endpoint, risk))
                panels.append(_km_panel(km, endpoint, risk, f"Log-rank p = {p_text(test.p)}" if by else ""))
        b.figure(
            "km",
            f"Kaplan–Meier: {b.section.title}",
            km_plot(b.key_for("km"), panels),
            "Step curves with 95% confidence bands; ticks mark censored patients. Numbers at risk below.",
        )
        columns = km_columns(unit="months", digits=1)
        columns.insert(1, Column("grouping", "Grouping", "text", shown=len(groupings) > 1))
        b.table("medians", "Kaplan–Meier medians", columns, summary, self._median_notes(groupings))
        if tests:
            b.table("logrank", "Log-rank tests", LOGRANK_COLUMNS, tests)
        columns, rows = at_risk_table(risks, GROUP_LABELS, "mo")
        b.table("at_risk", "Numbers at risk", columns, rows)

    def _median_notes(self, groupings: Sequence[str]) -> list[str]:
        notes = [
            MEDIAN_CI_NOTES[self.options["median_ci"]],
            TIME_NOTES[self.options["times"]],
            "not reached / NR: the curve (or its limit) never falls to 0.5.",
        ]
        if not groupings:
            notes.append(
                "The paper's text gives the overall median iPFS as 8 months (95% CI 6.4–9.7); its own Table 3 "
                "gives 7.3 months, which is what this table computes. The overall OS, 10.1 months (6.8–13.4), "
                "agrees."
            )
        if DRUG in groupings:
            notes.append(
                "The paper: iPFS IM 7.3 (6.0–8.6), IP 8 (6.0–10.0); OS IM 10.1 (2.9–17.3), IP 9.6 (6.1–13.1) "
                "months. Its Table 3 gives the IP iPFS interval as 5.6–10.4."
            )
        if any(g in groupings for g, _ in GROUPINGS.values()):
            used = GROUPINGS[self.options["mutation_grouping"]][1]
            notes.append(
                f"Two groupings: by tissue genotype (wild-type: no driver mutation in the tumour) and by targeted "
                f"therapy received (wild-type: no driver mutation and no targeted drug during IC). The paper's "
                f"wild-type group is the second (9 patients: it leaves out a patient wild-type in tissue but given "
                f"osimertinib); this report uses the grouping by {used} (option), the first rows and the figure."
            )
            notes.append(
                "The paper: wild-type iPFS 6.8 (5.1–8.5), OS 10.7 (4.5–16.9); gene mutation iPFS 8 (6.3–9.7), "
                "OS 9.6 (5.5–13.7) months. Its Table 3 gives 7.3 months for the mutation group's iPFS."
            )
        return notes

    # --- clinical response ---------------------------------------------------------------------------

    def response(self, b: SectionBuilder) -> None:
        data = b.analysed(self.frame, [DRUG, "neurological_response"])
        improved = int((data["neurological_response"] == NeurologicalChange.IMPROVED).sum())
        rates = [
            {"label": "Neurological symptoms improved (the paper's clinical response)"}
            | proportion(improved, len(data))
        ]
        overall = data["clinical_response"]
        evaluable = overall.notna() & (overall != ClinicalResponse.NOT_EVALUABLE)
        if evaluable.any():
            controlled = overall.isin([ClinicalResponse.RESPONSE, ClinicalResponse.STABLE])
            rates += [
                {"label": "Disease control (response or stable)"}
                | proportion(int(controlled.sum()), int(evaluable.sum())),
                {"label": "Response (Table 3's response determination)"}
                | proportion(int((overall == ClinicalResponse.RESPONSE).sum()), int(evaluable.sum())),
            ]
        b.table(
            "rates",
            "Clinical response",
            [Column("label", "Outcome", "text"), *PROPORTION_COLUMNS],
            rates,
            [
                "The paper reports clinical response as the change of the LM symptoms after IC and systemic "
                "therapy: improved in 28 (68.3%), stable in 9 (22%), worse in 4 (9.7% in the paper; 4 of 41 "
                "is 9.8%). Exact (Clopper–Pearson) 95% intervals.",
            ],
        )
        for key, column, title, choices in (
            ("neurological", "neurological_response", "Neurological symptoms", NeurologicalChange),
            ("mri", "mri_response", "MRI (RANO-LM)", MriChange),
            ("overall", "clinical_response", "Response determination", ClinicalResponse),
        ):
            b.table(
                key,
                title,
                _group_columns("Assessment"),
                _level_rows(data, column, [(c.value, str(c.label)) for c in choices], variable=column),
                [
                    "At the first assessment after intrathecal therapy: patients per drug, and n (%) of all patients."
                ],
            )

    # --- Cox models (Table 4) ------------------------------------------------------------------------

    def cox(self, time: str, event: str) -> Callable[[SectionBuilder], None]:
        """Univariable models of the paper's eight factors, then the multivariable model by its procedure."""

        def build(b: SectionBuilder) -> None:
            ties = cast(Ties, self.options["ties"])  # one of its choices (resolve_options)
            data = b.analysed(self.frame, [time, event])
            rows = [_cox_row(data, time, event, factor, ties) for factor in PAPER_FACTORS]
            other, name = next(g for g in GROUPINGS.values() if g[0] != self.grouping)
            rows.append(
                _cox_row(
                    data, time, event, CoxFactor(other, f"Gene mutation by {name}", "no (ref.) vs yes"), ties
                )
                | {"label": f"Gene mutation by {name} (the other grouping)"}
            )
            b.table(
                "univariable",
                "Univariable models",
                _COX_TABLE_COLUMNS,
                rows,
                [
                    f"{dict(TIES_CHOICES)[ties]} handling of tied times; Wald 95% CI and p; PH test: cox.zph.",
                    f"Gene mutation: grouped by {GROUPINGS[self.options['mutation_grouping']][1]} (option).",
                    *_not_recorded_note(rows),
                    *proportional_hazards_note([r for r in rows if r["status"] == "ok"]),
                ],
            )
            self._multivariable(b, data, time, event, rows)

        return build

    def _multivariable(
        self, b: SectionBuilder, data: pd.DataFrame, time: str, event: str, rows: list
    ) -> None:
        selection = self.options["cox_selection"]
        threshold = SELECTION_THRESHOLDS[selection]
        candidates = [r for r in rows[: len(PAPER_FACTORS)] if r["status"] == "ok"]
        chosen = [r["term"] for r in candidates if threshold is None or r["p"] < threshold]
        notes = [_selection_note(selection, [r["label"] for r in candidates if r["term"] in chosen])]
        if time == "os_months":
            notes += _paper_model_notes(rows, chosen)
        if not chosen:
            b.note("Multivariable model: no factor met the selection rule. " + " ".join(notes))
            return
        with b.attempt("Multivariable model"):
            labels = {factor.term: factor.label for factor in PAPER_FACTORS}
            model = multivariable_cox_rows(
                data, time, event, chosen, labels, ties=cast(Ties, self.options["ties"])
            )
            coding = {factor.term: factor.coding for factor in PAPER_FACTORS}
            model = [row | {"coding": coding[row["term"]], "status": "ok"} for row in model]
            if len(chosen) == 1:
                notes.append("With one factor selected, the model is that factor's univariable model.")
            b.table(
                "multivariable",
                "Multivariable model",
                _COX_TABLE_COLUMNS,
                model,
                [*notes, *proportional_hazards_note(model)],
            )
            b.figure(
                "forest",
                "Adjusted hazard ratios",
                forest_plot(
                    b.key_for("forest"), effects(model, "hr"), xlabel="Hazard ratio (95% CI, log scale)"
                ),
            )

    # --- adverse events (Table 5) --------------------------------------------------------------------

    def safety(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, [DRUG, "systemic_regimen"])
        events = records.adverse_events(self.cohort.patients, frame["patient_id"])
        regimens = [code for code, _, _ in SYSTEMIC_REGIMENS if (frame["systemic_regimen"] == code).any()]
        regimen_of = frame.set_index("patient_id")["systemic_regimen"]
        worst = (
            events.assign(regimen=events["patient_id"].map(regimen_of))
            .groupby(["patient_id", "ctcae_term", "regimen"], as_index=False)["grade"]
            .max()
        )
        b.table(
            "by_regimen",
            "Adverse events by systemic regimen and grade (Table 5)",
            _REGIMEN_GRADE_COLUMNS,
            _regimen_grade_rows(worst, regimens, frame),
            [
                "Patients by the worst grade of each event (CTCAE as recorded; the paper graded with v4.03, "
                "whose cut-points for these terms are those of v5.0). Haematologic toxicities: the sum of the "
                "myelosuppression rows below it, as the paper counts them.",
                "Regimen during IC: targeted therapy if any targeted drug was given, else systemic chemotherapy, "
                "else immunotherapy.",
            ],
        )
        b.table(
            "myelosuppression",
            "Myelosuppression: patients",
            [
                Column("label", "Patients with", "text"),
                Column("key", "Key", "text", shown=False),
                *(Column(f"n_{code}", _regimen_label(code), "count") for code in _ordered(regimens)),
                Column("n_all", "All", "count"),
            ],
            _myelosuppression_rows(events, regimen_of, regimens),
            [
                "The paper: 18 patients with myelosuppression, 15 with leukopenia and 9 with thrombocytopenia "
                "(both at once in 3); 11 with grade ≥ 3 (7 leukopenia, 4 thrombocytopenia: 6 on chemotherapy, "
                "5 on targeted therapy); raised liver enzymes in 1. Its 15 + 9 − 18 means 6 patients had both.",
            ],
        )
        columns, rows = adverse_event_table(events, frame)
        if not (events["grade"] == 5).any():  # a column of zeros would push the table off an A4 page
            columns = [replace(c, shown=False) if c.key == "grade_5" else c for c in columns]
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

    # --- swimmer -------------------------------------------------------------------------------------

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
        dose_months = injections.groupby("patient_id")["months"].agg(list)
        progressed = events[events["event_type"] == FollowUpEventType.LM_PROGRESSION]
        progression_months = progressed.groupby("patient_id")["months"].agg(list)
        lanes = [
            Lane(
                label=row.study_code,
                length=row.os_months,
                doses=dose_months.get(row.patient_id, []),
                progression=progression_months.get(row.patient_id, []),
                death=row.os_months if row.os_event == 1 else None,
                last_contact=row.os_months if row.os_event == 0 else None,
                group=GROUP_LABELS[f"{DRUG}={row.it_drug}"],
            )
            for row in frame.sort_values("os_months", ascending=False).itertuples()
        ]
        drugs = [GROUP_LABELS[f"{DRUG}={drug}"] for drug in sorted(frame[DRUG].unique())]
        if len(lanes) > SWIMMER_MAX_LANES:
            groups = frame[DRUG].map(lambda drug: GROUP_LABELS[f"{DRUG}={drug}"])
            b.figure(
                "swimmer",
                "Swimmer plot",
                swimmer_summary_plot(
                    b.key_for("swimmer"),
                    _followed_by_month(frame["os_months"], groups),
                    _injections_by_month(injections, frame["patient_id"], groups),
                    groups=drugs,
                    xlabel=XLABEL,
                ),
                f"{len(lanes):,} patients are too many for one bar each (more than {SWIMMER_MAX_LANES}): per month "
                "since the first intrathecal dose, the patients still followed (alive, before their last contact) "
                "and the intrathecal injections given, by intrathecal drug; the table below lists every patient.",
            )
        else:
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
            labels = GROUP_LABELS
            dose_schedule(b, self.frame, self.cohort.patients, group_labels=labels, account=False)


# --- table pieces ------------------------------------------------------------------------------------

INDENT = "\u2003"  # an em space: pages keep it (HTML collapses only ASCII spaces), so levels read indented
COLUMN_LABELS = {"pemetrexed": "IP", "methotrexate": "IM", "all": "All patients"}
PARTS = (*DRUGS, "all")


def _group_columns(first: str) -> list[Column]:
    """A label column, then IP, IM and all patients as text (counts; all as n (%)), the numbers hidden."""
    return [
        Column("label", first, "text"),
        Column("variable", "Variable", "text", shown=False),
        Column("level", "Level", "text", shown=False),
        *(Column(f"summary_{part}", COLUMN_LABELS[part], "text", missing="") for part in PARTS),
        *(Column(f"count_{part}", f"n ({COLUMN_LABELS[part]})", "count", shown=False) for part in PARTS),
        Column("percent_all", "% of all", "percent", digits=1, shown=False),
    ]


def _count_row(frame: pd.DataFrame, mask: pd.Series, label: str, **extra: Any) -> dict[str, Any]:
    """Patients matching ``mask`` per intrathecal drug and in all (n (%) of the column's patients)."""
    row: dict[str, Any] = {"label": label, **extra}
    for part in PARTS:
        members = mask if part == "all" else mask & (frame[DRUG] == part)
        n = int(members.sum())
        row[f"count_{part}"] = n
        row[f"summary_{part}"] = str(n)
    total = len(frame)
    row["percent_all"] = 100 * row["count_all"] / total if total else None
    if total:
        row["summary_all"] = f"{row['count_all']} ({row['percent_all']:.1f}%)"
    return row


def _level_rows(
    frame: pd.DataFrame, column: str, levels: Sequence[tuple[Any, str]], *, variable: str
) -> list[dict[str, Any]]:
    """One count row per level that occurs (or is one of the first three), then the unrecorded."""
    values = frame[column]
    rows = [
        _count_row(frame, values == value, text, variable=variable, level=level_text(value))
        for value, text in levels
        if (values == value).any()
    ]
    if values.isna().any():
        rows.append(_count_row(frame, values.isna(), "not recorded", variable=variable, level="not recorded"))
    return rows


_FLOW_NOTES = [
    "The paper's Fig. 1: 41 patients with LM from NSCLC treated with IC and systemic therapy (December 2017 – "
    "July 2022), all analysed; 27 died during follow-up and 11 had not reached iPFS (the longest 22.1 months).",
]
_TREATMENT_NOTES = [
    "The paper: 325 injections, a median of 7 per patient (range 2–22); 38 IM injections in 7 patients "
    "(median 5), 287 IP injections in 34 (median 8); an Ommaya reservoir in 3 patients; highest doses "
    "methotrexate 12 mg, pemetrexed 50 mg.",
]


def _flow_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    followed = frame["os_months"].notna() & frame["ipfs_months"].notna()
    steps = (
        ("Treated with intrathecal chemotherapy", frame["intrathecal"] == 1),
        ("Two or more intrathecal injections", frame["it_dose_count"] >= 2),
        ("Followed for iPFS and OS (analysed)", followed),
        (f"{INDENT}LM progression or death (iPFS event)", followed & (frame["ipfs_event"] == 1)),
        (f"{INDENT}Free of LM progression at the last follow-up", followed & (frame["ipfs_event"] == 0)),
        (f"{INDENT}Died", followed & (frame["os_event"] == 1)),
        (f"{INDENT}Alive at the last follow-up", followed & (frame["os_event"] == 0)),
    )
    return [_count_row(frame, mask, label) for label, mask in steps]


SUMMARY_PIECES = ("value", "min", "max")


def _summary_columns() -> list[Column]:
    """Hidden numbers behind a text summary such as "7 (2–22)": the value (median, total), min and max."""
    return [
        Column(f"{piece}_{part}", f"{piece} ({COLUMN_LABELS[part]})", digits=1, shown=False)
        for part in PARTS
        for piece in SUMMARY_PIECES
    ]


def _per_part(
    label: str, frame: pd.DataFrame, summary: Callable[[pd.DataFrame], dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    """A row with ``summary``'s text and numbers for IP, IM and all patients."""
    row: dict[str, Any] = {"label": label, **extra}
    for part in PARTS:
        pieces = summary(frame if part == "all" else frame[frame[DRUG] == part])
        row[f"summary_{part}"] = pieces.pop("text", "")
        row |= {f"{piece}_{part}": value for piece, value in pieces.items()}
    return row


def _median_range(values: pd.Series) -> dict[str, Any]:
    values = values.dropna()
    if values.empty:
        return {}
    low, high, median = float(values.min()), float(values.max()), float(values.median())
    return {"value": median, "min": low, "max": high, "text": f"{median:g} ({low:g}–{high:g})"}


def _total(values: pd.Series) -> dict[str, Any]:
    return {"value": float(values.sum()), "text": f"{values.sum():g}"}


def _treatment_rows(frame: pd.DataFrame, patients) -> list[dict[str, Any]]:
    """Injections (total; per patient median and range), the Ommaya reservoir and the highest doses."""
    schedule = records.injection_schedule(patients, frame["patient_id"])
    given = schedule[schedule["status"] != "missed"]
    highest = given.groupby(given["patient_id"].map(frame.set_index("patient_id")[DRUG]))["main_mg"].max()

    def dose(part: pd.DataFrame) -> dict[str, Any]:
        drugs = part[DRUG].unique()
        if len(drugs) != 1 or drugs[0] not in highest:
            return {}
        return {"value": float(highest[drugs[0]]), "text": f"{highest[drugs[0]]:g} mg"}

    return [
        _per_part("Patients", frame, lambda part: {"value": len(part), "text": str(len(part))}),
        _per_part("Intrathecal injections", frame, lambda part: _total(part["it_dose_count"])),
        _per_part(
            "Injections per patient, median (range)", frame, lambda part: _median_range(part["it_dose_count"])
        ),
        _per_part("Patients treated through an Ommaya reservoir", frame, lambda part: _total(part["ommaya"])),
        _per_part("Highest single dose", frame, dose),
    ]


def _months_text(value: Any) -> str:
    return "NR" if pd.isna(value) else f"{value:.1f}"


def _follow_up_rows(frame: pd.DataFrame, method: MedianCI) -> list[dict[str, Any]]:
    data = frame.dropna(subset=["os_months", "os_event"])
    reverse = data.assign(censoring=1 - data["os_event"])
    km = kaplan_meier(reverse, "os_months", "censoring", median_ci=method)
    summary = km.summary.iloc[0]
    lower, upper = summary["median_lower"], summary["median_upper"]
    ci = "" if pd.isna(lower) and pd.isna(upper) else f"{_months_text(lower)}–{_months_text(upper)}"
    return [
        {
            "label": "Median follow-up (reverse Kaplan–Meier)",
            "method": km.median_ci_method,
            "n": int(summary["n"]),
            "median": summary["median"],
            "median_lower": summary["median_lower"],
            "median_upper": summary["median_upper"],
            "ci": ci,
        },
        {
            "label": "Median time observed (OS, dead or alive)",
            "method": "median of the OS times",
            "n": len(data),
            "median": float(data["os_months"].median()),
        },
    ]


# --- Table 1 -----------------------------------------------------------------------------------------


def _test(frame: pd.DataFrame, values: pd.Series, test: str) -> dict[str, Any]:
    """The test SPSS prints that the paper reports, on the levels observed (missing values left out)."""
    present = values.notna()
    table = pd.crosstab(values[present], frame.loc[present, DRUG]).to_numpy()
    if min(table.shape, default=0) < 2:
        return {"test": "—", "p": None}
    if test == "pearson":
        return {"test": "Pearson χ²", "p": chi_square_test(table, correct=False).p}
    if test == "fisher":
        return {"test": "Fisher", "p": fisher_exact_test(table).p}
    return {"test": "Yates χ²" if table.shape == (2, 2) else "Pearson χ²", "p": chi_square_test(table).p}


def _characteristic(
    frame: pd.DataFrame,
    variable: str,
    label: str,
    levels: Sequence[tuple[Any, str]],
    *,
    test: str = "yates",
    values: pd.Series | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """A heading row with the test, then a row per level (each declared level, zero or not), then the
    patients it is not recorded for: the layout of the paper's Table 1."""
    values = frame[variable] if values is None else values
    heading = {"label": label, "variable": variable, "level": None}
    unrecorded = _count_row(
        frame, values.isna(), f"{INDENT}not recorded", variable=variable, level="not recorded"
    )
    if values.isna().all():
        note = f"{label}: not recorded for any patient, so not tested (the paper published only its group counts)."
        return [heading | {"test": "—", "p": None}, unrecorded], [note]
    rows = [
        _count_row(frame, values == value, f"{INDENT}{text}", variable=variable, level=level_text(value))
        for value, text in levels
    ]
    return [heading | _test(frame, values, test), *rows, *([unrecorded] if values.isna().any() else [])], []


YES_NO = ((1, "Yes"), (0, "No"))


def table_one_rows(frame: pd.DataFrame) -> tuple[list[dict[str, Any]], list[str]]:
    """The paper's Table 1 rows, in its order, with the registry's extra rows where the paper mixed two."""
    cytology = frame["csf_cytology_positive"].map({0.0: "negative", 1.0: "positive"}).fillna("unknown")
    tki_1_2 = ((frame["prior_egfr_tki_1"] == 1) | (frame["prior_egfr_tki_2"] == 1)).astype(int)
    egfr = (frame["mutation_class"] == "EGFR").astype(int)
    parts = [
        (
            [
                _count_row(
                    frame, pd.Series(True, index=frame.index), "No. of patients", variable="n", level=None
                )
            ],
            [],
        ),
        (_age_rows(frame), []),
        _characteristic(frame, AGE_UNDER_60, "Age (years)", ((1, "< 60"), (0, "≥ 60"))),
        _characteristic(frame, "sex_male", "Sex", ((1, "Male"), (0, "Female"))),
        _characteristic(frame, "ecog_ge2", "ECOG PS", ((0, "< 2"), (1, "≥ 2")), test="pearson"),
        _characteristic(
            frame,
            "csf_cytology_positive",
            "CSF cytology",
            (("negative", "Negative"), ("positive", "Positive"), ("unknown", "Unknown (never examined)")),
            values=cytology,
        ),
        _characteristic(frame, "mri_positive", "MRI", ((0, "Negative"), (1, "Positive"))),
        _characteristic(frame, "brain_metastases", "Brain metastasis", ((1, "Present"), (0, "Absent"))),
        _characteristic(
            frame, "prior_egfr_tki_1_2", "Before IC: 1st/2nd-generation TKIs", YES_NO, values=tki_1_2
        ),
        _characteristic(frame, "prior_egfr_tki_3", "Before IC: 3rd-generation TKIs", YES_NO),
        _characteristic(frame, "prior_chemotherapy", "Before IC: chemotherapy", YES_NO),
        _characteristic(frame, "prior_bevacizumab", "Bevacizumab before IC", YES_NO),
        _characteristic(frame, "bevacizumab", "Bevacizumab during IC", YES_NO),
        _characteristic(
            frame,
            "driver_mutation",
            "Gene mutation (tissue genotype)",
            ((1, "Driver mutation"), (0, "None (wild-type)")),
        ),
        (
            [
                _count_row(frame, egfr == 1, f"{INDENT}of which EGFR", variable="egfr", level="1"),
                _count_row(
                    frame,
                    frame["met_amplification"] == 1,
                    f"{INDENT}MET amplification (tissue or CSF)",
                    variable="met_amplification",
                    level="1",
                ),
            ],
            [],
        ),
        _characteristic(
            frame,
            "mutation_as_treated",
            "Gene mutation (targeted therapy received)",
            ((1, "Mutation, or treated as one"), (0, "Wild-type, no targeted therapy")),
        ),
        _characteristic(
            frame,
            "histology",
            "Histology",
            [(code, label) for code, label in NsclcHistology.choices if (frame["histology"] == code).any()],
        ),
    ]
    rows = [row for part_rows, _ in parts for row in part_rows]
    notes = [note for _, part_notes in parts for note in part_notes]
    return rows, notes + TABLE_ONE_NOTES


TABLE_ONE_NOTES = [
    "CSF cytology: unknown (never examined) counts as a level of the test, as in the paper. The paper prints "
    "7 positive and 1 unknown for its 7 IM patients; its p = 0.376 is the Yates χ² of 6 positive and 1 unknown.",
    "Systemic therapy before IC: the three classes overlap (a patient may have had several), so each is tested "
    "on its own here. The paper gives one p = 0.372 for the three, which none of SPSS's tests of its counts gives; "
    "it also splits chemotherapy IP 6 / IM 5, where its Table 3 gives 7 / 4.",
    "Bevacizumab: the paper's p = 0.958 beside bevacizumab before IC is the Yates χ² of bevacizumab during IC "
    "(21 of 34 IP, 5 of 7 IM patients); both rows are shown.",
    "Gene mutation: the paper counts EGFR 31, MET 1 and none 10 (tissue genotype, the MET amplification found in "
    "the CSF of an EGFR-mutant patient), but its p = 0.334 is the Yates χ² of the grouping by targeted therapy "
    "received (none: 9). Both groupings are shown.",
]


def _age_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Median age (range) per column; the paper: 56 years (37–73) in all."""
    summary = _per_part(
        "Age (years), median (range)",
        frame,
        lambda part: _median_range(part["age"]),
        variable="age",
        level=None,
    )
    return [summary]


# --- Table 3 -----------------------------------------------------------------------------------------

_ENDPOINT_COLUMNS = ("ipfs_months", "ipfs_event", "os_months", "os_event")


def _time_text(months: Any, event: Any) -> str:
    """Months to one decimal as Table 3 writes them, '+' when censored: '7.3', '9.6+', '4'."""
    if pd.isna(months) or pd.isna(event):
        return "not recorded"
    text = f"{round(float(months), 1):g}"
    return text if event == 1 else f"{text}+"


def _patient_row(row: Mapping[str, Any], levels: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    def label(variable: str) -> str:
        value = row[variable]
        return "not recorded" if pd.isna(value) else levels[variable].get(value, value)

    return {
        "study_code": row["study_code"],
        "tissue_mutations": row["tissue_mutations"],
        "csf_mutations": row["csf_mutations"],
        "systemic_before_ic": row["systemic_before_ic"],
        "systemic_during_ic": row["systemic_during_ic"],
        "neurological": label("neurological_response"),
        "mri": label("mri_response"),
        "response": label("clinical_response"),
        "ipfs": _time_text(row["ipfs_months"], row["ipfs_event"]),
        "os": _time_text(row["os_months"], row["os_event"]),
        **{name: row[name] for name in _ENDPOINT_COLUMNS},
    }


def _km_panel(km, endpoint: str, risk: pd.DataFrame, note: str) -> KmPanel:
    return KmPanel(
        title=endpoint,
        curve=km.curve,
        groups=[(group, GROUP_LABELS.get(group, group)) for group in km.summary["group"]],
        xlabel=XLABEL,
        ylabel=YLABEL[endpoint],
        at_risk=risk,
        note=note,
    )


# --- Table 4 -----------------------------------------------------------------------------------------

_COX_TABLE_COLUMNS = [
    *COX_COLUMNS[:2],  # the label, then the term (hidden)
    Column("coding", "Coding", "text"),
    *COX_COLUMNS[2:],
    Column("note", "Note", "text", missing=""),
    Column("status", "Status", "text", shown=False),
]


def _cox_row(data: pd.DataFrame, time: str, event: str, factor: CoxFactor, ties: Ties) -> dict[str, Any]:
    """One factor's univariable model; a factor the data cannot support keeps its row, saying why."""
    row: dict[str, Any] = {"term": factor.term, "label": factor.label, "coding": factor.coding}
    values = data[factor.term].dropna().unique()
    if len(values) < 2:
        status = "not recorded" if len(values) == 0 else "constant"
        why = "not recorded for any patient" if len(values) == 0 else "every patient has the same value"
        return row | {"status": status, "note": why}
    try:
        model = cox(data, time, event, [factor.term], ties=ties)
    except AnalysisError as exc:
        return row | {"status": "failed", "note": str(exc)}
    return (
        row
        | model.table.iloc[0].to_dict()
        | {
            "n": model.n,
            "events": model.events,
            "n_excluded": model.n_excluded,
            "ph_p": model.proportional_hazards["p"].iloc[0],
            "status": "ok",
            "note": f"{model.n_excluded} not recorded" if model.n_excluded else None,
        }
    )


def _not_recorded_note(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    missing = [row["label"] for row in rows if row["status"] == "not recorded"]
    if not missing:
        return []
    return [
        f"Not recorded for any patient, so not modelled: {', '.join(missing)} (the paper published only group "
        "counts of ECOG PS and brain metastasis)."
    ]


def _selection_note(selection: str, chosen: Sequence[str]) -> str:
    rule = {
        "p05": "the factors of the eight with a univariable p < 0.05 (the paper's procedure)",
        "p10": "the factors of the eight with a univariable p < 0.10",
        "all": "all eight factors that are recorded",
    }[selection]
    names = ", ".join(chosen) or "none"
    return f"Selection (option): {rule}. Selected: {names}."


def _paper_model_notes(rows: Sequence[Mapping[str, Any]], chosen: Sequence[str]) -> list[str]:
    """How this model stands to the paper's (ECOG PS and bevacizumab), and why it cannot be it."""
    by_term = {row["term"]: row for row in rows}
    paper = ", ".join(f"{by_term[term]['label']} ({result})" for term, result in PAPER_MODEL.items())
    notes = [f"The paper's model: {paper}; both had a univariable p < 0.05."]
    absent = [by_term[term]["label"] for term in PAPER_MODEL if by_term[term]["status"] != "ok"]
    if absent:
        notes.append(
            f"{', '.join(absent)} is not recorded here, so it can neither be tested nor enter the model: this "
            "model cannot be the paper's, and its hazard ratios are not adjusted for it."
        )
    elif set(chosen) != set(PAPER_MODEL):
        notes.append("The factors selected here differ from the paper's, so this model is not the paper's.")
    return notes


# --- Table 5 -----------------------------------------------------------------------------------------

#: Table 5's columns in its order (the paper has no immunotherapy column: its one patient had no event).
REGIMEN_ORDER = ("chemotherapy", "targeted", "immunotherapy")
MYELOSUPPRESSION = (
    CtcaeTerm.WBC_DECREASED,
    CtcaeTerm.NEUTROPHIL_DECREASED,
    CtcaeTerm.PLATELET_DECREASED,
    CtcaeTerm.ANAEMIA,
)
#: Table 5's rows: key, label, the CTCAE terms counted (a patient once, by the worst grade).
TABLE5_ROWS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("leukopenia", "Leukopenia (white blood cell decreased)", (CtcaeTerm.WBC_DECREASED,)),
    ("neutropenia", "Neutropenia (neutrophil count decreased)", (CtcaeTerm.NEUTROPHIL_DECREASED,)),
    ("thrombocytopenia", "Thrombocytopenia (platelet count decreased)", (CtcaeTerm.PLATELET_DECREASED,)),
    ("anaemia", "Anaemia", (CtcaeTerm.ANAEMIA,)),
    ("eha", "Raised hepatic aminotransferases (EHA)", (CtcaeTerm.ALT_INCREASED, CtcaeTerm.AST_INCREASED)),
    ("meningitis", "Acute chemical meningitis (arachnoiditis)", (CtcaeTerm.ARACHNOIDITIS,)),
    ("leukoencephalopathy", "Leukoencephalopathy", (CtcaeTerm.LEUKOENCEPHALOPATHY,)),
)
GRADES = (1, 2, 3, 4, 5)


def _regimen_label(code: str) -> str:
    return next(label for regimen, label, _ in SYSTEMIC_REGIMENS if regimen == code)


def _ordered(regimens: Sequence[str]) -> list[str]:
    return [code for code in REGIMEN_ORDER if code in regimens]


_REGIMEN_GRADE_COLUMNS = [
    Column("regimen_label", "Systemic regimen", "text"),
    Column("regimen", "Regimen", "text", shown=False),
    Column("patients", "Patients", "count", shown=False),
    Column("label", "Toxicity", "text"),
    Column("key", "Key", "text", shown=False),
    *(Column(f"g{grade}", f"Gr {grade}", "count", shown=grade < 5) for grade in GRADES),
]


def _regimen_grade_rows(
    worst: pd.DataFrame, regimens: Sequence[str], frame: pd.DataFrame
) -> list[dict[str, Any]]:
    """Per regimen (Table 5's column groups, as row groups here), patients by the worst grade of each
    row's terms; the haematologic row sums the myelosuppression rows (cases), as the paper's does."""
    rows = []
    for code in _ordered(regimens):
        n = int((frame["systemic_regimen"] == code).sum())
        group = {"regimen": code, "regimen_label": f"{_regimen_label(code)} (n = {n})", "patients": n}
        part_rows, blood = [], []
        for key, label, terms in TABLE5_ROWS:
            part = worst[(worst["regimen"] == code) & worst["ctcae_term"].isin(terms)]
            grades = part.groupby("patient_id")["grade"].max()
            is_blood = set(terms) <= set(MYELOSUPPRESSION)
            counts = {f"g{grade}": int((grades == grade).sum()) for grade in GRADES}
            part_rows.append(
                group | {"key": key, "label": f"{INDENT}{label}" if is_blood else label} | counts
            )
            if is_blood:
                blood.append(counts)
        haematologic = {name: sum(counts[name] for counts in blood) for name in blood[0]}
        rows += [
            group | {"key": "haematologic", "label": "Haematologic toxicities (cases)"} | haematologic,
            *part_rows,
        ]
    return rows


def _myelosuppression_rows(
    events: pd.DataFrame, regimen_of: pd.Series, regimens: Sequence[str]
) -> list[dict[str, Any]]:
    """Patients with myelosuppression, by kind, grade ≥ 3 and regimen; and with both kinds at once."""
    events = events.assign(regimen=events["patient_id"].map(regimen_of))
    blood = events[events["ctcae_term"].isin(MYELOSUPPRESSION)]
    severe = blood[blood["grade"] >= 3]

    def who(part: pd.DataFrame, term: str | None = None) -> set[int]:
        return set(part["patient_id"] if term is None else part.loc[part["ctcae_term"] == term, "patient_id"])

    leukopenia, thrombocytopenia = (
        who(blood, CtcaeTerm.WBC_DECREASED),
        who(blood, CtcaeTerm.PLATELET_DECREASED),
    )
    both = leukopenia & thrombocytopenia
    onsets = blood[blood["ctcae_term"].isin([CtcaeTerm.WBC_DECREASED, CtcaeTerm.PLATELET_DECREASED])]
    together = {
        pid
        for pid, part in onsets[onsets["patient_id"].isin(both)].groupby("patient_id")
        if part.groupby("onset_date")["ctcae_term"].nunique().max() > 1
    }
    liver = who(events[events["ctcae_term"].isin([CtcaeTerm.ALT_INCREASED, CtcaeTerm.AST_INCREASED])])
    groups = (
        ("any", "Myelosuppression, any", who(blood)),
        ("leukopenia", f"{INDENT}Leukopenia", leukopenia),
        ("thrombocytopenia", f"{INDENT}Thrombocytopenia", thrombocytopenia),
        ("both", f"{INDENT}Both", both),
        ("together", f"{INDENT}{INDENT}Both at once (same onset)", together),
        ("grade3", "Myelosuppression grade ≥ 3", who(severe)),
        ("grade3_leukopenia", f"{INDENT}Leukopenia grade ≥ 3", who(severe, CtcaeTerm.WBC_DECREASED)),
        (
            "grade3_thrombocytopenia",
            f"{INDENT}Thrombocytopenia grade ≥ 3",
            who(severe, CtcaeTerm.PLATELET_DECREASED),
        ),
        ("liver", "Raised hepatic aminotransferases", liver),
        ("any_grade3", "Any adverse event grade ≥ 3", who(events[events["grade"] >= 3])),
    )
    rows = []
    for key, label, patients in groups:
        row: dict[str, Any] = {"key": key, "label": label, "n_all": len(patients)}
        row |= {f"n_{code}": sum(1 for pid in patients if regimen_of.get(pid) == code) for code in regimens}
        rows.append(row)
    return rows


def _followed_by_month(os_months: pd.Series, groups: pd.Series) -> pd.DataFrame:
    """Per whole month since the first dose (rows) and group (columns): patients whose follow-up
    (``os_months``, to death or last contact) reaches that month."""
    months = np.arange(0, int(np.ceil(os_months.max())) + 1, dtype=float)
    followed = {}
    for group, lengths in os_months.groupby(groups):
        ordered = np.sort(lengths.to_numpy(dtype=float))
        followed[group] = len(ordered) - np.searchsorted(ordered, months, side="left")
    return pd.DataFrame(followed, index=months)


def _injections_by_month(injections: pd.DataFrame, patient_ids: pd.Series, groups: pd.Series) -> pd.DataFrame:
    """Per whole month since the first dose (rows) and group (columns): intrathecal injections given."""
    group_of = pd.Series(groups.to_numpy(), index=patient_ids.to_numpy())
    given = injections[injections["patient_id"].isin(group_of.index)]
    month = np.floor(given["months"].to_numpy(dtype=float))
    return pd.crosstab(month, given["patient_id"].map(group_of).to_numpy()).sort_index()


def _months_after(origin: pd.Series, patient_ids: pd.Series, dates: pd.Series) -> pd.Series:
    """Months from each patient's first intrathecal dose (the iPFS and OS origin) to a date."""
    return (pd.to_datetime(dates) - patient_ids.map(origin)).dt.days / DAYS_PER_MONTH
