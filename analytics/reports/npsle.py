"""NPSLE report: intrathecal methotrexate + dexamethasone versus standard care, as in the seed paper.

Covariates and models follow the paper and R's reference analysis (../shared/reference/
cohort_1.r.json): 1:1 nearest-neighbour propensity matching on sex, age, SLEDAI-2K, headache,
psychosis and methylprednisolone pulse (caliper 0.2 SD); the discharge outcome by multinomial
regression against exacerbation on the covariates R used; Cox models of death or relapse.
"""

from __future__ import annotations

from functools import cached_property
from typing import cast

import pandas as pd

from analytics.compare import paired_change
from analytics.errors import AnalysisError
from analytics.matching import MatchResult, match_nearest
from analytics.plots import (
    FlowBox,
    KmPanel,
    PairedGroup,
    bar_plot,
    flow_diagram,
    forest_plot,
    km_plot,
    love_plot,
    paired_box_plot,
)
from analytics.regression import multinomial_logistic
from analytics.reports import records
from analytics.reports.base import TIES_CHOICES, Column, Option, SectionBuilder, SectionPlan, StudyReport
from analytics.reports.common import (
    COX_COLUMNS,
    LOGRANK_COLUMNS,
    Characteristic,
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
    side_by_side,
    survival_at_columns,
    table_one_columns,
    univariable_cox_rows,
)
from analytics.reports.display import p_text
from analytics.survival import Ties, cox, kaplan_meier
from registry.choices import DeathCause, DischargeOutcomeCode, ExclusionReason, NpsleSyndrome, ScreeningStep

TREATMENT = "intrathecal"
GROUP_LABELS = {"intrathecal=0": "Standard care", "intrathecal=1": "Intrathecal MTX + DEX"}
TIME, EVENT = "time_years", "event"
ENDPOINT = "Death or relapse"

MATCHING_COVARIATES = ("sex_male", "age", "sledai", "headache", "psychosis", "mpp")
CALIPER_SD = 0.2
#: The paper's Table 1, row by row, under its headings.
_SYSTEMS, _LABS, _CSF = "System involvement of SLE", "Laboratory tests", "CSF at the first lumbar puncture"
TABLE_ONE = (
    Characteristic("age", continuous=True),
    Characteristic("sex_male"),
    Characteristic("sle_duration_months", continuous=True),
    *(
        Characteristic(organ, group=_SYSTEMS)
        for organ in (
            "fever",
            "mucocutaneous",
            "musculoskeletal",
            "pulmonary",
            "cardiovascular",
            "haematological",
            "lupus_nephritis",
            "serositis",
            "antiphospholipid_syndrome",
        )
    ),
    Characteristic("anti_dsdna", group=_LABS),
    Characteristic("anti_rrnp", group=_LABS),
    Characteristic("c3_g_per_l", continuous=True, group=_LABS),
    Characteristic("c4_g_per_l", continuous=True, group=_LABS),
    Characteristic("lupus_anticoagulant_ratio", continuous=True, group=_LABS),
    Characteristic("coombs", group=_LABS),
    Characteristic("anti_b2gp1", group=_LABS),
    Characteristic("anticardiolipin", group=_LABS),
    Characteristic("sledai", continuous=True),
    Characteristic("onset_with_npsle"),
    Characteristic("icp_baseline", continuous=True, group=_CSF),
    Characteristic("inc_icp", group=_CSF),
    Characteristic("wbc_baseline", continuous=True, group=_CSF),
    Characteristic("protein_baseline", continuous=True, group=_CSF),
    Characteristic("inc_protein", group=_CSF),
    Characteristic("cytology_abnormal", group=_CSF),
    Characteristic("mpp"),
)
BASELINE_CONTINUOUS = tuple(row.variable for row in TABLE_ONE if row.continuous)
BASELINE_CATEGORICAL = tuple(row.variable for row in TABLE_ONE if not row.continuous)
SYNDROMES = tuple(s.value for s in NpsleSyndrome)
#: Table 2: the one immunosuppressant regimen of each patient during the index admission.
REGIMENS = (
    ("cyc", "Cyclophosphamide"),
    ("mmf", "Mycophenolate mofetil"),
    ("cni", "Calcineurin inhibitor"),
    ("other_is", "Other immunosuppressant"),
    ("rituximab", "Rituximab"),
    ("combination", "Combination of immunosuppressants"),
    ("none", "None"),
)
IMMUNOSUPPRESSANTS = ("mpp", "oral_gc", "cyc", "mmf", "cni", "rituximab", "ivig", "plasma_exchange")
#: The covariates of R's nnet::multinom in the reference analysis.
OUTCOME_COVARIATES = ("intrathecal", "seizure", "psychosis", "sledai", "inc_icp", "inc_protein", "mpp")
OUTCOME_REFERENCE = DischargeOutcomeCode.EXACERBATION.value
#: Table 3, row by row: the univariable Cox models of the paper.
COX_UNIVARIABLE = (
    "intrathecal",
    "sex_male",
    "mucocutaneous",
    "musculoskeletal",
    "pulmonary",
    "cardiovascular",
    "haematological",
    "lupus_nephritis",
    "serositis",
    "sledai",
    "headache",
    "seizure",
    "acute_confusional_state",
    "cerebrovascular",
    "mood_disorder",
    "cognitive_dysfunction",
    "aseptic_meningitis",
    "anxiety",
    "psychosis",
    "myelopathy",
    "demyelinating",
    "aidp_gbs",
    "mononeuropathy",
    "movement_disorder",
    "cranial_neuropathy",
    "plexopathy",
    "polyneuropathy",
    "mpp",
    "cyc",
    "inc_icp",
    "inc_protein",
    "cytology_abnormal",
)
#: The sensitivity analysis re-matches without headache (the paper's Supp. Fig. 4).
SENSITIVITY_COVARIATES = tuple(c for c in MATCHING_COVARIATES if c != "headache")
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
RISK_STEP_YEARS = 1.0
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
        """The paper's tables and figures in the order its results report them (README, "The NPSLE
        report and the paper"): the unmatched cohort (Table 1, Supp. Table 1, Table 2), then the
        matching (Supp. Fig. 1), the injections, the outcome at discharge, the CSF, follow-up and
        events, survival, Cox models, subgroups and safety; the registry's own dose section last."""
        return [
            ("flow", "Fig. 1: screening and inclusion", self.flow),
            ("baseline", "Table 1: characteristics before and after matching", self.baseline),
            ("syndromes", "Supp. Table 1: NPSLE syndromes", self.syndromes),
            ("treatment", "Table 2: treatment during the index admission", self.treatment),
            ("matching", "Propensity-score matching (Supp. Fig. 1)", self.matched_baseline),
            ("injections", "Supp. Fig. 2: intrathecal injections per patient", self.injections),
            ("outcome", "Fig. 2: outcome at discharge", self.outcome),
            ("csf_protein", "Supp. Fig. 3: CSF protein, first to last lumbar puncture", self.csf_protein),
            (
                "csf_pressure",
                "Supp. Fig. 3: CSF opening pressure, first to last lumbar puncture",
                self.csf_pressure,
            ),
            ("person_years", "Follow-up, events and causes of death", self.person_years),
            ("survival", "Fig. 3a: death or relapse, unmatched cohort", self.survival),
            ("survival_matched", "Fig. 3b: death or relapse, matched cohort", self.survival_matched),
            (
                "sensitivity",
                "Supp. Fig. 4: sensitivity analysis without headache-only patients",
                self.sensitivity,
            ),
            (
                "cox_univariable",
                "Table 3: univariable Cox models, unmatched and matched",
                self.cox_univariable,
            ),
            ("cox_multivariable", "Multivariable Cox model", self.cox_multivariable),
            ("subgroups", "Fig. 4 and Supp. Fig. 5: subgroups of the matched cohort", self.subgroups),
            ("safety", "Safety", self.safety),
            ("doses", "Intrathecal schedule and dose intensity", self.doses),
        ]

    @cached_property
    def units(self) -> dict[str, str]:
        return {v["name"]: v["unit"] for v in self.cohort.dictionary}

    # --- Fig. 1 --------------------------------------------------------------------------------------

    def flow(self, b: SectionBuilder) -> None:
        """Screening counts from the study's screening log, then the registry's own patients."""
        b.analysed(self.frame, [TREATMENT])
        log = records.screening_log(self.cohort.study, self.cohort.patients)
        searched = int(log.loc[log["step"] == ScreeningStep.SEARCHED, "patients"].sum())
        identified = int(log.loc[log["step"] == ScreeningStep.IDENTIFIED, "patients"].sum())
        excluded = log[log["step"] == ScreeningStep.EXCLUDED].groupby("exclusion_reason")["patients"].sum()
        reasons = dict(ExclusionReason.choices)
        included, analysed = self.cohort.screened, len(self.frame)
        treated = int((self.frame[TREATMENT] == 1).sum())
        rows = [
            {"step": "Admissions searched", "code": ScreeningStep.SEARCHED.value, "n": searched},
            {"step": "Possible cases identified", "code": ScreeningStep.IDENTIFIED.value, "n": identified},
            *(
                {"step": f"Excluded: {reasons.get(code, code)}", "code": code, "n": int(n)}
                for code, n in excluded.items()
            ),
            {"step": "Included (patients in the registry)", "code": "included", "n": included},
        ]
        if analysed != included:
            rows.append({"step": "In this report's cohort (filter)", "code": "filtered", "n": analysed})
        rows += [
            {"step": "Intrathecal MTX + DEX", "code": "intrathecal", "n": treated},
            {"step": "Standard care", "code": "control", "n": analysed - treated},
        ]
        notes = [
            "Screening counts from the study's screening log at the sites of this report; the rest from the registry."
        ]
        with b.attempt("Matching"):
            rows.append(
                {"step": "Propensity-matched pairs", "code": "pairs", "n": self.matching.n_treated_matched}
            )
        if identified and identified - int(excluded.sum()) != included:
            notes.append(
                f"The log leaves {identified - int(excluded.sum())} included; the registry holds {included}."
            )
        b.table(
            "steps",
            "Screening and inclusion",
            [
                Column("step", "Step", "text"),
                Column("code", "Code", "text", shown=False),
                Column("n", "Patients", "count"),
            ],
            rows,
            notes,
        )
        side = "\n".join(f"{reasons.get(code, code)} (n = {int(n)})" for code, n in excluded.items())
        boxes = [
            FlowBox(f"Admissions searched\n(n = {searched})"),
            FlowBox(f"Possible cases identified\n(n = {identified})"),
            FlowBox(
                f"Included\n(n = {analysed})",
                side=f"Excluded (n = {int(excluded.sum())})\n{side}",
                split=(
                    f"Intrathecal MTX + DEX\n(n = {treated})",
                    f"Standard care\n(n = {analysed - treated})",
                ),
            ),
        ]
        b.figure(
            "diagram",
            "Flow of patients",
            flow_diagram(b.key_for("diagram"), boxes),
            "Counts as in the table above; the matched pairs are in the table and the matching section.",
        )

    def doses(self, b: SectionBuilder) -> None:
        dose_schedule(b, self.frame, self.cohort.patients, group_labels=self.group_labels, account=True)

    @cached_property
    def matching(self) -> MatchResult:
        return match_nearest(
            self.frame, TREATMENT, MATCHING_COVARIATES, caliper=CALIPER_SD, id_col="patient_id"
        )

    # --- baseline and matching ---------------------------------------------------------------

    def _describe(self, frame: pd.DataFrame, rows=TABLE_ONE):
        return describe_groups(
            frame,
            TREATMENT,
            self.labels,
            continuous=[r.variable for r in rows if r.continuous],
            categorical=[r.variable for r in rows if not r.continuous],
            digits=2,
        )

    def baseline(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, [TREATMENT])
        parts = [("unmatched", "", self._describe(frame))]
        notes = [_TABLE_ONE_NOTE]
        with b.attempt("Matched cohort"):
            parts.append(("matched", ", matched", self._describe(self.matching.matched)))
            notes.append(_MATCHING_NOTE)
        columns, rows = side_by_side(parts, TABLE_ONE, self.labels, self.units, GROUP_LABELS, TREATMENT)
        for _, _, described in parts:
            notes += described.notes
        b.table("table_one", "Table 1: before and after propensity-score matching", columns, rows, notes)

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

    def syndromes(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, [TREATMENT])
        rows = [Characteristic(name) for name in (*SYNDROMES, "multiple_syndromes", "headache_only")]
        described = self._describe(frame, rows)
        columns, table = side_by_side(
            [("unmatched", "", described)], rows, self.labels, self.units, GROUP_LABELS, TREATMENT
        )
        b.table(
            "syndromes",
            "ACR-1999 NPSLE syndromes (a patient may have several)",
            columns,
            table,
            [_TESTS_NOTE, *described.notes],
        )

    def treatment(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, [TREATMENT])
        regimen = frame.assign(
            **{f"regimen_{code}": (frame["immunosuppressant"] == code).astype(int) for code, _ in REGIMENS}
        )
        labels = self.labels | {f"regimen_{code}": label for code, label in REGIMENS}
        rows = [
            Characteristic("mpp"),
            *(
                Characteristic(f"regimen_{code}", group="Immunosuppressant during the admission")
                for code, _ in REGIMENS
            ),
            Characteristic("hospital_days", continuous=True),
            Characteristic("time_years", continuous=True),
        ]
        described = describe_groups(
            regimen,
            TREATMENT,
            labels,
            continuous=[r.variable for r in rows if r.continuous],
            categorical=[r.variable for r in rows if not r.continuous],
            digits=2,
        )
        units = self.units | {"time_years": "years"}
        columns, table = side_by_side(
            [("unmatched", "", described)],
            rows,
            labels | {"time_years": "Follow-up"},
            units,
            GROUP_LABELS,
            TREATMENT,
        )
        b.table(
            "table_two",
            "Table 2: treatment, hospital stay and follow-up",
            columns,
            table,
            [
                "Each patient counts once among the immunosuppressants: the one given, or a combination of two or more. "
                "Follow-up: index admission to death, relapse or the last contact.",
                _TESTS_NOTE,
                *described.notes,
            ],
        )

    def injections(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, [TREATMENT])  # an empty cohort says so, as every section does
        treated = frame[frame["it_dose_count"] > 0]
        b.section.analysed, b.section.excluded = len(treated), len(self.frame) - len(treated)
        if treated.empty:
            raise AnalysisError("no intrathecal injection is recorded for this cohort")
        counts = treated["it_dose_count"].astype(int).value_counts().sort_index()
        rows = [
            {"injections": int(k), "patients": int(n), "percent": 100 * n / len(treated)}
            for k, n in counts.items()
        ]
        total = int(treated["it_dose_count"].sum())
        dex_only = int(treated["dex_only_injections"].sum())
        b.table(
            "distribution",
            f"Intrathecal injections per treated patient (n = {len(treated)})",
            [
                Column("injections", "Injections", "count"),
                Column("patients", "Patients, n", "count"),
                Column("percent", "Patients, %", "number", digits=1),
            ],
            rows,
            [
                f"{total} injections in all; {dex_only} ({100 * dex_only / total:.1f}%) of dexamethasone alone, "
                f"in {int(treated['dex_only'].sum())} patients ({100 * treated['dex_only'].mean():.1f}%) who never had methotrexate."
            ],
        )
        b.figure(
            "bars",
            "Injections per patient",
            bar_plot(
                b.key_for("bars"),
                [str(r["injections"]) for r in rows],
                [r["patients"] for r in rows],
                xlabel="Intrathecal injections",
                ylabel="Patients",
            ),
            "Number of treated patients by the number of intrathecal injections they received.",
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
        assert comparison.logrank is not None  # compared by treatment, so tested
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
        row = cox(frame, TIME, EVENT, [TREATMENT], ties=cast(Ties, self.options["ties"])).table.iloc[0]
        return {"hr": row["hr"], "lower": row["lower"], "upper": row["upper"], "p": row["p"]}

    def _subgroup_rows(self, b: SectionBuilder, data: pd.DataFrame, panels: list | None) -> list[dict]:
        rows = []
        for variable, value, label in SUBGROUPS:
            part = data[data[variable] == value]
            with b.attempt(label):
                comparison = compare_survival(part, TIME, EVENT, TREATMENT, risk_step=RISK_STEP_YEARS)
                assert comparison.logrank is not None  # compared by treatment, so tested
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
                if panels is not None:
                    panels.append(
                        KmPanel(
                            title=f"{label} (n = {len(part)})",
                            curve=comparison.km.curve,
                            groups=list(GROUP_LABELS.items()),
                            xlabel=XLABEL,
                            ylabel=YLABEL,
                            at_risk=comparison.at_risk,
                            note=f"Log-rank p = {p_text(comparison.logrank.p)}",
                        )
                    )
        return rows

    def subgroups(self, b: SectionBuilder) -> None:
        b.analysed(self.frame, [TREATMENT, *MATCHING_COVARIATES])
        data = b.analysed(self.matching.matched, [TIME, EVENT, TREATMENT])
        panels: list[KmPanel] = []
        rows = self._subgroup_rows(b, data, panels)
        if not rows:
            raise AnalysisError("no subgroup could be compared")
        notes = [_MATCHING_NOTE, _SURVIVAL_NOTE, _cox_note(self.options["ties"])]
        b.table(
            "summary",
            "Intrathecal vs standard care within subgroups of the matched cohort",
            _SUBGROUP_COLUMNS,
            rows,
            notes,
        )
        b.figure(
            "forest",
            "Hazard ratios by subgroup (matched cohort)",
            forest_plot(
                b.key_for("forest"), effects(rows, "hr"), xlabel="Hazard ratio, intrathecal vs standard care"
            ),
        )
        b.figure(
            "km",
            "Kaplan–Meier curves by subgroup (matched cohort)",
            km_plot(b.key_for("km"), panels, columns=2),
            _KM_CAPTION,
        )
        with b.attempt("Unmatched sensitivity table"):
            unmatched = self._subgroup_rows(b, self.frame.dropna(subset=[TIME, EVENT, TREATMENT]), None)
            b.table(
                "unmatched",
                "Sensitivity: the same subgroups in the unmatched cohort",
                _SUBGROUP_COLUMNS,
                unmatched,
                [
                    "Not the paper's analysis (it compares subgroups in the matched cohort); shown for comparison."
                ],
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
                without, TREATMENT, SENSITIVITY_COVARIATES, caliper=CALIPER_SD, id_col="patient_id"
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
            [
                "The re-matched cohort repeats the propensity matching after the exclusion, without headache "
                f"among the covariates ({', '.join(self.labels.get(c, c) for c in SENSITIVITY_COVARIATES)}; "
                f"caliper {CALIPER_SD} SD of the score).",
                _SURVIVAL_NOTE,
                _cox_note(self.options["ties"]),
            ],
        )
        b.figure(
            "km",
            "Kaplan–Meier without headache-only patients",
            km_plot(b.key_for("km"), panels),
            _KM_CAPTION,
        )

    def _sensitivity_row(self, label: str, frame: pd.DataFrame, comparison: SurvivalComparison) -> dict:
        assert comparison.logrank is not None  # compared by treatment, so tested
        return {
            "label": label,
            "n": len(frame),
            "events": int(frame[EVENT].sum()),
            **self._hazard_ratio(frame),
            "logrank_p": comparison.logrank.p,
        }

    def _sensitivity_panel(self, title: str, comparison: SurvivalComparison) -> KmPanel:
        assert comparison.logrank is not None  # compared by treatment, so tested
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
        ties = cast(Ties, self.options["ties"])  # one of its choices (resolve_options)
        data = b.analysed(self.frame, [TIME, EVENT])
        parts = [("unmatched", "", data)]
        with b.attempt("Matched cohort"):
            parts.append(("matched", ", matched", self.matching.matched))
        merged: dict[str, dict] = {}
        notes = [_cox_note(ties)]
        columns = [Column("label", "Variable", "text"), Column("term", "Term", "text", shown=False)]
        for key, caption, frame in parts:
            rows, part_notes = univariable_cox_rows(
                frame, TIME, EVENT, COX_UNIVARIABLE, self.labels, ties=ties
            )
            notes += [f"{caption.strip(', ').capitalize() or 'Unmatched'}: {note}" for note in part_notes]
            for row in rows:
                entry = merged.setdefault(row["term"], {"term": row["term"], "label": row["label"]})
                entry |= {
                    f"{key}_{name}": row.get(name)
                    for name in ("n", "events", "hr", "lower", "upper", "p", "ph_p")
                }
            columns += [
                Column(f"{key}_hr", f"HR{caption}", digits=2),
                Column(f"{key}_lower", "95% CI", "lower", digits=2),
                Column(f"{key}_upper", "95% CI upper", "upper", digits=2),
                Column(f"{key}_p", f"p{caption}", "p"),
                Column(f"{key}_n", f"n{caption}", "count", shown=False),
                Column(f"{key}_events", f"Events{caption}", "count", shown=False),
                Column(f"{key}_ph_p", f"PH test p{caption}", "p", shown=False),
            ]
        order = {term: i for i, term in enumerate(COX_UNIVARIABLE)}
        rows = sorted(merged.values(), key=lambda row: order.get(row["term"], len(order)))
        flagged = [row["label"] for row in rows if (row.get("unmatched_ph_p") or 1) < 0.05]
        if flagged:
            notes.append(f"Proportional-hazards test (cox.zph) p < 0.05, unmatched: {', '.join(flagged)}.")
        b.table("table_three", "Table 3: univariable Cox models of death or relapse", columns, rows, notes)

    def cox_multivariable(self, b: SectionBuilder) -> None:
        ties = cast(Ties, self.options["ties"])  # one of its choices (resolve_options)
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
                "Events count each patient's first death or relapse; relapses and deaths count patients with any. "
                "Rates are crude: events / person-years × 100."
            ],
        )
        reverse = data.assign(censored=1 - data[EVENT])
        follow = kaplan_meier(reverse, TIME, "censored", by=TREATMENT)
        rows = [
            row | {"label": GROUP_LABELS.get(row["group"], row["group"])}
            for row in kaplan_meier(reverse, TIME, "censored").summary.assign(group="all").to_dict("records")
        ]
        rows = [
            row | {"label": GROUP_LABELS.get(row["group"], row["group"])}
            for row in follow.summary.to_dict("records")
        ] + [row | {"label": "All"} for row in rows]
        b.table(
            "follow_up",
            "Median follow-up (reverse Kaplan–Meier)",
            [
                Column("label", "Group", "text"),
                Column("group", "Stratum", "text", shown=False),
                Column("n", "Patients", "count"),
                Column("median", "Median follow-up, years", digits=2, missing="not reached"),
                Column("median_lower", "95% CI", "lower", digits=2, missing="NR"),
                Column("median_upper", "95% CI upper", "upper", digits=2, missing="NR"),
            ],
            rows,
            [
                "Reverse Kaplan–Meier: the last contact is the event and a death or relapse censors; "
                "95% CI of the median as R's survfit (log transform)."
            ],
        )
        deaths = data[data["death"] == 1]
        causes = deaths["death_cause"].fillna("unknown").value_counts()
        labels = dict(DeathCause.choices) | {"unknown": "Not recorded"}
        b.table(
            "causes_of_death",
            f"Causes of death (n = {len(deaths)})",
            [
                Column("label", "Cause", "text"),
                Column("cause", "Code", "text", shown=False),
                Column("n", "Deaths, n", "count"),
                Column("percent", "Deaths, %", "number", digits=1),
            ],
            [
                {
                    "label": labels.get(code, code),
                    "cause": code,
                    "n": int(n),
                    "percent": 100 * n / len(deaths),
                }
                for code, n in causes.items()
            ],
        )

    def safety(self, b: SectionBuilder) -> None:
        frame = b.analysed(self.frame, [TREATMENT])
        characteristics = [Characteristic(name) for name in ("low_icp", "post_lp_headache", "ae_grade3plus")]
        described = self._describe(frame, characteristics)
        columns, table = side_by_side(
            [("unmatched", "", described)], characteristics, self.labels, self.units, GROUP_LABELS, TREATMENT
        )
        b.table(
            "complications",
            "Low intracranial pressure and headache after lumbar puncture",
            columns,
            table,
            [
                "Low ICP: an opening pressure below 80 mmH2O or a headache from intracranial hypotension, "
                "recorded at any lumbar puncture; headache after lumbar puncture as recorded.",
                _TESTS_NOTE,
                *described.notes,
            ],
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


_KM_CAPTION = (
    "Step curves with 95% confidence bands (log transform, as R's survfit); ticks mark censored patients. "
    "Numbers at risk below."
)
_TESTS_NOTE = (
    "Median [IQR] (R's type-7 quartiles) with the Mann–Whitney test; n (%) with the chi-square test "
    "(Yates-corrected on 2×2 tables), or Fisher's exact test where an expected count is below 5. "
    "SMD: standardized mean difference, intrathecal minus standard care, over the pooled SD. "
    "Percentages of the patients with the value recorded."
)
_TABLE_ONE_NOTE = _TESTS_NOTE + " Raised opening pressure: > 180 mmH2O; raised CSF protein: > 0.5 g/L."
_MATCHING_NOTE = (
    f"Matched cohort: 1:1 nearest-neighbour propensity matching without replacement (logistic model of sex, "
    f"age, SLEDAI-2K, headache, psychosis and methylprednisolone pulse), caliper {CALIPER_SD} SD of the "
    "score, MatchIt's rule."
)
_SURVIVAL_NOTE = "Kaplan–Meier estimates; groups compared by the log-rank test."
_SUBGROUP_COLUMNS = [
    Column("label", "Subgroup", "text"),
    Column("variable", "Variable", "text", shown=False),
    Column("value", "Value", "count", shown=False),
    Column("n", "Patients", "count"),
    Column("events_control", "Events, standard care", "count"),
    Column("events_intrathecal", "Events, intrathecal", "count"),
    Column("hr", "HR", digits=2),
    Column("lower", "95% CI", "lower", digits=2),
    Column("upper", "95% CI upper", "upper", digits=2),
    Column("p", "Cox p", "p"),
    Column("logrank_p", "Log-rank p", "p"),
]


def _cox_note(ties: str) -> str:
    return (
        f"Cox proportional-hazards models ({dict(TIES_CHOICES)[ties]} ties); hazard ratios with Wald 95% CIs "
        "and Wald p-values."
    )


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
