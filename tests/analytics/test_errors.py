"""Bad input raises AnalysisError naming the problem; missing values are excluded and counted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.compare import fisher_exact_test, paired_change, rank_sum_test, signed_rank_test
from analytics.describe import table_one
from analytics.errors import AnalysisError
from analytics.matching import match_nearest
from analytics.regression import logistic, multinomial_logistic
from analytics.survival import cox, kaplan_meier, logrank, univariable_cox


@pytest.fixture
def patients() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 80
    frame = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "treated": np.tile([0, 1], n // 2),
            "age": rng.normal(40, 10, n).round(1),
            "male": rng.integers(0, 2, n),
            "months": rng.exponential(12, n).round(2) + 0.1,
            "died": rng.integers(0, 2, n),
            "outcome": rng.choice(["complete", "partial", "worse"], n),
        }
    )
    frame["protein_after"] = frame["age"] / 100 + rng.normal(0, 0.1, n)
    return frame


def test_missing_column_is_named(patients: pd.DataFrame) -> None:
    calls = [
        lambda: table_one(patients, "treated", continuous=["weight"]),
        lambda: kaplan_meier(patients, "months", "died", by="arm"),
        lambda: cox(patients, "months", "died", ["weight"]),
        lambda: logistic(patients, "treated", ["weight"]),
        lambda: match_nearest(patients, "treated", ["weight"]),
        lambda: paired_change(patients, "protein_before", "protein_after", by="treated"),
    ]
    for call in calls:
        with pytest.raises(AnalysisError, match="missing column"):
            call()


def test_no_events(patients: pd.DataFrame) -> None:
    censored = patients.assign(died=0)
    for call in (
        lambda: kaplan_meier(censored, "months", "died"),
        lambda: logrank(censored, "months", "died", "treated"),
        lambda: cox(censored, "months", "died", ["age"]),
    ):
        with pytest.raises(AnalysisError, match="no events in 'died'"):
            call()


def test_event_column_must_be_zero_one(patients: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="'died' must be binary 0/1; found 2"):
        kaplan_meier(patients.assign(died=patients["died"] * 2), "months", "died")


def test_negative_times(patients: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="negative"):
        kaplan_meier(patients.assign(months=-patients["months"]), "months", "died")


def test_group_with_one_level(patients: pd.DataFrame) -> None:
    one_arm = patients.assign(treated=1)
    for call in (
        lambda: table_one(one_arm, "treated", continuous=["age"]),
        lambda: logrank(one_arm, "months", "died", "treated"),
        lambda: kaplan_meier(one_arm, "months", "died", by="treated"),
        lambda: paired_change(one_arm, "age", "protein_after", by="treated"),
    ):
        with pytest.raises(AnalysisError, match="'treated' needs at least two levels; it has only 1"):
            call()


def test_table_one_compares_exactly_two_groups(patients: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="two groups; 'outcome' has 3 levels"):
        table_one(patients, "outcome", continuous=["age"])


def test_all_missing_column(patients: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="no rows have values"):
        cox(patients.assign(age=np.nan), "months", "died", ["age"])


def test_text_covariate_is_refused(patients: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="'outcome' must be numeric"):
        cox(patients, "months", "died", ["outcome"])


def test_constant_or_collinear_covariates_are_named(patients: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="'age_months' constant or collinear"):
        logistic(patients.assign(age_months=patients["age"] * 12), "treated", ["age", "age_months"])
    with pytest.raises(AnalysisError, match="'site' constant or collinear"):
        cox(patients.assign(site=1), "months", "died", ["age", "site"])


def test_perfect_separation_in_logistic_models(patients: pd.DataFrame) -> None:
    separated = patients.assign(
        old=(patients["age"] > 40).astype(int), treated=(patients["age"] > 40).astype(int)
    )
    with pytest.raises(AnalysisError, match="'treated' is perfectly or quasi-completely separated by old"):
        logistic(separated, "treated", ["old", "male"])
    with pytest.raises(AnalysisError, match="separated"):
        match_nearest(separated, "treated", ["old", "male"])


def test_quasi_complete_separation_is_refused(patients: pd.DataFrame) -> None:
    # Every man is treated; women are mixed: the odds ratio for "male" is infinite.
    quasi = patients.assign(treated=np.where(patients["male"] == 1, 1, patients["treated"]))
    with pytest.raises(AnalysisError, match="separated by male"):
        logistic(quasi, "treated", ["male", "age"])


def test_perfect_separation_in_multinomial_model(patients: pd.DataFrame) -> None:
    separated = patients.assign(outcome=np.where(patients["male"] == 1, "worse", "complete"))
    separated.loc[separated.index[:10], "outcome"] = "partial"
    separated.loc[separated.index[:10], "male"] = 0
    with pytest.raises(AnalysisError, match="separated by"):
        multinomial_logistic(separated, "outcome", ["male", "age"], reference="complete")


def test_unknown_reference_level(patients: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="reference level 'exacerbation' does not occur"):
        multinomial_logistic(patients, "outcome", ["age"], reference="exacerbation")


def test_infinite_cox_coefficient(patients: pd.DataFrame) -> None:
    # Nobody with exposure=1 has the event: monotone likelihood, the hazard ratio is 0.
    no_events_exposed = patients.assign(exposure=np.where(patients["died"] == 1, 0, patients["male"]))
    with pytest.raises(AnalysisError, match="exposure are infinite"):
        cox(no_events_exposed, "months", "died", ["exposure"])


def test_a_cox_covariate_that_never_varies_at_an_event_is_refused() -> None:
    # x differs only for a patient censored before the first event: R's coxph gives coef NA
    # ("X matrix deemed to be singular"); here a refusal that says why, never a LinAlgError.
    censored_early = pd.DataFrame({"t": range(1, 7), "e": [0, 0, 0, 0, 1, 1], "x": [1, 0, 0, 0, 0, 0]})
    with pytest.raises(AnalysisError, match="Cox model on x: singular information matrix"):
        cox(censored_early, "t", "e", ["x"])
    with pytest.raises(AnalysisError, match="singular"):
        univariable_cox(censored_early, "t", "e", ["x"])


def test_a_proportional_hazards_test_that_cannot_be_made_leaves_the_cox_model_standing() -> None:
    # Two events at one time: cox.zph's time transform is constant over the events and its
    # information singular (R: "system is exactly singular"); R's coxph gives coef 0, se 1.414214.
    tied = pd.DataFrame({"t": [1, 2, 2, 3, 4, 5, 6], "e": [0, 1, 1, 0, 0, 0, 0], "x": [1, 1, 0, 1, 0, 1, 0]})
    model = cox(tied, "t", "e", ["x"])
    row = model.table.iloc[0]
    assert (row["coef"], round(row["se"], 6)) == (pytest.approx(0, abs=1e-12), 1.414214)
    assert model.proportional_hazards["p"].isna().all()
    assert "not available: every event is at one time" in model.proportional_hazards_note
    assert model.to_dict()["proportional_hazards_note"] == model.proportional_hazards_note


def test_every_event_at_one_time_in_a_larger_cohort_keeps_the_fit() -> None:
    # Issue 14: this shape crashed with a raw LinAlgError from the proportional-hazards test.
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"t": rng.uniform(1, 10, 60), "x": rng.normal(size=60), "g": rng.integers(0, 2, 60)})
    frame["e"] = (rng.random(60) < 0.4).astype(int)
    frame.loc[frame["e"] == 1, "t"] = 5.0
    model = cox(frame, "t", "e", ["x", "g"])
    assert np.isfinite(model.table[["coef", "se", "p"]].to_numpy()).all()
    assert model.proportional_hazards["chisq"].isna().all()
    assert model.proportional_hazards_note.startswith("proportional-hazards test not available")


def test_untestable_inputs() -> None:
    with pytest.raises(AnalysisError, match="identical"):
        rank_sum_test(np.ones(60), np.ones(60))
    with pytest.raises(AnalysisError, match="every difference is zero"):
        signed_rank_test(np.zeros(5))
    # An r×c table is computed exactly; one beyond about a second of work is refused naming the
    # simulated option (R's fisher.test stops on this one at its default workspace too: FEXACT error 6).
    # (The all-20 5×5 table used here before is now answered, p = 1: its rows' fillings are symmetric.)
    table = np.array([[14, 26, 20, 18], [7, 11, 31, 15], [12, 31, 15, 17], [6, 3, 14, 10]])
    with pytest.raises(AnalysisError, match="too large for exact enumeration.*use simulate_p_value=True"):
        fisher_exact_test(table)
    with pytest.raises(AnalysisError, match="needs a two-way table"):
        fisher_exact_test(np.array([3, 4, 5]))
    with pytest.raises(AnalysisError, match="not negative numbers"):
        fisher_exact_test(np.array([[3, -1], [2, 5]]))
    with pytest.raises(AnalysisError, match="two non-empty rows and columns"):
        fisher_exact_test(np.array([[3, 0, 1], [2, 0, 5]]))
    with pytest.raises(AnalysisError, match="two non-empty rows and columns"):
        fisher_exact_test(np.array([[3, 4, 1]]))


def test_a_variable_whose_test_cannot_run_gets_a_note_and_the_rest_of_table_one_stands(
    patients: pd.DataFrame,
) -> None:
    # Issue 14: one untestable variable refused the whole table.
    frame = patients.assign(seizure=0, same_as_group=patients["treated"])
    frame.loc[frame["treated"] == 1, "age"] = np.nan
    frame.loc[frame.index[frame["treated"] == 1][0], "age"] = 40.0  # a treated group of one
    result = table_one(
        frame, "treated", continuous=["age", "protein_after"], categorical=["seizure", "same_as_group"]
    )
    rows = result.table.set_index("variable")
    assert np.isnan(rows.loc["seizure", "p"]) and np.isnan(rows.loc["seizure", "smd"])
    assert rows.loc["seizure", "count_1"] == 0
    assert result.notes["seizure"] == "variable 'seizure' has a single value (0); nothing to test"
    # 0/1 identical to the group: the test runs (p tiny), the SMD has no within-group variation.
    assert rows.loc["same_as_group", "p"] < 1e-10 and np.isnan(rows.loc["same_as_group", "smd"])
    assert "no variation" in result.notes["same_as_group"]
    # A group of one: the rank-sum test runs, the SMD needs two values per group.
    assert rows.loc["age", "n_1"] == 1 and not np.isnan(rows.loc["age", "p"])
    assert "needs two values per group" in result.notes["age"]
    assert np.isfinite(rows.loc["protein_after", ["p", "smd"]].astype(float)).all()
    assert "protein_after" not in result.notes


def test_missing_values_are_excluded_and_counted(patients: pd.DataFrame) -> None:
    gappy = patients.copy()
    gappy.loc[:4, "age"] = np.nan  # 5 rows
    gappy.loc[10:12, "months"] = np.nan  # 3 rows
    gappy.loc[20, "treated"] = np.nan  # 1 row

    assert kaplan_meier(gappy, "months", "died").n_excluded == 3
    assert kaplan_meier(gappy, "months", "died", by="treated").n_excluded == 4
    assert logrank(gappy, "months", "died", "treated").n_excluded == 4
    model = cox(gappy, "months", "died", ["age", "male"])
    assert (model.n, model.n_excluded) == (72, 8)
    per_covariate = univariable_cox(gappy, "months", "died", ["age", "male"]).table.set_index("term")
    assert per_covariate["n_excluded"].to_dict() == {"age": 8, "male": 3}
    assert logistic(gappy, "treated", ["age"]).n_excluded == 6
    assert match_nearest(gappy, "treated", ["age", "male"]).n_excluded == 6

    described = table_one(gappy, "treated", continuous=["age"], categorical=["male"])
    assert described.n_excluded == 1
    assert described.table.set_index("variable")["n_missing"].to_dict() == {"age": 5, "male": 0}

    paired = paired_change(
        gappy.assign(protein_before=gappy["age"] / 90), "protein_before", "protein_after", by="treated"
    )
    assert paired.n_excluded == 6
    assert paired.within["n"].sum() == 74


def test_table_one_names_an_empty_or_constant_categorical_variable():
    import pandas as pd

    from analytics.describe import table_one
    from analytics.errors import AnalysisError

    frame = pd.DataFrame({"group": [0, 0, 1, 1], "flag": [1, 1, 1, 1], "empty": [None] * 4})
    flagged = table_one(frame, "group", categorical=["flag"])
    assert flagged.notes == {"flag": "variable 'flag' has a single value (1); nothing to test"}
    with pytest.raises(AnalysisError, match="'empty'"):
        table_one(frame, "group", categorical=["empty"])
    with pytest.raises(AnalysisError, match="'empty' has no values"):
        table_one(frame, "group", continuous=["empty"])
