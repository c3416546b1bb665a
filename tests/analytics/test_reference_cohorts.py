"""Every number R computed for the two synthetic NPSLE cohorts, reproduced by analytics.

Tolerances: 1e-4 relative on estimates, confidence limits, quartiles, SMDs, medians and test
statistics; 1e-3 relative on p-values; counts, times and matched pairs exactly. Where R gave NA
the result must be missing.

What R was run on, read off the JSON:
* propensity model ``ps``: intrathecal ~ the six covariates named in it; ``match_ps`` and
  ``match_logit`` match on the score and on its logit; every "matched" result (``smd_after``,
  ``km_matched``, ``km_at_matched``, ``logrank_matched``, ``cox_uni_matched_*``) uses the
  ``match_ps`` set;
* group comparisons, Kaplan–Meier, log-rank and the Cox ``intrathecal`` terms are by
  ``intrathecal`` on ``time_years``/``event``; ``km_overall``/``km_curve`` are unstratified;
* ``multinom``: outcome ~ the terms listed, reference level ``exacerbation``;
* ``paired``: protein_baseline vs protein_after within each group, and the change between groups.
"""

from __future__ import annotations

import pandas as pd
import pytest

from analytics.compare import paired_change
from analytics.describe import table_one
from analytics.matching import MatchResult, match_nearest
from analytics.regression import INTERCEPT, logistic, multinomial_logistic
from analytics.survival import cox, kaplan_meier, logrank, univariable_cox
from tests.analytics.reference import P_VALUE_RTOL, Reference, assert_r_value

TREATMENT, TIME, EVENT = "intrathecal", "time_years", "event"
GROUPS = {"control": 0, "intrathecal": 1}

CHECKED = {
    "ps",
    "match_ps",
    "match_logit",
    "smd_before",
    "smd_after",
    "mannwhitney",
    "chisq",
    "fisher",
    "quartiles",
    "km",
    "km_overall",
    "km_curve",
    "km_at",
    "km_matched",
    "km_at_matched",
    "logrank",
    "logrank_matched",
    "cox_uni_efron",
    "cox_uni_breslow",
    "cox_multi_efron",
    "cox_multi_breslow",
    "cox_uni_matched_efron",
    "cox_uni_matched_breslow",
    "multinom",
    "paired",
}


def propensity_covariates(reference: Reference) -> list[str]:
    return [term for term in reference.r["ps"] if term != INTERCEPT]


@pytest.fixture(scope="module")
def matched(reference_cohort: Reference) -> MatchResult:
    return match_nearest(
        reference_cohort.data, TREATMENT, propensity_covariates(reference_cohort), scale="ps"
    )


def assert_cox_rows(table: pd.DataFrame, expected: list[dict]) -> None:
    assert table["term"].tolist() == [row["term"] for row in expected]
    for (_, row), reference in zip(table.iterrows(), expected, strict=True):
        for column in ("hr", "lower", "upper"):
            assert_r_value(row[column], reference[column])
        assert_r_value(row["p"], reference["p"], rtol=P_VALUE_RTOL)


def assert_km_summary(summary: pd.DataFrame, expected: dict) -> None:
    assert summary["events"].tolist() == expected["events"]
    for column, key in (("median", "median"), ("median_lower", "lower"), ("median_upper", "upper")):
        for actual, reference in zip(summary[column], expected[key], strict=True):
            assert_r_value(actual, reference)


def assert_survival_at(table: pd.DataFrame, expected: list[dict]) -> None:
    assert list(zip(table["group"], table["time"], strict=True)) == [
        (r["group"], r["time"]) for r in expected
    ]
    for (_, row), reference in zip(table.iterrows(), expected, strict=True):
        assert_r_value(row["survival"], reference["surv"])
        assert_r_value(row["lower"], reference["lower"])
        assert_r_value(row["upper"], reference["upper"])


def test_every_reference_result_is_checked(reference_cohort: Reference) -> None:
    assert set(reference_cohort.r) == CHECKED


def test_propensity_model_coefficients(reference_cohort: Reference) -> None:
    model = logistic(reference_cohort.data, TREATMENT, propensity_covariates(reference_cohort))
    coefficients = model.table.set_index("term")["coef"]
    assert coefficients.index.tolist() == list(reference_cohort.r["ps"])
    for term, expected in reference_cohort.r["ps"].items():
        assert_r_value(coefficients[term], expected)


@pytest.mark.parametrize(("scale", "key"), [("ps", "match_ps"), ("logit", "match_logit")])
def test_matched_pairs_are_r_pairs(reference_cohort: Reference, scale: str, key: str) -> None:
    result = match_nearest(
        reference_cohort.data, TREATMENT, propensity_covariates(reference_cohort), scale=scale
    )
    pairs = set(result.pairs[["treated", "control"]].itertuples(index=False, name=None))
    assert pairs == {(pair["treated"], pair["control"]) for pair in reference_cohort.r[key]}


def test_standardized_differences_before_and_after_matching(
    reference_cohort: Reference, matched: MatchResult
) -> None:
    balance = matched.balance.set_index("covariate")
    assert balance.index.tolist() == list(reference_cohort.r["smd_before"])
    for covariate in balance.index:
        assert_r_value(balance.loc[covariate, "smd_before"], reference_cohort.r["smd_before"][covariate])
        assert_r_value(balance.loc[covariate, "smd_after"], reference_cohort.r["smd_after"][covariate])


def test_mann_whitney_and_quartiles(reference_cohort: Reference) -> None:
    table = table_one(
        reference_cohort.data, TREATMENT, continuous=list(reference_cohort.r["mannwhitney"])
    ).table.set_index("variable")
    for variable, expected_p in reference_cohort.r["mannwhitney"].items():
        assert_r_value(table.loc[variable, "p"], expected_p, rtol=P_VALUE_RTOL)
    for variable, groups in reference_cohort.r["quartiles"].items():
        for group, (q1, median, q3) in groups.items():
            level = GROUPS[group]
            assert_r_value(table.loc[variable, f"q1_{level}"], q1)
            assert_r_value(table.loc[variable, f"median_{level}"], median)
            assert_r_value(table.loc[variable, f"q3_{level}"], q3)


@pytest.mark.parametrize(("key", "exact"), [("chisq", False), ("fisher", True)])
def test_categorical_tests(reference_cohort: Reference, key: str, exact: bool) -> None:
    variables = list(reference_cohort.r[key])
    described = table_one(
        reference_cohort.data, TREATMENT, **{"exact" if exact else "categorical": variables}
    )
    p_values = described.table.set_index("variable")["p"]
    for variable, expected in reference_cohort.r[key].items():
        assert_r_value(p_values[variable], expected, rtol=P_VALUE_RTOL)


def test_kaplan_meier_medians_by_group(reference_cohort: Reference) -> None:
    result = kaplan_meier(reference_cohort.data, TIME, EVENT, by=TREATMENT)
    assert result.summary["group"].tolist() == ["intrathecal=0", "intrathecal=1"]
    assert_km_summary(result.summary, reference_cohort.r["km"])


def test_kaplan_meier_overall_median(reference_cohort: Reference) -> None:
    summary = kaplan_meier(reference_cohort.data, TIME, EVENT).summary.iloc[0]
    assert_r_value(summary["median"], reference_cohort.r["km_overall"]["median"])
    assert_r_value(summary["median_lower"], reference_cohort.r["km_overall"]["0.95LCL"])
    assert_r_value(summary["median_upper"], reference_cohort.r["km_overall"]["0.95UCL"])


def test_kaplan_meier_overall_curve(reference_cohort: Reference) -> None:
    curve = kaplan_meier(reference_cohort.data, TIME, EVENT).curve
    expected = pd.DataFrame(reference_cohort.r["km_curve"])
    assert curve["time"].tolist() == expected["time"].tolist()
    assert curve["at_risk"].tolist() == expected["n_risk"].tolist()
    assert curve["events"].tolist() == expected["n_event"].tolist()
    for column, key in (("survival", "surv"), ("lower", "lower"), ("upper", "upper")):
        for actual, reference in zip(curve[column], expected[key], strict=True):
            assert_r_value(actual, reference)


def test_survival_at_one_three_five_years(reference_cohort: Reference) -> None:
    result = kaplan_meier(reference_cohort.data, TIME, EVENT, by=TREATMENT)
    assert_survival_at(result.survival_at([1, 3, 5]), reference_cohort.r["km_at"])


def test_logrank(reference_cohort: Reference) -> None:
    result = logrank(reference_cohort.data, TIME, EVENT, TREATMENT)
    assert result.df == 1
    assert_r_value(result.statistic, reference_cohort.r["logrank"]["chisq"])
    assert_r_value(result.p, reference_cohort.r["logrank"]["p"], rtol=P_VALUE_RTOL)


def test_survival_in_the_matched_cohort(reference_cohort: Reference, matched: MatchResult) -> None:
    km = kaplan_meier(matched.matched, TIME, EVENT, by=TREATMENT)
    assert_km_summary(km.summary, reference_cohort.r["km_matched"])
    assert_survival_at(km.survival_at([1, 3, 5]), reference_cohort.r["km_at_matched"])
    test = logrank(matched.matched, TIME, EVENT, TREATMENT)
    assert_r_value(test.statistic, reference_cohort.r["logrank_matched"]["chisq"])
    assert_r_value(test.p, reference_cohort.r["logrank_matched"]["p"], rtol=P_VALUE_RTOL)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_univariable_cox(reference_cohort: Reference, ties: str) -> None:
    expected = reference_cohort.r[f"cox_uni_{ties}"]
    result = univariable_cox(reference_cohort.data, TIME, EVENT, [row["term"] for row in expected], ties=ties)
    assert_cox_rows(result.table, expected)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_multivariable_cox(reference_cohort: Reference, ties: str) -> None:
    expected = reference_cohort.r[f"cox_multi_{ties}"]
    result = cox(reference_cohort.data, TIME, EVENT, [row["term"] for row in expected], ties=ties)
    assert_cox_rows(result.table, expected)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_cox_in_the_matched_cohort(reference_cohort: Reference, matched: MatchResult, ties: str) -> None:
    result = cox(matched.matched, TIME, EVENT, [TREATMENT], ties=ties)
    assert_cox_rows(result.table, reference_cohort.r[f"cox_uni_matched_{ties}"])


def test_multinomial_outcome(reference_cohort: Reference) -> None:
    expected = reference_cohort.r["multinom"]
    terms = list(dict.fromkeys(row["term"] for row in expected if row["term"] != INTERCEPT))
    result = multinomial_logistic(reference_cohort.data, "outcome", terms, reference="exacerbation")
    assert list(zip(result.table["level"], result.table["term"], strict=True)) == [
        (row["level"], row["term"]) for row in expected
    ]
    for (_, row), reference in zip(result.table.iterrows(), expected, strict=True):
        for column in ("or", "lower", "upper"):
            assert_r_value(row[column], reference[column])
        assert_r_value(row["p"], reference["p"], rtol=P_VALUE_RTOL)


def test_paired_protein_change(reference_cohort: Reference) -> None:
    result = paired_change(reference_cohort.data, "protein_baseline", "protein_after", by=TREATMENT)
    within = result.within.set_index("group")["p"]
    assert_r_value(
        within["intrathecal=1"], reference_cohort.r["paired"]["it_signed_rank_p"], rtol=P_VALUE_RTOL
    )
    assert_r_value(
        within["intrathecal=0"], reference_cohort.r["paired"]["control_signed_rank_p"], rtol=P_VALUE_RTOL
    )
    assert_r_value(result.between.p, reference_cohort.r["paired"]["change_rank_sum_p"], rtol=P_VALUE_RTOL)
    assert result.n_excluded == reference_cohort.data["protein_after"].isna().sum()
