"""NPSLE report: intrathecal methotrexate + dexamethasone versus standard care, as in the seed paper.

Covariates and models follow the paper and R's reference analysis (../shared/reference/
cohort_1.r.json): 1:1 nearest-neighbour propensity matching on sex, age, SLEDAI-2K, headache,
psychosis and methylprednisolone pulse (caliper 0.2 SD); the discharge outcome by multinomial
regression against exacerbation on the covariates R used; Cox models of death or relapse.
"""

from __future__ import annotations

from functools import cached_property

import pandas as pd

from analytics.compare import paired_change
from analytics.errors import AnalysisError
from analytics.matching import MatchResult, match_nearest
from analytics.plots import KmPanel, PairedGroup, forest_plot, km_plot, love_plot, paired_box_plot
from analytics.regression import multinomial_logistic
from analytics.reports import records
from analytics.reports.base import TIES_CHOICES, Column, Option, SectionBuilder, SectionPlan, StudyReport
from analytics.reports.common import (
    COX_COLUMNS,
    LOGRANK_COLUMNS,
    SurvivalComparison,
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
    person_years_rows,
    proportional_hazards_note,
    quartiles,
    survival_at_columns,
    table_one_columns,
    univariable_cox_rows,
)
from analytics.reports.display import p_text
from analytics.survival import cox
from registry.choices import DischargeOutcomeCode

TREATMENT = "intrathecal"
GROUP_LABELS = {"intrathecal=0": "Standard care", "intrathecal=1": "Intrathecal MTX + DEX"}
TIME, EVENT = "time_years", "event"
ENDPOINT = "Death or relapse"

MATCHING_COVARIATES = ("sex_male", "age", "sledai", "headache", "psychosis", "mpp")
CALIPER_SD = 0.2
BASELINE_CONTINUOUS = ("age", "sledai", "icp_baseline", "protein_baseline")
BASELINE_CATEGORICAL = (
    "sex_male",
    "headache",
    "psychosis",
    "acute_confusional_state",
    "seizure",
    "mpp",
    "cyc",
    "inc_icp",
    "inc_protein",
)
IMMUNOSUPPRESSANTS = ("mpp", "oral_gc", "cyc", "mmf", "cni", "rituximab", "ivig", "plasma_exchange")
#: The covariates of R's nnet::multinom in the reference analysis.
OUTCOME_COVARIATES = ("intrathecal", "seizure", "psychosis", "sledai", "inc_icp", "inc_protein", "mpp")
OUTCOME_REFERENCE = DischargeOutcomeCode.EXACERBATION.value
COX_UNIVARIABLE = (
    "intrathecal",
    "sex_male",
    "sledai",
    "headache",
    "seizure",
    "acute_confusional_state",
    "psychosis",
    "mpp",
    "cyc",
    "inc_icp",
    "inc_protein",
)
#: The reference's multivariable model (its "acs" is acute_confusional_state).
COX_MULTIVARIABLE = ("intrathecal", "inc_protein", "acute_confusional_state", "mpp", "cyc")
SUBGROUPS = (
    ("inc_protein", 1, "Raised CSF protein (> 0.5 g/L)"),
    ("inc_protein", 0, "Normal CSF protein"),
    ("acute_confusional_state", 1, "Acute confusional state"),
    ("seizure", 1, "Seizure disorders"),
    ("psychosis", 1, "Psychosis"),
    ("headache", 1, "Headache"),
)
RISK_STEP_YEARS = 2.0
SURVIVAL_YEARS = (1.0, 3.0, 5.0)
XLABEL, YLABEL = "Years since index admission", "Free of death or relapse"


class NpsleReport(StudyReport):
    title = "NPSLE: intrathecal methotrexate and dexamethasone versus standard care"
    option_specs = (Option("ties", "Cox model ties", TIES_CHOICES, "efron"),)
    group_labels = GROUP_LABELS
    short_labels = {
        "headache": "Headache",
        "protein_baseline": "CSF protein",
        "icp_baseline": "Opening pressure",
        "discharge_outcome": "Outcome",
    }
    level_labels = {
        "discharge_outcome": {
            DischargeOutcomeCode.COMPLETE_RECOVERY.value: "complete recovery",
            DischargeOutcomeCode.PARTIAL_IMPROVEMENT.value: "partial improvement",
            DischargeOutcomeCode.EXACERBATION.value: "exacerbation or death",
        }
    }

    def sections(self) -> list[SectionPlan]:
        return [
            ("baseline", "Baseline characteristics (Table 1, unmatched)", self.baseline),
            ("matching", "Propensity-score matching", self.matched_baseline),
            ("treatment", "Immunosuppressive treatment", self.treatment),
            ("outcome", "Outcome at discharge", self.outcome),
            ("csf_protein", "CSF protein, first to last lumbar puncture", self.csf_protein),
            ("csf_pressure", "CSF opening pressure, first to last lumbar puncture", self.csf_pressure),
            ("survival", "Death or relapse: unmatched cohort", self.survival),
            ("survival_matched", "Death or relapse: matched cohort", self.survival_matched),
            ("subgroups", "Death or relapse by subgroup", self.subgroups),
            ("sensitivity", "Sensitivity analysis: without headache-only patients", self.sensitivity),
            ("cox_univariable", "Univariable Cox models", self.cox_univariable),
            ("cox_multivariable", "Multivariable Cox model", self.cox_multivariable),
            ("person_years", "Follow-up and event rates", self.person_years),
            ("safety", "Safety", self.safety),
            ("doses", "Intrathecal schedule and dose intensity", self.doses),
        ]

    def doses(self, b: SectionBuilder) -> None:
        dose_schedule(b, self.frame, self.cohort.patients, group_labels=self.group_labels, account=True)

    @cached_property
    def matching(self) -> MatchResult:
        return match_nearest(
            self.frame, TREATMENT, MATCHING_COVARIATES, caliper=CALIPER_SD, id_col="patient_id"
        )

    # --- baseline and matching ---------------------------------------------------------------

    def _table_one(self, b: SectionBuilder, key: str, title: str, frame: pd.DataFrame) -> None:
        described = describe_groups(
            frame,
            TREATMENT,
            self.labels,
            continuous=BASELINE_CONTINUOUS,
            categorical=BASELINE_CATEGORICAL,
            digits=2,  # CSF protein is read in hundredths of a g/L
        )
        notes = [
            "Median [Q1, Q3] with the Mann–Whitney test; n (%) with chi-square (Yates), or Fisher's "
            "exact test where an expected count is below 5. SMD: intrathecal minus standard care.",
            *described.notes,
        ]
        b.table(key, title, table_one_columns(described, GROUP_LABELS, TREATMENT), described.table, notes)

    def baseline(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, [TREATMENT])
        self._table_one(b, "table_one", "Table 1: before matching", frame)

    def matched_baseline(self, b: SectionBuilder) -> None:
        b.analysed(self.frame, [TREATMENT, *MATCHING_COVARIATES])
        result = self.matching
        summary = {
            "treated": result.n_treated,
            "control": result.n_control,
            "pairs": result.n_treated_matched,
            "treated_unmatched": result.n_treated - result.n_treated_matched,
            "control_unmatched": result.n_control - result.n_control_matched,
            "caliper_sd": CALIPER_SD,
            "caliper_width": result.caliper_width,
            "excluded_missing": result.n_excluded,
        }
        b.table(
            "summary",
            "Matching",
            [
                Column("treated", "Intrathecal", "count"),
                Column("control", "Standard care", "count"),
                Column("pairs", "Matched pairs", "count"),
                Column("treated_unmatched", "Intrathecal unmatched", "count"),
                Column("control_unmatched", "Standard care unmatched", "count"),
                Column("caliper_sd", "Caliper (SD)", digits=1),
                Column("caliper_width", "Caliper (propensity score)", digits=4),
                Column("excluded_missing", "Excluded (missing covariate)", "count"),
            ],
            [summary],
            [
                "1:1 nearest neighbour without replacement on the propensity score (logistic model of "
                f"{', '.join(self.labels[c] for c in MATCHING_COVARIATES)}), as MatchIt's rule."
            ],
        )
        self._table_one(b, "table_one", "Table 1: after matching", result.matched)
        balance = [
            row | {"label": self.labels.get(row["covariate"], row["covariate"])}
            for row in result.balance.to_dict("records")
        ]
        b.table(
            "balance",
            "Covariate balance",
            [
                Column("label", "Covariate", "text"),
                Column("covariate", "Variable", "text", shown=False),
                Column("smd_before", "SMD before", digits=3),
                Column("smd_after", "SMD after", digits=3),
            ],
            balance,
        )
        b.figure(
            "love_plot",
            "Love plot",
            love_plot(
                b.key_for("love_plot"),
                [(row["label"], row["smd_before"], row["smd_after"]) for row in balance],
            ),
            "Absolute standardized mean differences before and after matching; |SMD| < 0.1 "
            "(dashed line) is taken as balanced.",
        )
        model = [
            row | {"label": self.labels.get(row["term"], row["term"])}
            for row in result.model.table.to_dict("records")
        ]
        b.table("propensity_model", "Propensity model (logistic regression)", _odds_columns(), model)

    # --- treatment and outcome -----------------------------------------------------------------

    def treatment(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, [TREATMENT])
        described = describe_groups(frame, TREATMENT, self.labels, categorical=IMMUNOSUPPRESSANTS)
        b.table(
            "immunosuppressants",
            "Immunosuppressive treatment during the index admission",
            table_one_columns(described, GROUP_LABELS, TREATMENT),
            described.table,
            described.notes,
        )
        treated = frame[frame[TREATMENT] == 1]
        if treated.empty:
            return
        course = []
        for name in ("it_dose_count", "cum_methotrexate_mg", "cum_dexamethasone_mg"):
            median, q1, q3 = quartiles(treated[name])
            course.append(
                {"label": self.labels[name], "variable": name, "median": median, "q1": q1, "q3": q3}
            )
        b.table(
            "intrathecal_course",
            f"Intrathecal course (n = {len(treated)})",
            [
                Column("label", "Measure", "text"),
                Column("variable", "Variable", "text", shown=False),
                Column("median", "Median", digits=1),
                Column("q1", "Q1", digits=1),
                Column("q3", "Q3", digits=1),
            ],
            course,
        )

    def outcome(self, b: SectionBuilder) -> None:
        frame = self.frame.assign(
            discharge_outcome=self.frame["discharge_outcome"].replace(
                DischargeOutcomeCode.DEATH.value, OUTCOME_REFERENCE
            )
        )
        deaths = int((self.frame["discharge_outcome"] == DischargeOutcomeCode.DEATH).sum())
        data = b.analysed(frame, ["discharge_outcome", *OUTCOME_COVARIATES])
        described = describe_groups(
            data, TREATMENT, self.labels, categorical=["discharge_outcome"], level_labels=self.level_labels
        )
        grouping = (
            [f"Deaths at discharge ({deaths}) are counted with exacerbation, the reference level."]
            if deaths
            else []
        )
        b.table(
            "distribution",
            "Outcome at discharge",
            table_one_columns(described, GROUP_LABELS, TREATMENT),
            described.table,
            [*grouping, *described.notes],
        )
        model = multinomial_logistic(
            data, "discharge_outcome", OUTCOME_COVARIATES, reference=OUTCOME_REFERENCE
        )
        labels = dict(DischargeOutcomeCode.choices)
        rows = [
            row
            | {
                "label": self.labels.get(row["term"], row["term"]),
                "level_label": f"{labels.get(row['level'], row['level'])} vs exacerbation",
            }
            for row in model.table.to_dict("records")
        ]
        b.table(
            "multinomial",
            "Multinomial logistic regression (reference: exacerbation)",
            [Column("level_label", "Outcome", "text"), Column("level", "Level", "text", shown=False)]
            + _odds_columns(),
            rows,
            [f"n = {model.n}; Wald 95% intervals, as nnet::multinom with summary().", *grouping],
        )
        for level in sorted({row["level"] for row in rows}):
            shown = [row for row in rows if row["level"] == level and row["term"] != "(Intercept)"]
            b.figure(
                f"forest_{level}",
                f"{labels.get(level, level)} vs exacerbation",
                forest_plot(
                    b.key_for(f"forest_{level}"),
                    effects(shown, "or"),
                    xlabel="Odds ratio (95% CI, log scale)",
                ),
                "Adjusted odds ratios from the multinomial model.",
            )

    # --- CSF ---------------------------------------------------------------------------------------

    def _csf_change(self, b: SectionBuilder, before: str, after: str, unit: str) -> None:
        data = b.analysed(self.frame, [before, after, TREATMENT])
        result = paired_change(data, before, after, by=TREATMENT)
        rows = []
        for row in result.within.to_dict("records"):
            level = int(row["group"].split("=")[1])
            part = data[data[TREATMENT] == level]
            first, last = quartiles(part[before]), quartiles(part[after])
            rows.append(
                row
                | {
                    "label": GROUP_LABELS[row["group"]],
                    "median_first": first[0],
                    "q1_first": first[1],
                    "q3_first": first[2],
                    "median_last": last[0],
                    "q1_last": last[1],
                    "q3_last": last[2],
                }
            )
        b.table(
            "within",
            "First vs last lumbar puncture, within each group (Wilcoxon signed-rank)",
            [
                Column("label", "Group", "text"),
                Column("group", "Stratum", "text", shown=False),
                Column("n", "Pairs", "count"),
                Column("median_first", f"Median first ({unit})"),
                Column("q1_first", "Q1 first", shown=False),
                Column("q3_first", "Q3 first", shown=False),
                Column("median_last", f"Median last ({unit})"),
                Column("q1_last", "Q1 last", shown=False),
                Column("q3_last", "Q3 last", shown=False),
                Column("n_zero", "Unchanged", "count"),
                Column("statistic", "V", digits=1),
                Column("p", "p", "p"),
                Column("method", "Method", "text"),
            ],
            rows,
        )
        between = result.between
        b.table(
            "between",
            "Change (last − first) between groups (Wilcoxon rank-sum)",
            [
                Column("test", "Test", "text"),
                Column("statistic", "W", digits=1),
                Column("p", "p", "p"),
                Column("method", "Method", "text"),
                Column("n", "Patients", "count"),
            ],
            [between.to_dict()],
        )
        groups = [
            PairedGroup(GROUP_LABELS[f"{TREATMENT}={level}"], part[before].tolist(), part[after].tolist())
            for level, part in data.groupby(TREATMENT)
        ]
        b.figure(
            "box_plot",
            f"{self.labels[before]}: first and last lumbar puncture",
            paired_box_plot(b.key_for("box_plot"), groups, ylabel=f"{self.labels[before]} ({unit})"),
            "Patients with a measurement at the first and at a later lumbar puncture.",
        )

    def csf_protein(self, b: SectionBuilder) -> None:
        self._csf_change(b, "protein_baseline", "protein_after", "g/L")

    def csf_pressure(self, b: SectionBuilder) -> None:
        self._csf_change(b, "icp_baseline", "icp_after", "mmH2O")

    # --- survival ----------------------------------------------------------------------------------

    def _survival(self, b: SectionBuilder, data: pd.DataFrame, cohort: str) -> None:
        """Kaplan–Meier curves with numbers at risk, then medians, log-rank and survival at 1/3/5 years."""
        comparison = compare_survival(data, TIME, EVENT, TREATMENT, risk_step=RISK_STEP_YEARS)
        panel = KmPanel(
            title=f"{cohort} cohort",
            curve=comparison.km.curve,
            groups=list(GROUP_LABELS.items()),
            xlabel=XLABEL,
            ylabel=YLABEL,
            at_risk=comparison.at_risk,
            note=f"Log-rank p = {p_text(comparison.logrank.p)}",
        )
        b.figure(
            "km",
            f"Kaplan–Meier: {cohort.lower()} cohort",
            km_plot(b.key_for("km"), [panel]),
            _KM_CAPTION,
        )
        b.table(
            "medians",
            "Kaplan–Meier estimates",
            km_columns(unit="years", digits=2),
            km_rows(comparison.km, ENDPOINT, GROUP_LABELS),
        )
        b.table(
            "logrank",
            "Log-rank test",
            LOGRANK_COLUMNS,
            [logrank_row(comparison.logrank, ENDPOINT, "Intrathecal vs standard care")],
        )
        survival_at = [
            row | {"label": GROUP_LABELS.get(row["group"], row["group"])}
            for row in comparison.km.survival_at(SURVIVAL_YEARS).to_dict("records")
        ]
        b.table(
            "survival_at",
            "Survival free of death or relapse at 1, 3 and 5 years",
            survival_at_columns("years"),
            survival_at,
        )
        columns, rows = at_risk_table([(ENDPOINT, comparison.at_risk)], GROUP_LABELS, "y")
        b.table("at_risk", "Numbers at risk", columns, rows)

    def survival(self, b: SectionBuilder) -> None:
        self._survival(b, b.analysed(self.frame, [TIME, EVENT, TREATMENT]), "Unmatched")

    def survival_matched(self, b: SectionBuilder) -> None:
        b.analysed(self.frame, [TREATMENT, *MATCHING_COVARIATES])
        matched = self.matching.matched
        self._survival(b, b.analysed(matched, [TIME, EVENT, TREATMENT]), "Matched")

    def _hazard_ratio(self, frame: pd.DataFrame) -> dict:
        row = cox(frame, TIME, EVENT, [TREATMENT], ties=self.options["ties"]).table.iloc[0]
        return {"hr": row["hr"], "lower": row["lower"], "upper": row["upper"], "p": row["p"]}

    def subgroups(self, b: SectionBuilder) -> None:
        data = b.analysed(self.frame, [TIME, EVENT, TREATMENT])
        rows, panels = [], []
        for variable, value, label in SUBGROUPS:
            part = data[data[variable] == value]
            with b.attempt(label):
                comparison = compare_survival(part, TIME, EVENT, TREATMENT, risk_step=RISK_STEP_YEARS)
                summary = comparison.km.summary.set_index("group")
                rows.append(
                    {
                        "label": label,
                        "variable": variable,
                        "value": value,
                        "n": len(part),
                        "events_control": int(summary["events"].get("intrathecal=0", 0)),
                        "events_intrathecal": int(summary["events"].get("intrathecal=1", 0)),
                        **self._hazard_ratio(part),
                        "logrank_p": comparison.logrank.p,
                    }
                )
                panels.append(
                    KmPanel(
                        title=f"{label} (n = {len(part)})",
                        curve=comparison.km.curve,
                        groups=list(GROUP_LABELS.items()),
                        xlabel=XLABEL,
                        ylabel=YLABEL,
                        note=f"Log-rank p = {p_text(comparison.logrank.p)}",
                        confidence=False,
                    )
                )
        if not rows:
            raise AnalysisError("no subgroup could be compared")
        b.table(
            "summary",
            "Intrathecal vs standard care within subgroups",
            [
                Column("label", "Subgroup", "text"),
                Column("variable", "Variable", "text", shown=False),
                Column("value", "Value", "count", shown=False),
                Column("n", "n", "count"),
                Column("events_control", "Events, standard care", "count"),
                Column("events_intrathecal", "Events, intrathecal", "count"),
                Column("hr", "HR", digits=3),
                Column("lower", "95% CI", "lower", digits=3),
                Column("upper", "95% CI upper", "upper", digits=3),
                Column("p", "Cox p", "p"),
                Column("logrank_p", "Log-rank p", "p"),
            ],
            rows,
            [f"Cox hazard ratio of intrathecal therapy ({self.options['ties']} ties) in each subgroup."],
        )
        b.figure(
            "forest",
            "Hazard ratios by subgroup",
            forest_plot(
                b.key_for("forest"), effects(rows, "hr"), xlabel="Hazard ratio, intrathecal vs standard care"
            ),
        )
        b.figure(
            "km", "Kaplan–Meier curves by subgroup", km_plot(b.key_for("km"), panels, columns=2), _KM_CAPTION
        )

    def sensitivity(self, b: SectionBuilder) -> None:
        data = b.analysed(self.frame, [TIME, EVENT, TREATMENT, "headache_only"])
        b.note(
            f"{int((data['headache_only'] == 1).sum())} patients whose only NPSLE syndrome is headache are left out."
        )
        data = data[data["headache_only"] == 0]
        without = self.frame[self.frame["headache_only"] == 0]
        rows, panels = [], []
        comparison = compare_survival(data, TIME, EVENT, TREATMENT, risk_step=RISK_STEP_YEARS)
        rows.append(self._sensitivity_row("Unmatched", data, comparison))
        panels.append(self._sensitivity_panel("Unmatched, without headache only", comparison))
        with b.attempt("Re-matched cohort"):
            matched = match_nearest(
                without, TREATMENT, MATCHING_COVARIATES, caliper=CALIPER_SD, id_col="patient_id"
            ).matched
            comparison = compare_survival(matched, TIME, EVENT, TREATMENT, risk_step=RISK_STEP_YEARS)
            rows.append(self._sensitivity_row("Re-matched", matched, comparison))
            panels.append(self._sensitivity_panel("Re-matched, without headache only", comparison))
        b.table(
            "summary",
            "Intrathecal vs standard care without headache-only patients",
            [
                Column("label", "Cohort", "text"),
                Column("n", "n", "count"),
                Column("events", "Events", "count"),
                Column("hr", "HR", digits=3),
                Column("lower", "95% CI", "lower", digits=3),
                Column("upper", "95% CI upper", "upper", digits=3),
                Column("p", "Cox p", "p"),
                Column("logrank_p", "Log-rank p", "p"),
            ],
            rows,
            ["The re-matched cohort repeats the propensity matching after the exclusion."],
        )
        b.figure(
            "km",
            "Kaplan–Meier without headache-only patients",
            km_plot(b.key_for("km"), panels),
            _KM_CAPTION,
        )

    def _sensitivity_row(self, label: str, frame: pd.DataFrame, comparison: SurvivalComparison) -> dict:
        return {
            "label": label,
            "n": len(frame),
            "events": int(frame[EVENT].sum()),
            **self._hazard_ratio(frame),
            "logrank_p": comparison.logrank.p,
        }

    def _sensitivity_panel(self, title: str, comparison: SurvivalComparison) -> KmPanel:
        return KmPanel(
            title=title,
            curve=comparison.km.curve,
            groups=list(GROUP_LABELS.items()),
            xlabel=XLABEL,
            ylabel=YLABEL,
            at_risk=comparison.at_risk,
            note=f"Log-rank p = {p_text(comparison.logrank.p)}",
        )

    # --- Cox models and rates --------------------------------------------------------------------

    def cox_univariable(self, b: SectionBuilder) -> None:
        ties = self.options["ties"]
        data = b.analysed(self.frame, [TIME, EVENT])
        rows, notes = univariable_cox_rows(data, TIME, EVENT, COX_UNIVARIABLE, self.labels, ties=ties)
        b.table(
            "unmatched",
            "Unmatched cohort",
            COX_COLUMNS,
            rows,
            [_ties_note(ties), *notes, *proportional_hazards_note(rows)],
        )
        with b.attempt("Matched cohort"):
            rows, notes = univariable_cox_rows(
                self.matching.matched, TIME, EVENT, COX_UNIVARIABLE, self.labels, ties=ties
            )
            b.table(
                "matched", "Matched cohort", COX_COLUMNS, rows, [*notes, *proportional_hazards_note(rows)]
            )

    def cox_multivariable(self, b: SectionBuilder) -> None:
        ties = self.options["ties"]
        data = b.analysed(self.frame, [TIME, EVENT, *COX_MULTIVARIABLE])
        rows = multivariable_cox_rows(data, TIME, EVENT, COX_MULTIVARIABLE, self.labels, ties=ties)
        b.table(
            "model",
            "Multivariable Cox model (unmatched cohort)",
            COX_COLUMNS,
            rows,
            [_ties_note(ties), *proportional_hazards_note(rows)],
        )
        b.figure(
            "forest",
            "Adjusted hazard ratios",
            forest_plot(b.key_for("forest"), effects(rows, "hr"), xlabel="Hazard ratio (95% CI, log scale)"),
        )

    def person_years(self, b: SectionBuilder) -> None:
        data = b.analysed(self.frame, [TIME, EVENT, TREATMENT])
        rows = person_years_rows(
            data, TREATMENT, TIME, EVENT, GROUP_LABELS, cohort="Unmatched", also_count=("relapse", "death")
        )
        with b.attempt("Matched cohort"):
            rows += person_years_rows(
                self.matching.matched,
                TREATMENT,
                TIME,
                EVENT,
                GROUP_LABELS,
                cohort="Matched",
                also_count=("relapse", "death"),
            )
        b.table(
            "rates",
            "Person-years of follow-up and events",
            [
                Column("cohort", "Cohort", "text"),
                Column("label", "Group", "text"),
                Column("n", "Patients", "count"),
                Column("person_years", "Person-years", digits=1),
                Column("events", "Death or relapse", "count"),
                Column("relapse", "Relapses", "count"),
                Column("death", "Deaths", "count"),
                Column("rate_per_100py", "Per 100 person-years", digits=2),
            ],
            rows,
            [
                "Events count each patient's first death or relapse; relapses and deaths count patients with any."
            ],
        )

    def safety(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, [TREATMENT])
        described = describe_groups(frame, TREATMENT, self.labels, categorical=["low_icp", "ae_grade3plus"])
        b.table(
            "complications",
            "Low intracranial pressure and severe adverse events",
            table_one_columns(described, GROUP_LABELS, TREATMENT),
            described.table,
            described.notes,
        )
        events = records.adverse_events(self.cohort.patients, frame["patient_id"])
        columns, rows = adverse_event_table(events, frame, by=TREATMENT, group_labels=GROUP_LABELS)
        b.table(
            "adverse_events",
            "Adverse events by CTCAE term and grade",
            columns,
            rows,
            ["Grade columns count events."],
        )


_KM_CAPTION = "Step curves with 95% confidence bands; ticks mark censored patients. Numbers at risk below."


def _ties_note(ties: str) -> str:
    return (
        f"Cox models with {dict(TIES_CHOICES)[ties]} handling of tied times; PH test: cox.zph (KM transform)."
    )


def _odds_columns() -> list[Column]:
    return [
        Column("label", "Term", "text"),
        Column("term", "Variable", "text", shown=False),
        Column("or", "OR", digits=3),
        Column("lower", "95% CI", "lower", digits=3),
        Column("upper", "95% CI upper", "upper", digits=3),
        Column("p", "p", "p"),
        Column("coef", "log OR", shown=False, digits=4),
        Column("se", "SE", shown=False, digits=4),
        Column("z", "z", shown=False, digits=3),
    ]
